/**
 * Rows encoded as ClickHouse's RowBinaryWithDefaults, the insert format the
 * consumers write in. Parsing JSONEachRow was most of the store's cost per
 * span (docs/performance.md "Consumers"): the binary rows are read column by
 * column without a key lookup, number or escape parse.
 *
 * The encoder is compiled from the table's own column types
 * (system.columns), so the migrations stay the one description of the
 * tables. Row values keep the JSONEachRow shape the rest of the code and the
 * contract use (contract/rows.ts): instants as 'YYYY-MM-DD hh:mm:ss.nnnnnnnnn'
 * UTC text, money as exact decimal strings, 64-bit integers as numbers,
 * bigints or decimal strings. A column the row leaves undefined is written
 * as "use the default" (its DEFAULT expression), as a missing JSON key was.
 * Keys that name no column are ignored, as JSONEachRow ignores them.
 */
import type { Store } from './store.ts';

export interface Column {
  name: string;
  type: string;
}

/** The insertable columns of `<database>.<table>` in table order (not ALIAS or MATERIALIZED). */
export async function insertColumns(store: Store, table: string): Promise<Column[]> {
  const columns = await store.query<Column>(
    `SELECT name, type FROM system.columns
     WHERE database = {database:String} AND table = {table:String} AND default_kind NOT IN ('ALIAS', 'MATERIALIZED')
     ORDER BY position`,
    { database: store.database, table },
  );
  if (columns.length === 0) throw new Error(`table ${store.database}.${table} not found (are the migrations applied?)`);
  return columns;
}

