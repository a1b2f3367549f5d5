/**
 * Native output as a ClickHouse server writes it for a client that sent
 * `client_protocol_version` (clickhouse-go, hence Grafana's ClickHouse
 * datasource over HTTP, sends its TCP revision, 54460 in v2.51).
 *
 * chDB writes plain Native (revision 0): per block, the column and row
 * counts, then per column its name, type and data. A server's NativeWriter
 * with a client revision > 0 writes, per block, a block-info header first
 * (field 1 is_overflows = 0, field 2 bucket_num = -1, then 0: BlockInfo::write)
 * and, from revision 54454 (DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION),
 * one byte after each column's type saying whether the column uses a custom
 * (sparse) serialization — always 0 here, since chDB's revision-0 writer
 * already wrote every column in full. The column data itself is the same.
 *
 * Finding where one block ends means walking its columns' data, so this
 * reads the type names chDB wrote and skips each column's bytes by its
 * type. Types whose layout depends on per-query serialization state
 * (Dynamic, JSON, Variant, Object, AggregateFunction) are refused with an
 * error naming the column rather than guessed at.
 */
import { ClickHouseHttpError } from './errors.ts';
import { splitTopLevel } from './sql.ts';

/** DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION. */
const REVISION_WITH_CUSTOM_SERIALIZATION = 54454;

/** The block-info header BlockInfo::write gives a block of a plain query: is_overflows false, bucket_num -1. */
const BLOCK_INFO = Buffer.from([0x01, 0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0x00]);

/** A parsed type name: `Array(Nullable(String))` → { name: 'Array', args: [{ name: 'Nullable', … }] }. */
interface TypeNode {
  name: string;
  /** Arguments that are types (for Tuple, without their element names). */
  args: TypeNode[];
  /** The raw argument texts (for FixedString(N), Decimal(P, S), …). */
  raw: string[];
}

