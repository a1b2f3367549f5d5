/**
 * The HTTP side of the embedded query endpoint (query/endpoint.ts): reading
 * and decoding request bodies, credentials as a ClickHouse server takes
 * them, Content-Type by format, HTTP response compression.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { compressFrame } from 'lz4-napi';
import { ClickHouseHttpError } from './errors.ts';

const sha256 = (s: string) => createHash('sha256').update(s).digest();
/** Constant-time equality of two secrets of any lengths. */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

export interface Credentials {
  user: string;
  password: string;
  /** False when the request carried no credentials at all. */
  given: boolean;
}

export function credentialsOf(req: IncomingMessage, params: URLSearchParams): Credentials {
  const headerUser = header(req, 'x-clickhouse-user');
  const headerKey = header(req, 'x-clickhouse-key');
  const authorization = header(req, 'authorization');
  const inParams = params.has('user') || params.has('password');
  const inHeaders = headerUser !== undefined || headerKey !== undefined;
  const mixed = (a: string, b: string) =>
    ClickHouseHttpError.of('AUTHENTICATION_FAILED', `Invalid authentication: it is not allowed to use ${a} and ${b} simultaneously`);
  if (inHeaders) {
    if (authorization !== undefined) throw mixed('X-ClickHouse HTTP headers', 'Authorization HTTP header');
    if (inParams) throw mixed('X-ClickHouse HTTP headers', 'authentication via parameters');
    return { user: headerUser || 'default', password: headerKey ?? '', given: true };
  }
  if (authorization !== undefined) {
    if (inParams) throw mixed('Authorization HTTP header', 'authentication via parameters');
    const space = authorization.indexOf(' ');
    const scheme = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase();
    const info = space < 0 ? '' : authorization.slice(space + 1).trim();
    if (scheme === 'basic') {
      const decoded = Buffer.from(info, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      return { user: (colon < 0 ? decoded : decoded.slice(0, colon)) || 'default', password: colon < 0 ? '' : decoded.slice(colon + 1), given: true };
    }
    if (scheme === 'bearer') return { user: 'default', password: info, given: true };
    throw ClickHouseHttpError.of('AUTHENTICATION_FAILED', `Invalid authentication: '${scheme}' HTTP Authorization scheme is not supported`);
  }
  if (inParams) return { user: params.get('user') || 'default', password: params.get('password') ?? '', given: true };
  return { user: 'default', password: '', given: false };
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const CONTENT_TYPES: Array<[RegExp, string]> = [
  [/^(JSON|JSONStrings|JSONCompact|JSONCompactStrings|JSONColumns|JSONCompactColumns|JSONColumnsWithMetadata|JSONObjectEachRow|PrettyJSONEachRow)$/i, 'application/json; charset=UTF-8'],
  [/^(TabSeparated|TSV)(Raw)?(WithNames)?(AndTypes)?$|^TSVRaw|^TabSeparatedRaw/i, 'text/tab-separated-values; charset=UTF-8'],
  [/^CSVWithNames/i, 'text/csv; charset=UTF-8; header=present'],
  [/^CSV$/i, 'text/csv; charset=UTF-8; header=absent'],
  [/^XML$/i, 'application/xml; charset=UTF-8'],
  [/^(Native|RowBinary.*|Parquet|Arrow|ArrowStream|ORC|Avro|Protobuf.*|MsgPack|CapnProto|BSONEachRow|Npy|RawBLOB)$/i, 'application/octet-stream'],
];

export function contentTypeOf(format: string): string {
  return CONTENT_TYPES.find(([re]) => re.test(format))?.[1] ?? 'text/plain; charset=UTF-8';
}

const decompressors: Record<string, (buf: Buffer, o: zlib.ZlibOptions & zlib.BrotliOptions) => Promise<Buffer>> = {
  gzip: promisify(zlib.gunzip),
  'x-gzip': promisify(zlib.gunzip),
  deflate: promisify(zlib.inflate),
  br: promisify(zlib.brotliDecompress),
  ...(typeof zlib.zstdDecompress === 'function' && { zstd: promisify(zlib.zstdDecompress) as (buf: Buffer, o: object) => Promise<Buffer> }),
};

const compressors: Record<string, (buf: Uint8Array, level: number) => Promise<Buffer>> = {
  gzip: (b, level) => promisify(zlib.gzip)(b, { level }),
  deflate: (b, level) => promisify(zlib.deflate)(b, { level }),
  br: (b, level) => promisify(zlib.brotliCompress)(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: Math.min(level, 11) } }),
  ...(typeof zlib.zstdCompress === 'function' && {
    zstd: (b: Uint8Array, level: number) => promisify(zlib.zstdCompress)(b, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } }),
  }),
  // LZ4 frames, clickhouse-connect's first choice. (Not taken for request bodies: lz4-napi cannot
  // stop inflating at maxBodyBytes, and readers send no bodies worth compressing.)
  lz4: (b) => compressFrame(Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
};