/** Where encoded bytes go: a growing buffer reused from chunk to chunk. */
class Sink {
  buf = Buffer.allocUnsafeSlow(64 * 1024);
  pos = 0;

  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafeSlow(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(x: number): void {
    this.reserve(1);
    this.buf[this.pos++] = x;
  }

  varUInt(x: number): void {
    this.reserve(10);
    while (x >= 0x80) {
      this.buf[this.pos++] = (x & 0x7f) | 0x80;
      x = Math.floor(x / 128);
    }
    this.buf[this.pos++] = x;
  }

  /** Little-endian 32 bits of x (any integer below 2^53 in magnitude: its low word). */
  u32(x: number): void {
    this.reserve(4);
    const b = this.buf;
    const p = this.pos;
    b[p] = x;
    b[p + 1] = x >>> 8;
    b[p + 2] = x >>> 16;
    b[p + 3] = x >>> 24;
    this.pos = p + 4;
  }

  /** A 64-bit two's complement integer from a safe integer, without BigInt. */
  i64(x: number): void {
    this.u32(x >>> 0);
    this.u32(Math.floor(x / 2 ** 32));
  }

  string(s: string): void {
    // at most 3 UTF-8 bytes per UTF-16 unit: a short string takes a one-byte length without being measured first
    if (s.length * 3 < 0x80) {
      this.reserve(1 + s.length * 3);
      const n = this.buf.write(s, this.pos + 1, 'utf8');
      this.buf[this.pos] = n;
      this.pos += 1 + n;
      return;
    }
    const n = Buffer.byteLength(s, 'utf8');
    this.varUInt(n);
    this.reserve(n);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  bytes(b: Uint8Array): void {
    this.varUInt(b.length);
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

type Write = (sink: Sink, value: unknown, at: string) => void;

/** Thrown for a value its column's type cannot hold: names the table, column and row. */
export class RowBinaryError extends TypeError {}

const fail = (at: string, expected: string, value: unknown): never => {
  const shown = typeof value === 'bigint' ? `${value}n` : JSON.stringify(value) ?? String(value);
  throw new RowBinaryError(`${at}: expected ${expected}, got ${typeof value} ${shown.length > 80 ? `${shown.slice(0, 80)}…` : shown}`);
};

// --- type expressions -------------------------------------------------------

/** A parsed ClickHouse type: `Map(LowCardinality(String), String)` → {name: 'Map', args: [...]}. */
interface TypeNode {
  name: string;
  args: Arg[];
}
type Arg = { type: TypeNode; label?: string } | { text: string; value?: number } | { number: number };

const TOKEN = /\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(-?\d+(?:\.\d+)?)|'((?:[^'\\]|\\.)*)'|([(),=]))/y;

export function parseType(text: string): TypeNode {
  const tokens: { ident?: string; number?: string; text?: string; punct?: string }[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length && !/^\s*$/.test(text.slice(TOKEN.lastIndex))) {
    const start = TOKEN.lastIndex;
    const m = TOKEN.exec(text);
    if (!m) throw new RangeError(`cannot read type ${JSON.stringify(text)} at offset ${start}`);
    tokens.push(m[1] !== undefined ? { ident: m[1] } : m[2] !== undefined ? { number: m[2] } : m[3] !== undefined ? { text: m[3].replace(/\\(.)/g, '$1') } : { punct: m[4]! });
  }
  let i = 0;
  const bad = (): never => {
    throw new RangeError(`cannot read type ${JSON.stringify(text)} (token ${i + 1})`);
  };
  const type = (): TypeNode => {
    const name = tokens[i++]?.ident ?? bad();
    const args: Arg[] = [];
    if (tokens[i]?.punct === '(') {
      i++;
      while (tokens[i]?.punct !== ')') {
        const t = tokens[i] ?? bad();
        if (t.text !== undefined) {
          i++;
          if (tokens[i]?.punct === '=') {
            i++;
            args.push({ text: t.text, value: Number(tokens[i++]?.number ?? bad()) });
          } else args.push({ text: t.text });
        } else if (t.number !== undefined) {
          i++;
          args.push({ number: Number(t.number) });
        } else if (t.ident !== undefined && tokens[i + 1]?.ident !== undefined) {
          // a named tuple element: `time DateTime64(9, 'UTC')`
          i++;
          args.push({ label: t.ident, type: type() });
        } else args.push({ type: type() });
        if (tokens[i]?.punct === ',') i++;
        else if (tokens[i]?.punct !== ')') bad();
      }
      i++;
    }
    return { name, args };
  };
  const node = type();
  if (i !== tokens.length) bad();
  return node;
}

const typeArg = (node: TypeNode, n: number): TypeNode => {
  const a = node.args[n];
  if (!a || !('type' in a)) throw new RangeError(`${node.name} needs a type as argument ${n + 1}`);
  return a.type;
};
const numberArg = (node: TypeNode, n: number): number => {
  const a = node.args[n];
  if (!a || !('number' in a)) throw new RangeError(`${node.name} needs a number as argument ${n + 1}`);
  return a.number;
};

// --- values -----------------------------------------------------------------

const INTS: Record<string, { bytes: 1 | 2 | 4 | 8; signed: boolean }> = {
  UInt8: { bytes: 1, signed: false },
  UInt16: { bytes: 2, signed: false },
  UInt32: { bytes: 4, signed: false },
  UInt64: { bytes: 8, signed: false },
  Int8: { bytes: 1, signed: true },
  Int16: { bytes: 2, signed: true },
  Int32: { bytes: 4, signed: true },
  Int64: { bytes: 8, signed: true },
};

function integerWriter(name: string, bytes: 1 | 2 | 4 | 8, signed: boolean): Write {
  const bits = BigInt(bytes * 8);
  const min = signed ? -(2n ** (bits - 1n)) : 0n;
  const max = signed ? 2n ** (bits - 1n) - 1n : 2n ** bits - 1n;
  if (bytes < 8) {
    const lo = Number(min);
    const hi = Number(max);
    return (s, v, at) => {
      const n = typeof v === 'boolean' ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < lo || n > hi) return fail(at, name, v);
      if (bytes === 4) return s.u32(n);
      s.reserve(bytes);
      s.buf[s.pos++] = n;
      if (bytes === 2) s.buf[s.pos++] = n >>> 8;
    };
  }
  return (s, v, at) => {
    if (typeof v === 'number' && Number.isSafeInteger(v) && (signed || v >= 0)) return s.i64(v);
    let b: bigint;
    if (typeof v === 'bigint') b = v;
    else if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) b = BigInt(v);
    else return fail(at, name, v);
    if (b < min || b > max) return fail(at, name, v);
    s.reserve(8);
    s.buf.writeBigUInt64LE(BigInt.asUintN(64, b), s.pos);
    s.pos += 8;
  };
}

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;
/** 16-bit limbs of a decimal's unscaled value, least significant first (reused: encoding is synchronous). */
const limbs = new Uint16Array(16);

