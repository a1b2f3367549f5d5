/**
 * CityHash128 as ClickHouse computes its compressed blocks' checksums: the
 * old CityHash v1.0.2 (ClickHouse keeps that version in contrib/cityhash102;
 * later CityHash releases give other values). No maintained npm package
 * implements this version — the ones there are give CityHash64 only, or the
 * current CityHash, or need a native build against Node headers — so it is
 * written here from the v1.0.2 algorithm, on BigInt, and checked against
 * PyPI's `clickhouse-cityhash` (the same v1.0.2 code ClickHouse's Python
 * driver uses) and by the real clients that verify every block they read.
 *
 * Blocks are at most 1 MiB (ClickHouse's max_compress_block_size), where
 * BigInt arithmetic costs a few milliseconds per block.
 */

const MASK = (1n << 64n) - 1n;
const k0 = 0xc3a5c85c97cb3127n;
const k1 = 0xb492b66fbe98f273n;
const k2 = 0x9ae16a3b2f90404fn;
const k3 = 0xc949d7c7509e6557n;
const kMul = 0x9ddfea08eb382d69n;

const u64 = (x: bigint) => x & MASK;
const mul = (a: bigint, b: bigint) => (a * b) & MASK;
const add = (...xs: bigint[]) => xs.reduce((s, x) => s + x, 0n) & MASK;

function rotate(v: bigint, shift: number): bigint {
  if (shift === 0) return v;
  const s = BigInt(shift);
  return ((v >> s) | (v << (64n - s))) & MASK;
}

const shiftMix = (v: bigint) => v ^ (v >> 47n);

function hash128to64(low: bigint, high: bigint): bigint {
  let a = mul(low ^ high, kMul);
  a ^= a >> 47n;
  let b = mul(high ^ a, kMul);
  b ^= b >> 47n;
  return mul(b, kMul);
}

const hashLen16 = (u: bigint, v: bigint) => hash128to64(u, v);

class Bytes {
  readonly buf: Uint8Array;
  readonly view: DataView;
  constructor(buf: Uint8Array) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  fetch64(p: number): bigint {
    return this.view.getBigUint64(p, true);
  }
  fetch32(p: number): bigint {
    return BigInt(this.view.getUint32(p, true));
  }
}

function hashLen0to16(s: Bytes, p: number, len: number): bigint {
  const L = BigInt(len);
  if (len > 8) {
    const a = s.fetch64(p);
    const b = s.fetch64(p + len - 8);
    return hashLen16(a, rotate(u64(b + L), len)) ^ b;
  }
  if (len >= 4) {
    const a = s.fetch32(p);
    return hashLen16(u64(L + (a << 3n)), s.fetch32(p + len - 4));
  }
  if (len > 0) {
    const a = BigInt(s.buf[p]!);
    const b = BigInt(s.buf[p + (len >> 1)]!);
    const c = BigInt(s.buf[p + len - 1]!);
    const y = (a + (b << 8n)) & 0xffffffffn;
    const z = (L + (c << 2n)) & 0xffffffffn;
    return mul(shiftMix(mul(y, k2) ^ mul(z, k3)), k2);
  }
  return k2;
}

function weakHashLen32WithSeeds(s: Bytes, p: number, a: bigint, b: bigint): [bigint, bigint] {
  const w = s.fetch64(p);
  const x = s.fetch64(p + 8);
  const y = s.fetch64(p + 16);
  const z = s.fetch64(p + 24);
  a = add(a, w);
  b = rotate(add(b, a, z), 21);
  const c = a;
  a = add(a, x, y);
  b = add(b, rotate(a, 44));
  return [add(a, z), add(b, c)];
}