export function truthy(v: string | null): boolean {
  return v !== null && /^(1|true|yes|on)$/i.test(v.trim());
}

export function utf8(buf: Buffer, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw ClickHouseHttpError.of(
      'BAD_ARGUMENTS',
      `The ${what} is not valid UTF-8: the embedded endpoint passes queries and INSERT data to chDB as text (binary formats such as RowBinary, Native or Parquet are not supported)`,
    );
  }
}

function tooLarge(max: number): ClickHouseHttpError {
  return ClickHouseHttpError.of('QUERY_IS_TOO_LARGE', `Request body is larger than the endpoint's limit of ${max} bytes`);
}

/**
 * The body, or a 413 once it passes `max` — without destroying the request,
 * so the error can still be answered (with Connection: close).
 */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > max) return Promise.reject(tooLarge(max));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > max) {
        settled = true;
        chunks.length = 0;
        req.pause();
        reject(tooLarge(max));
      } else chunks.push(chunk);
    });
    req.on('end', () => {
      if (!settled) {
        settled = true;
        resolve(Buffer.concat(chunks, size));
      }
    });
    req.on('error', (err) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
    });
  });
}

export async function decodeBody(req: IncomingMessage, raw: Buffer, max: number): Promise<Buffer> {
  const encoding = (header(req, 'content-encoding') ?? '').trim().toLowerCase();
  if (encoding === '' || encoding === 'identity' || encoding === 'none') return raw;
  const decompress = decompressors[encoding];
  if (!decompress) throw ClickHouseHttpError.of('UNKNOWN_COMPRESSION_METHOD', `Unknown compression method '${encoding}' in Content-Encoding: gzip, deflate, br and zstd are supported`);
  try {
    return await decompress(raw, { maxOutputLength: max });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(max);
    throw ClickHouseHttpError.of('CANNOT_DECOMPRESS', `Cannot decompress the ${encoding} request body: ${(err as Error).message}`);
  }
}

/** `query` and `param_*` fields of a multipart body join the URL's, as ClickHouse's handler reads them. */
export async function mergeMultipart(raw: Buffer, contentType: string, params: URLSearchParams): Promise<void> {
  let form: FormData;
  try {
    form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
  } catch (err) {
    throw ClickHouseHttpError.of('BAD_ARGUMENTS', `Cannot parse the multipart/form-data body: ${(err as Error).message}`);
  }
  for (const [name, value] of form) {
    if (typeof value !== 'string') {
      throw ClickHouseHttpError.of('NOT_IMPLEMENTED', `External data (file part '${name}') is not supported by the embedded query endpoint`);
    }
    if (name === 'query') params.append('query', value);
    else params.set(name, value);
  }
}

/**
 * `body` in an HTTP compression the client offers (`Accept-Encoding`, at
 * `http_zlib_compression_level`) unless `enable_http_compression` is off for
 * the request (`fallback`: the endpoint's default), else as it is.
 */
export async function httpCompressed(req: IncomingMessage, params: URLSearchParams, body: Uint8Array, fallback: string): Promise<{ body: Uint8Array; encoding?: string }> {
  if (!truthy(params.get('enable_http_compression') ?? fallback)) return { body };
  const codec = chooseCodec(header(req, 'accept-encoding') ?? '');
  if (!codec) return { body };
  const level = Number(params.get('http_zlib_compression_level') ?? 3);
  return { body: await compressors[codec]!(body, Number.isInteger(level) && level >= 1 && level <= 9 ? level : 3), encoding: codec };
}

function chooseCodec(acceptEncoding: string): string | undefined {
  const offered = acceptEncoding
    .toLowerCase()
    .split(',')
    .map((s) => s.split(';')[0]!.trim());
  return ['gzip', 'zstd', 'lz4', 'br', 'deflate'].find((c) => offered.includes(c) && compressors[c] !== undefined);
}