/**
 * Writes the integer spelled by `digits` (no sign, no leading zeros), negated
 * if asked, as `bytes` little-endian two's complement bytes: 16-bit limbs
 * multiplied by 10^4 per four digits, so no BigInt per value.
 */
function writeUnscaled(s: Sink, digits: string, negative: boolean, bytes: number): void {
  const n = bytes / 2;
  limbs.fill(0, 0, n);
  for (let i = 0; i < digits.length; ) {
    const take = Math.min(4, digits.length - i);
    let carry = Number(digits.slice(i, i + take));
    const factor = 10 ** take;
    i += take;
    for (let l = 0; l < n; l++) {
      const x = limbs[l]! * factor + carry;
      limbs[l] = x & 0xffff;
      carry = Math.floor(x / 0x10000);
    }
  }
  if (negative) {
    let carry = 1;
    for (let l = 0; l < n; l++) {
      const x = (~limbs[l]! & 0xffff) + carry;
      limbs[l] = x & 0xffff;
      carry = x >>> 16;
    }
  }
  s.reserve(bytes);
  for (let l = 0; l < n; l++) {
    s.buf[s.pos++] = limbs[l]!;
    s.buf[s.pos++] = limbs[l]! >>> 8;
  }
}

function decimalWriter(precision: number, scale: number): Write {
  const bytes = precision <= 9 ? 4 : precision <= 18 ? 8 : precision <= 38 ? 16 : 32;
  if (bytes === 32) throw new RangeError(`Decimal(${precision}, ${scale}) is wider than 128 bits: not supported`);
  const name = `Decimal(${precision}, ${scale})`;
  const zeros = '0'.repeat(scale);
  return (s, v, at) => {
    let text: string;
    if (typeof v === 'string') text = v;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) text = String(v);
    else return fail(at, `${name} as a decimal string`, v);
    const m = DECIMAL.exec(text);
    if (!m) return fail(at, `${name} as a decimal string`, v);
    let fraction = m[3] ?? '';
    if (fraction.length > scale) {
      // digits past the scale are only allowed as zeros: anything else would be rounded
      if (!/^0*$/.test(fraction.slice(scale))) return fail(at, `${name}: at most ${scale} decimal places`, v);
      fraction = fraction.slice(0, scale);
    }
    const digits = (m[2]! + fraction + zeros.slice(fraction.length)).replace(/^0+/, '');
    if (digits.length > precision) return fail(at, `${name}: at most ${precision} digits`, v);
    writeUnscaled(s, digits, m[1] === '-' && digits !== '', bytes);
  };
}

/** Seconds of the 'YYYY-MM-DD hh:mm:ss' prefixes seen lately (spans of concurrent attempts share a few dozen). Bounded: cleared when full. */
const secondsOf = new Map<string, number>();
const INSTANT = /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.(\d{1,9}))?Z?$/;

/** 'YYYY-MM-DD hh:mm:ss[.fraction]' UTC → seconds since the epoch; the fraction's digits are left in `fractionOf`. */
let fractionOf = '';