const SIMPLE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A Native column's type name as a tree; named tuple elements lose their names (Native data does not carry them). */
function parseType(text: string): TypeNode {
  const t = text.trim();
  const open = t.indexOf('(');
  if (open < 0) return { name: t, args: [], raw: [] };
  if (!t.endsWith(')')) throw new Error(`cannot read the type name ${JSON.stringify(text)}`);
  const name = t.slice(0, open).trim();
  const raw = splitTopLevel(t.slice(open + 1, -1));
  const typed = ['Array', 'Nullable', 'LowCardinality', 'Map', 'Tuple', 'SimpleAggregateFunction', 'Nested'];
  if (!typed.includes(name)) return { name, args: [], raw };
  const args = raw.map((a, i) => {
    if (name === 'SimpleAggregateFunction' && i === 0) return { name: '', args: [], raw: [] };
    // Named tuple elements: `name Type` (the name may be backquoted).
    const named = /^(`(?:[^`\\]|\\.)*`|[A-Za-z_][A-Za-z0-9_]*)\s+(.+)$/s.exec(a);
    return parseType(named && (name === 'Tuple' || name === 'Nested') && !SIMPLE.test(a) ? named[2]! : a);
  });
  return { name, args, raw };
}

const FIXED: Record<string, number> = {
  UInt8: 1, Int8: 1, Bool: 1, Enum8: 1, Nothing: 1,
  UInt16: 2, Int16: 2, Date: 2, Enum16: 2, BFloat16: 2,
  UInt32: 4, Int32: 4, Float32: 4, Date32: 4, DateTime: 4, IPv4: 4, Decimal32: 4, Time: 4,
  UInt64: 8, Int64: 8, Float64: 8, DateTime64: 8, Decimal64: 8, Time64: 8,
  UInt128: 16, Int128: 16, UUID: 16, IPv6: 16, Decimal128: 16,
  UInt256: 32, Int256: 32, Decimal256: 32,
};

/** Geo types are aliases of Tuple/Array types; Native writes them as those. */
const ALIASES: Record<string, string> = {
  Point: 'Tuple(Float64, Float64)',
  Ring: 'Array(Tuple(Float64, Float64))',
  LineString: 'Array(Tuple(Float64, Float64))',
  MultiLineString: 'Array(Array(Tuple(Float64, Float64)))',
  Polygon: 'Array(Array(Tuple(Float64, Float64)))',
  MultiPolygon: 'Array(Array(Array(Tuple(Float64, Float64))))',
};

class Cursor {
  at = 0;
  readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  need(n: number): void {
    if (this.at + n > this.buf.length) throw new Error(`the data ends at byte ${this.buf.length}, ${n} bytes were expected at byte ${this.at}`);
  }
  skip(n: number): void {
    this.need(n);
    this.at += n;
  }
  varUInt(): number {
    let result = 0;
    for (let shift = 0; shift < 63; shift += 7) {
      this.need(1);
      const b = this.buf[this.at++]!;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
    throw new Error(`a VarUInt longer than 9 bytes at byte ${this.at}`);
  }
  string(): string {
    const n = this.varUInt();
    this.need(n);
    const s = this.buf.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }
  uint64(): number {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.at);
    this.at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`a count of ${v} at byte ${this.at - 8}`);
    return Number(v);
  }
}

function fixedWidth(t: TypeNode): number | undefined {
  if (t.name in FIXED) return FIXED[t.name];
  if (t.name === 'FixedString') return Number(t.raw[0]);
  if (t.name.startsWith('Interval')) return 8;
  if (t.name === 'Decimal') {
    const p = Number(t.raw[0]);
    return p <= 9 ? 4 : p <= 18 ? 8 : p <= 38 ? 16 : 32;
  }
  return undefined;
}

function resolve(t: TypeNode): TypeNode {
  const alias = ALIASES[t.name];
  if (alias) return parseType(alias);
  if (t.name === 'SimpleAggregateFunction') return t.args[1]!;
  if (t.name === 'Nested') return { name: 'Array', args: [{ name: 'Tuple', args: t.args, raw: t.raw }], raw: [] };
  return t;
}

/** The state prefix of a column (serializeBinaryBulkStatePrefix): only LowCardinality writes one, its key version. */
function skipPrefix(c: Cursor, type: TypeNode): void {
  const t = resolve(type);
  if (t.name === 'LowCardinality') c.skip(8);
  else if (['Nullable', 'Array', 'Map', 'Tuple'].includes(t.name)) for (const a of t.args) skipPrefix(c, a);
}

/** A type whose data layout this walker does not know. */
class UnsupportedType extends Error {
  readonly typeName: string;
  constructor(typeName: string) {
    super(`type ${typeName}`);
    this.typeName = typeName;
  }
}

const LC_NEED_GLOBAL_DICTIONARY = 1 << 8;
const LC_HAS_ADDITIONAL_KEYS = 1 << 9;

/** Skips `rows` values of `type` (serializeBinaryBulkWithMultipleStreams into one stream). */
function skipData(c: Cursor, type: TypeNode, rows: number): void {
  const t = resolve(type);
  const width = fixedWidth(t);
  if (width !== undefined) {
    if (!Number.isInteger(width) || width < 0) throw new Error(`type ${t.name}(${t.raw.join(', ')}) has no usable width`);
    c.skip(width * rows);
    return;
  }
  switch (t.name) {
    case 'String':
      for (let i = 0; i < rows; i++) c.skip(c.varUInt());
      return;
    case 'Nullable':
      c.skip(rows);
      skipData(c, t.args[0]!, rows);
      return;
    case 'Array':
    case 'Map': {
      let nested = 0;
      for (let i = 0; i < rows; i++) nested = c.uint64();
      if (t.name === 'Array') skipData(c, t.args[0]!, nested);
      else for (const a of t.args) skipData(c, a, nested);
      return;
    }
    case 'Tuple':
      for (const a of t.args) skipData(c, a, rows);
      return;
    case 'LowCardinality': {
      const inner = t.args[0]!;
      const dictionary = inner.name === 'Nullable' ? inner.args[0]! : inner;
      for (let done = 0; done < rows; ) {
        const indexType = c.uint64();
        if (indexType & LC_NEED_GLOBAL_DICTIONARY) skipData(c, dictionary, c.uint64());
        if (indexType & LC_HAS_ADDITIONAL_KEYS) skipData(c, dictionary, c.uint64());
        const n = c.uint64();
        if (n === 0) throw new Error('a LowCardinality granule of 0 rows');
        c.skip(n * 2 ** (indexType & 0xff));
        done += n;
      }
      return;
    }
    default:
      throw new UnsupportedType(t.name);
  }
}

/**
 * chDB's revision-0 Native output as a server writes it for
 * `client_protocol_version` = `revision` (> 0).
 */
export function nativeForRevision(plain: Uint8Array, revision: number): Buffer {
  if (revision <= 0) return Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
  const c = new Cursor(Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength));
  const out: Buffer[] = [];
  let column = '';
  try {
    while (c.at < c.buf.length) {
      out.push(BLOCK_INFO);
      const head = c.at;
      const columns = c.varUInt();
      const rows = c.varUInt();
      out.push(c.buf.subarray(head, c.at));
      for (let i = 0; i < columns; i++) {
        const start = c.at;
        column = c.string();
        const typeName = c.string();
        out.push(c.buf.subarray(start, c.at));
        if (revision >= REVISION_WITH_CUSTOM_SERIALIZATION) out.push(Buffer.of(0));
        const data = c.at;
        if (rows > 0) {
          const type = parseType(typeName);
          skipPrefix(c, type);
          skipData(c, type, rows);
        }
        out.push(c.buf.subarray(data, c.at));
      }
    }
  } catch (err) {
    if (err instanceof UnsupportedType) {
      throw ClickHouseHttpError.of(
        'NOT_IMPLEMENTED',
        `Native output with client_protocol_version is not supported by the embedded query endpoint for column ${JSON.stringify(column)} of type ${err.typeName}: cast it (e.g. toString) or ask for another format`,
      );
    }
    throw new Error(`Cannot re-frame the engine's Native output for client_protocol_version ${revision} at column ${JSON.stringify(column)}: ${(err as Error).message}`, { cause: err });
  }
  return Buffer.concat(out);
}
