/**
 * CityHash128 as ClickHouse computes its compressed blocks' checksums: the
 * old CityHash v1.0.2 (ClickHouse keeps that version in contrib/cityhash102;
 * later CityHash releases give other values). No maintained npm package
 * implements this version — the ones there are give CityHash64 only, or the
 * current CityHash, or need a native build against Node headers — so it is
 * written here from the v1.0.2 algorithm and checked against PyPI's
 * `clickhouse-cityhash` (the v1.0.2 code ClickHouse's Python driver uses)
 * and by the real clients, which verify every block they read.
 *
 * It hashes whole responses on the event loop the pipeline shares, so the
 * 64-bit arithmetic is done on pairs of 32-bit words in a few reused
 * registers (BigInt allocates per operation and was ~4× slower).
 */

/** A mutable unsigned 64-bit register: every operation works in place, modulo 2^64. */
class U64 {
  hi = 0;
  lo = 0;

  static of(hi: number, lo: number): U64 {
    return new U64().to(hi, lo);
  }
  to(hi: number, lo: number): this {
    this.hi = hi >>> 0;
    this.lo = lo >>> 0;
    return this;
  }
  set(x: U64): this {
    this.hi = x.hi;
    this.lo = x.lo;
    return this;
  }
  /** The little-endian 64-bit word at `p`. */
  load(v: DataView, p: number): this {
    this.lo = v.getUint32(p, true);
    this.hi = v.getUint32(p + 4, true);
    return this;
  }
  add(x: U64): this {
    const s = this.lo + x.lo;
    this.lo = s >>> 0;
    this.hi = (this.hi + x.hi + (s > 0xffffffff ? 1 : 0)) >>> 0;
    return this;
  }
  sub(x: U64): this {
    const s = this.lo - x.lo;
    this.lo = s >>> 0;
    this.hi = (this.hi - x.hi - (s < 0 ? 1 : 0)) >>> 0;
    return this;
  }
  xor(x: U64): this {
    this.hi = (this.hi ^ x.hi) >>> 0;
    this.lo = (this.lo ^ x.lo) >>> 0;
    return this;
  }
  mul(x: U64): this {
    // lo × lo in 16-bit halves (each partial product exact in a double), cross terms mod 2^32.
    const a0 = this.lo & 0xffff;
    const a1 = this.lo >>> 16;
    const b0 = x.lo & 0xffff;
    const b1 = x.lo >>> 16;
    const p00 = a0 * b0;
    const p01 = a0 * b1;
    const p10 = a1 * b0;
    const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    const hi = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16) + Math.imul(this.lo, x.hi) + Math.imul(this.hi, x.lo);
    this.lo = ((mid << 16) | (p00 & 0xffff)) >>> 0;
    this.hi = hi >>> 0;
    return this;
  }
  /** Rotate right by 0 < n < 64. */
  rotr(n: number): this {
    let { hi, lo } = this;
    if (n >= 32) {
      [hi, lo] = [lo, hi];
      n -= 32;
    }
    if (n > 0) {
      const h = (hi >>> n) | (lo << (32 - n));
      lo = (lo >>> n) | (hi << (32 - n));
      hi = h;
    }
    return this.to(hi, lo);
  }
  /** x ^ (x >> 47). */
  shiftMix(): this {
    this.lo = (this.lo ^ (this.hi >>> 15)) >>> 0;
    return this;
  }
}

const k0 = U64.of(0xc3a5c85c, 0x97cb3127);
const k1 = U64.of(0xb492b66f, 0xbe98f273);
const k2 = U64.of(0x9ae16a3b, 0x2f90404f);
const k3 = U64.of(0xc949d7c7, 0x509e6557);
const kMul = U64.of(0x9ddfea08, 0xeb382d69);

/** Scratch registers of the helpers below (one hash runs at a time: JavaScript is single-threaded here). */
const ha = new U64();
const hb = new U64();

/** Hash128to64(u, v) into `out` (which may be u or v). */
function hashLen16(u: U64, v: U64, out: U64): U64 {
  ha.set(u).xor(v).mul(kMul).shiftMix();
  hb.set(v).xor(ha).mul(kMul).shiftMix().mul(kMul);
  return out.set(hb);
}

const t1 = new U64();
const t2 = new U64();
const t3 = new U64();

function hashLen0to16(v: DataView, p: number, len: number, out: U64): U64 {
  if (len > 8) {
    const a = t1.load(v, p);
    const b = t2.load(v, p + len - 8);
    t3.set(b).add(U64.of(0, len)).rotr(len);
    hashLen16(a, t3, out);
    return out.xor(b);
  }
  if (len >= 4) {
    const a = v.getUint32(p, true);
    t1.to(a >>> 29, a << 3).add(U64.of(0, len));
    t2.to(0, v.getUint32(p + len - 4, true));
    return hashLen16(t1, t2, out);
  }
  if (len > 0) {
    const a = v.getUint8(p);
    const b = v.getUint8(p + (len >> 1));
    const c = v.getUint8(p + len - 1);
    t1.to(0, a + (b << 8)).mul(k2);
    t2.to(0, len + (c << 2)).mul(k3);
    return out.set(t1).xor(t2).shiftMix().mul(k2);
  }
  return out.set(k2);
}

const w0 = new U64();
const w1 = new U64();
const w2 = new U64();
const w3 = new U64();
const wc = new U64();