function instantSeconds(v: unknown, at: string, name: string): number {
  if (typeof v !== 'string') return fail(at, `${name} as 'YYYY-MM-DD hh:mm:ss.nnnnnnnnn' text`, v);
  const end = v.length > 19 && v.charCodeAt(v.length - 1) === 0x5a /* Z */ ? v.length - 1 : v.length;
  let fraction = end > 20 && v.charCodeAt(19) === 0x2e /* . */ ? v.slice(20, end) : '';
  let seconds = secondsOf.get(v.slice(0, 19));
  if (seconds === undefined || !(end === 19 || (fraction.length <= 9 && end === 20 + fraction.length && allDigits(fraction)))) {
    const m = INSTANT.exec(v);
    if (!m) return fail(at, `${name} as 'YYYY-MM-DD hh:mm:ss.nnnnnnnnn' text`, v);
    seconds = Date.parse(`${v.slice(0, 10)}T${v.slice(11, 19)}Z`) / 1000;
    if (!Number.isFinite(seconds)) return fail(at, `${name}: a valid date and time`, v);
    if (secondsOf.size >= 4096) secondsOf.clear();
    secondsOf.set(v.slice(0, 19), seconds);
    fraction = m[1] ?? '';
  }
  fractionOf = fraction;
  return seconds;
}