function cityMurmur(s: Bytes, p: number, len: number, seedLow: bigint, seedHigh: bigint): [bigint, bigint] {
  let a = seedLow;
  let b = seedHigh;
  let c: bigint;
  let d: bigint;
  let l = len - 16;
  if (l <= 0) {
    a = mul(shiftMix(mul(a, k1)), k1);
    c = add(mul(b, k1), hashLen0to16(s, p, len));
    d = shiftMix(add(a, len >= 8 ? s.fetch64(p) : c));
  } else {
    c = hashLen16(add(s.fetch64(p + len - 8), k1), a);
    d = hashLen16(add(b, BigInt(len)), add(c, s.fetch64(p + len - 16)));
    a = add(a, d);
    do {
      a ^= mul(shiftMix(mul(s.fetch64(p), k1)), k1);
      a = mul(a, k1);
      b ^= a;
      c ^= mul(shiftMix(mul(s.fetch64(p + 8), k1)), k1);
      c = mul(c, k1);
      d ^= c;
      p += 16;
      l -= 16;
    } while (l > 0);
  }
  a = hashLen16(a, c);
  b = hashLen16(d, b);
  return [a ^ b, hashLen16(b, a)];
}

function cityHash128WithSeed(s: Bytes, p: number, len: number, seedLow: bigint, seedHigh: bigint): [bigint, bigint] {
  if (len < 128) return cityMurmur(s, p, len, seedLow, seedHigh);
  let x = seedLow;
  let y = seedHigh;
  let z = mul(BigInt(len), k1);
  const v: [bigint, bigint] = [0n, 0n];
  const w: [bigint, bigint] = [0n, 0n];
  v[0] = add(mul(rotate(y ^ k1, 49), k1), s.fetch64(p));
  v[1] = add(mul(rotate(v[0], 42), k1), s.fetch64(p + 8));
  w[0] = add(mul(rotate(add(y, z), 35), k1), x);
  w[1] = mul(rotate(add(x, s.fetch64(p + 88)), 53), k1);
  const round = () => {
    x = mul(rotate(add(x, y, v[0], s.fetch64(p + 16)), 37), k1);
    y = mul(rotate(add(y, v[1], s.fetch64(p + 48)), 42), k1);
    x ^= w[1];
    y ^= v[0];
    z = rotate(z ^ w[0], 33);
    [v[0], v[1]] = weakHashLen32WithSeeds(s, p, mul(v[1], k1), add(x, w[0]));
    [w[0], w[1]] = weakHashLen32WithSeeds(s, p + 32, add(z, w[1]), y);
    [z, x] = [x, z];
    p += 64;
  };
  do {
    round();
    round();
    len -= 128;
  } while (len >= 128);
  y = add(y, mul(rotate(w[0], 37), k0), z);
  x = add(x, mul(rotate(add(v[0], z), 49), k0));
  for (let tailDone = 0; tailDone < len; ) {
    tailDone += 32;
    y = add(mul(rotate(u64(y - x), 42), k0), v[1]);
    w[0] = add(w[0], s.fetch64(p + len - tailDone + 16));
    x = add(mul(rotate(x, 49), k0), w[0]);
    w[0] = add(w[0], v[0]);
    [v[0], v[1]] = weakHashLen32WithSeeds(s, p + len - tailDone, v[0], v[1]);
  }
  x = hashLen16(x, v[0]);
  y = hashLen16(y, w[0]);
  return [add(hashLen16(add(x, v[1]), w[1]), y), hashLen16(add(x, w[1]), add(y, v[1]))];
}

/** CityHash128 v1.0.2 of `data` as ClickHouse writes it: the low 64 bits, then the high, each little-endian. */
export function cityHash128(data: Uint8Array): Buffer {
  const s = new Bytes(data);
  const len = data.byteLength;
  let low: bigint;
  let high: bigint;
  if (len >= 16) [low, high] = cityHash128WithSeed(s, 16, len - 16, s.fetch64(0) ^ k3, s.fetch64(8));
  else if (len >= 8) [low, high] = cityHash128WithSeed(s, 0, 0, s.fetch64(0) ^ mul(BigInt(len), k0), s.fetch64(len - 8) ^ k1);
  else [low, high] = cityHash128WithSeed(s, 0, len, k0, k1);
  const out = Buffer.alloc(16);
  out.writeBigUInt64LE(low, 0);
  out.writeBigUInt64LE(high, 8);
  return out;
}