/** WeakHashLen32WithSeeds(s + p, a, b) into (first, second); a and b are read before either is written. */
function weakHashLen32WithSeeds(v: DataView, p: number, a: U64, b: U64, first: U64, second: U64): void {
  w0.load(v, p);
  w1.load(v, p + 8);
  w2.load(v, p + 16);
  w3.load(v, p + 24);
  const A = t1.set(a).add(w0);
  const B = t2.set(b).add(A).add(w3).rotr(21);
  wc.set(A);
  A.add(w1).add(w2);
  B.add(t3.set(A).rotr(44));
  first.set(A).add(w3);
  second.set(B).add(wc);
}

function cityMurmur(v: DataView, p: number, len: number, seedLow: U64, seedHigh: U64, first: U64, second: U64): void {
  const a = new U64().set(seedLow);
  const b = new U64().set(seedHigh);
  const c = new U64();
  const d = new U64();
  const x = new U64();
  let l = len - 16;
  if (l <= 0) {
    a.mul(k1).shiftMix().mul(k1);
    hashLen0to16(v, p, len, x);
    c.set(b).mul(k1).add(x);
    d.set(a).add(len >= 8 ? x.load(v, p) : c).shiftMix();
  } else {
    hashLen16(x.load(v, p + len - 8).add(k1), a, c);
    hashLen16(d.set(b).add(U64.of(0, len)), x.load(v, p + len - 16).add(c), d);
    a.add(d);
    do {
      a.xor(x.load(v, p).mul(k1).shiftMix().mul(k1)).mul(k1);
      b.xor(a);
      c.xor(x.load(v, p + 8).mul(k1).shiftMix().mul(k1)).mul(k1);
      d.xor(c);
      p += 16;
      l -= 16;
    } while (l > 0);
  }
  hashLen16(a, c, a);
  hashLen16(d, b, b);
  first.set(a).xor(b);
  hashLen16(b, a, second);
}

function cityHash128WithSeed(v: DataView, p: number, len: number, seedLow: U64, seedHigh: U64, first: U64, second: U64): void {
  if (len < 128) {
    cityMurmur(v, p, len, seedLow, seedHigh, first, second);
    return;
  }
  const x = new U64().set(seedLow);
  const y = new U64().set(seedHigh);
  const z = U64.of(0, len).mul(k1);
  const v0 = new U64();
  const v1 = new U64();
  const w0_ = new U64();
  const w1_ = new U64();
  const s1 = new U64();
  const s2 = new U64();
  const f = new U64();
  v0.set(y).xor(k1).rotr(49).mul(k1).add(f.load(v, p));
  v1.set(v0).rotr(42).mul(k1).add(f.load(v, p + 8));
  w0_.set(y).add(z).rotr(35).mul(k1).add(x);
  w1_.set(x).add(f.load(v, p + 88)).rotr(53).mul(k1);
  const round = () => {
    x.add(y).add(v0).add(f.load(v, p + 16)).rotr(37).mul(k1);
    y.add(v1).add(f.load(v, p + 48)).rotr(42).mul(k1);
    x.xor(w1_);
    y.xor(v0);
    z.xor(w0_).rotr(33);
    weakHashLen32WithSeeds(v, p, s1.set(v1).mul(k1), s2.set(x).add(w0_), v0, v1);
    weakHashLen32WithSeeds(v, p + 32, s1.set(z).add(w1_), s2.set(y), w0_, w1_);
    s1.set(z);
    z.set(x);
    x.set(s1);
    p += 64;
  };
  do {
    round();
    round();
    len -= 128;
  } while (len >= 128);
  y.add(s1.set(w0_).rotr(37).mul(k0)).add(z);
  x.add(s1.set(v0).add(z).rotr(49).mul(k0));
  for (let tailDone = 0; tailDone < len; ) {
    tailDone += 32;
    y.sub(x).rotr(42).mul(k0).add(v1);
    w0_.add(f.load(v, p + len - tailDone + 16));
    x.rotr(49).mul(k0).add(w0_);
    w0_.add(v0);
    weakHashLen32WithSeeds(v, p + len - tailDone, s1.set(v0), s2.set(v1), v0, v1);
  }
  hashLen16(x, v0, x);
  hashLen16(y, w0_, y);
  hashLen16(s1.set(x).add(v1), w1_, first).add(y);
  hashLen16(s1.set(x).add(w1_), s2.set(y).add(v1), second);
}

/** CityHash128 v1.0.2 of `data` as ClickHouse writes it: the first 64-bit word, then the second, each little-endian. */
export function cityHash128(data: Uint8Array): Buffer {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const len = data.byteLength;
  const first = new U64();
  const second = new U64();
  const lowSeed = new U64();
  const highSeed = new U64();
  if (len >= 16) {
    cityHash128WithSeed(v, 16, len - 16, lowSeed.load(v, 0).xor(k3), highSeed.load(v, 8), first, second);
  } else if (len >= 8) {
    lowSeed.load(v, 0).xor(U64.of(0, len).mul(k0));
    highSeed.load(v, len - 8).xor(k1);
    cityHash128WithSeed(v, 0, 0, lowSeed, highSeed, first, second);
  } else {
    cityHash128WithSeed(v, 0, len, lowSeed.set(k0), highSeed.set(k1), first, second);
  }
  const out = Buffer.alloc(16);
  out.writeUInt32LE(first.lo, 0);
  out.writeUInt32LE(first.hi, 4);
  out.writeUInt32LE(second.lo, 8);
  out.writeUInt32LE(second.hi, 12);
  return out;
}