function allDigits(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function dateTime64Writer(node: TypeNode): Write {
  const precision = numberArg(node, 0);
  const tz = node.args[1];
  // the text is UTC (contract/rows.ts); another zone's column would read it in that zone
  if (!tz || !('text' in tz) || tz.text !== 'UTC') throw new RangeError(`DateTime64 columns must be in 'UTC' to be written from UTC text`);
  if (precision > 9) throw new RangeError(`DateTime64(${precision}) is finer than nanoseconds: not supported`);
  const name = `DateTime64(${precision}, 'UTC')`;
  const scale = 10 ** precision;
  return (s, v, at) => {
    const seconds = instantSeconds(v, at, name);
    const ticks = precision ? Number(fractionOf.slice(0, precision).padEnd(precision, '0')) : 0;
    if (precision <= 6) return s.i64(seconds * scale + ticks); // below 2^53: |seconds| < 2^34, scale ≤ 2^20
    // seconds × 10^precision passes 2^53: split 10^p = 2^p × 5^p, the 5^p product stays exact (seconds in [0, 2^32))
    if (seconds < 0 || seconds >= 2 ** 32) {
      s.reserve(8);
      s.buf.writeBigInt64LE(BigInt(seconds) * BigInt(scale) + BigInt(ticks), s.pos);
      s.pos += 8;
      return;
    }
    const odd = seconds * 5 ** precision;
    const shift = 2 ** precision;
    const low = (odd % 2 ** (32 - precision)) * shift + ticks; // < 2^32 + 10^9
    s.u32(low % 2 ** 32);
    s.u32(Math.floor(odd / 2 ** (32 - precision)) + Math.floor(low / 2 ** 32));
  };
}

function enumWriter(node: TypeNode, bytes: 1 | 2): Write {
  const values = new Map<string, number>();
  for (const a of node.args) if ('text' in a && a.value !== undefined) values.set(a.text, a.value);
  const known = new Set(values.values());
  const name = `${node.name}(${[...values.keys()].join(', ')})`;
  return (s, v, at) => {
    const n = typeof v === 'string' ? values.get(v) : typeof v === 'number' && known.has(v) ? v : undefined;
    if (n === undefined) return fail(at, name, v);
    s.reserve(bytes);
    if (bytes === 1) s.buf.writeInt8(n, s.pos);
    else s.buf.writeInt16LE(n, s.pos);
    s.pos += bytes;
  };
}

function writerFor(node: TypeNode): Write {
  const int = INTS[node.name];
  if (int) return integerWriter(node.name, int.bytes, int.signed);
  switch (node.name) {
    case 'String':
      return (s, v, at) => {
        if (typeof v === 'string') s.string(v);
        else if (v instanceof Uint8Array) s.bytes(v);
        else fail(at, 'String', v);
      };
    case 'LowCardinality':
      return writerFor(typeArg(node, 0));
    case 'Bool':
      return (s, v, at) => {
        if (typeof v !== 'boolean' && v !== 0 && v !== 1) return fail(at, 'Bool', v);
        s.u8(v ? 1 : 0);
      };
    case 'Float64':
    case 'Float32': {
      const bytes = node.name === 'Float64' ? 8 : 4;
      return (s, v, at) => {
        if (typeof v !== 'number') return fail(at, node.name, v);
        s.reserve(bytes);
        if (bytes === 8) s.buf.writeDoubleLE(v, s.pos);
        else s.buf.writeFloatLE(v, s.pos);
        s.pos += bytes;
      };
    }
    case 'Decimal':
      return decimalWriter(numberArg(node, 0), numberArg(node, 1));
    case 'Decimal32':
    case 'Decimal64':
    case 'Decimal128':
      return decimalWriter({ Decimal32: 9, Decimal64: 18, Decimal128: 38 }[node.name], numberArg(node, 0));
    case 'DateTime64':
      return dateTime64Writer(node);
    case 'Enum8':
      return enumWriter(node, 1);
    case 'Enum16':
      return enumWriter(node, 2);
    case 'Nullable': {
      const inner = writerFor(typeArg(node, 0));
      return (s, v, at) => {
        if (v === null) return s.u8(1);
        s.u8(0);
        inner(s, v, at);
      };
    }
    case 'Array': {
      const item = writerFor(typeArg(node, 0));
      return (s, v, at) => {
        if (!Array.isArray(v)) return fail(at, 'an array', v);
        s.varUInt(v.length);
        for (const x of v) item(s, x, at);
      };
    }
    case 'Map': {
      const key = writerFor(typeArg(node, 0));
      const value = writerFor(typeArg(node, 1));
      return (s, v, at) => {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail(at, 'an object (Map)', v);
        const keys = Object.keys(v);
        s.varUInt(keys.length);
        for (const k of keys) {
          key(s, k, at);
          value(s, (v as Record<string, unknown>)[k], at);
        }
      };
    }
    case 'Tuple': {
      const elements = node.args.map((a, i) => {
        if (!('type' in a)) throw new RangeError(`Tuple element ${i + 1} is not a type`);
        return { key: a.label ?? String(i + 1), write: writerFor(a.type) };
      });
      return (s, v, at) => {
        if (v === null || typeof v !== 'object') return fail(at, 'a tuple (an array or an object)', v);
        const positional = Array.isArray(v);
        for (let i = 0; i < elements.length; i++) {
          const e = elements[i]!;
          e.write(s, positional ? v[i] : (v as Record<string, unknown>)[e.key], at);
        }
      };
    }
    default:
      throw new RangeError(`type ${node.name} is not supported by the RowBinary encoder`);
  }
}

// --- rows -------------------------------------------------------------------

export interface RowBinaryEncoder {
  /** The columns every encoded row holds, in order (the INSERT's column list). */
  readonly columns: readonly string[];
  /** rows[from, to) as RowBinaryWithDefaults, in a buffer of their own. */
  encode(rows: readonly object[], from?: number, to?: number): Buffer;
}

/** Compiles the encoder for `table`'s columns; `table` names it in errors. */
export function rowBinaryEncoder(table: string, columns: readonly Column[]): RowBinaryEncoder {
  const compiled = columns.map((c) => {
    try {
      return { name: c.name, at: `${table}.${c.name}`, write: writerFor(parseType(c.type)) };
    } catch (err) {
      throw new RangeError(`${table}.${c.name} (${c.type}): ${(err as Error).message}`);
    }
  });
  const sink = new Sink();
  return {
    columns: compiled.map((c) => c.name),
    encode(rows, from = 0, to = rows.length) {
      sink.pos = 0;
      let r = from;
      try {
        for (; r < to; r++) {
          const row = rows[r] as Record<string, unknown>;
          for (const c of compiled) {
            const v = row[c.name];
            if (v === undefined) sink.u8(1);
            else {
              sink.u8(0);
              c.write(sink, v, c.at);
            }
          }
        }
      } catch (err) {
        if (err instanceof RowBinaryError) err.message = `row ${r}: ${err.message}`;
        throw err;
      }
      const out = Buffer.from(sink.buf.subarray(0, sink.pos));
      // one chunk of huge rows must not keep its buffer for the process's life
      if (sink.buf.length > 8 * 2 ** 20) sink.buf = Buffer.allocUnsafeSlow(64 * 1024);
      return out;
    },
  };
}
