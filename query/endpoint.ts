/**
 * The embedded ClickHouse-compatible HTTP query endpoint (`fleet start`,
 * :8123). In embedded mode one process owns the chDB store; this is how
 * curl, `@clickhouse/client`, dashboards and other perpass processes reach
 * it, exactly as they would a ClickHouse server's HTTP interface.
 *
 *     const q = await startQueryEndpoint({ store });          // 127.0.0.1:8123, read-only
 *     curl 'http://127.0.0.1:8123/?query=SELECT+*+FROM+fleet.v_cost_per_pass+FORMAT+CSV'
 *     createClient({ url: q.url }).query({ query, format: 'JSONEachRow', query_params })
 *
 * ## Engine
 *
 * Every request gets its own chDB session (`new Session(dir)` of the `chdb`
 * package) on the process's one data directory — the Store's, since chDB
 * binds one directory per process and sessions on it share the engine and
 * its data. Own sessions keep a request's settings, database and query
 * parameters out of the Store's session and out of other requests, as
 * ClickHouse's HTTP handler does, and the user's bytes come back verbatim in
 * the format asked for (`FORMAT …` in the query, else `default_format` /
 * `X-ClickHouse-Format`, else TabSeparated).
 *
 * ## Read-only, by the engine
 *
 * A reader's session is opened with ClickHouse's `readonly=1` as a
 * connection argument, so it is never writable: the engine refuses INSERT,
 * DDL, SYSTEM, table functions that reach out (file, url, s3, remote…),
 * `SET` and any setting change (`SETTINGS readonly=0` in the query, a
 * `readonly=0` URL parameter) with READONLY (164). URL parameters that are
 * not HTTP-transport parameters are settings; a reader may send:
 *
 * - output-format settings (READER_SETTINGS below: `output_format_json_quote_64bit_integers`,
 *   `output_format_json_quote_decimals`, `date_time_output_format`,
 *   `format_csv_delimiter`, `session_timezone`, …), which change how a
 *   result is written, never what may run. They become connection
 *   arguments of the readonly session (`@clickhouse/client` over
 *   `openStore({ url })` sends two of them with every request). ClickHouse
 *   itself refuses even these to readonly=1 users; readonly=2 would admit
 *   every setting — `max_memory_usage`, `max_threads`, … — which is exactly
 *   the override the endpoint must refuse;
 * - `max_execution_time` (a limit may be tightened, never lifted: a value
 *   above the endpoint's cap runs with the cap — clickhouse-go, hence
 *   Grafana, sends its query deadline + 5 s this way; 0, "no limit", is
 *   refused);
 * - `limit` (Grafana's "Row limit"), which only narrows a result.
 *
 * Any other setting is handed to the engine as `SET name = value` on the
 * readonly session, and the engine refuses it (164, or 115 for a name it
 * does not know; a value equal to the one in force changes nothing and the
 * engine lets it pass, e.g. `readonly=1`). Settings in the SQL
 * (`SETTINGS …`) are the engine's to refuse, format ones included. A
 * reader's session also carries `max_result_bytes` (`maxResultBytes`) and
 * `max_memory_usage` (`maxMemoryUsageBytes`).
 * JSON formats quote 64-bit integers as a server does by default
 * (`output_format_json_quote_64bit_integers=1`, which chDB turns off) and
 * write decimals unquoted as a server does; clients that need exact money
 * in JSON ask for `output_format_json_quote_decimals=1`.
 *
 * Beyond readonly, three things clickhouse-local does that a ClickHouse
 * server's HTTP handler does not: `INTO OUTFILE` and `FROM INFILE` (the
 * client side of clickhouse-local writes/reads a host file, readonly or
 * not) are refused with INTO_OUTFILE_NOT_ALLOWED / SUPPORT_IS_DISABLED;
 * multi-statements are refused with SYNTAX_ERROR like a server's; and
 * `KILL QUERY` is refused to readers (READONLY) because every chDB session
 * is the same user `default`, so a reader could cancel the pipeline's
 * inserts. These are found in the engine's canonical rendering of the
 * statement (query/sql.ts), never by matching the user's text.
 *
 * ## Write mode (opt-in)
 *
 * Off unless `writeToken` is given (`write: true` without a token refuses
 * to start). A request authenticated as user `perpass_writer` (option
 * `writeUser`) with password = the write token runs on a writable session:
 * INSERT into the perpass tables and the migrations' DDL, so another
 * process can `openStore({ url, username: 'perpass_writer', password })`
 * and `migrate()` through it as through a ClickHouse server. Its settings
 * are applied with `SET` (the engine validates them). Write mode admits
 * SELECT-like statements, INSERT, CREATE, ALTER, DROP, TRUNCATE, RENAME,
 * EXCHANGE, OPTIMIZE, DELETE, UPDATE, SET, USE — not SYSTEM, KILL, ATTACH,
 * DETACH, BACKUP, RESTORE, GRANT, … (ACCESS_DENIED), nor `INSERT INTO
 * FUNCTION`. INSERT data must be text (JSONEachRow, CSV, TSV, …: chDB takes
 * inline data as text); inline `VALUES` data is accepted only without a `;`
 * inside it, because clickhouse-local ends VALUES data at `;` and would run
 * what follows as another statement. GET requests are always read-only, as
 * on a ClickHouse server. The write token is full trust otherwise: chDB has
 * one user, so table functions and engines that reach the host (file(),
 * url(), File, URL) inside a writer's SELECT or CREATE are not sandboxed.
 *
 * ## Credentials
 *
 * What `@clickhouse/client` and ClickHouse accept: HTTP Basic auth,
 * `X-ClickHouse-User` / `X-ClickHouse-Key` headers, or `?user=&password=`
 * (mixing them is refused, as by ClickHouse); `Authorization: Bearer
 * <token>` also counts as a password. Readers: any user name except the
 * writer's (in write mode), password = `readToken` (no read token: anyone
 * on the bound interface reads; `fleet report` connects as `default`). Writer: user `perpass_writer`, password = `writeToken`.
 * Missing credentials when one is needed → REQUIRED_PASSWORD (194, HTTP
 * 401 with `WWW-Authenticate`); wrong → AUTHENTICATION_FAILED (516, HTTP
 * 403). Tokens are compared in constant time. `/ping` needs none.
 *
 * ## HTTP surface
 *
 * Supported: `GET|HEAD /ping` and `/replicas_status` → "Ok.\n"; `GET /`
 * without a query → "Ok.\n"; `GET /?query=` (always read-only); `POST /`
 * with the query in the body, or in `query` with the body appended after a
 * newline (INSERT data, as `@clickhouse/client`'s insert sends it);
 * `multipart/form-data` bodies with `query` and `param_*` fields (the
 * client's `use_multipart_params`); `param_<name>` query parameters,
 * bound by the engine in their text (Escaped) form as a server binds them;
 * `database` / `X-ClickHouse-Database` (default: the store's database,
 * skipped while it does not exist yet); `default_format` /
 * `X-ClickHouse-Format`; `query_id` / `X-ClickHouse-Query-Id`;
 * `client_protocol_version` (Native written as a server of that revision
 * writes it: block info and custom-serialization byte, query/native.ts —
 * what clickhouse-go, hence Grafana over HTTP, reads); ClickHouse's
 * compressed transfer `compress=1` / `decompress=1` with
 * `network_compression_method` LZ4 (default), ZSTD or NONE
 * (query/compression.ts — JDBC's default); `session_id` for readers
 * (query/session.ts: a read-only session holds nothing, so each request
 * still runs on its own session; a writer's is refused);
 * `Content-Encoding: gzip|deflate|br|zstd` request bodies;
 * `enable_http_compression=1` + `Accept-Encoding` (gzip, deflate, br, zstd, lz4)
 * responses with `http_zlib_compression_level`; `add_http_cors_header`;
 * response headers `X-ClickHouse-Query-Id`, `-Format`, `-Timezone`,
 * `-Summary`, `-Server-Display-Name`, `-Exception-Code`; Content-Type by
 * format. `wait_end_of_query` is always in effect: results are buffered
 * (up to `maxResultBytes`) so an error always arrives as an error response.
 *
 * Not supported: writer sessions (`session_id` with the write token), external data tables
 * (multipart file parts), roles, progress headers
 * (`send_progress_in_http_headers` is accepted and ignored), binary INSERT
 * formats (RowBinary, Native, Parquet bodies), the native TCP protocol
 * (Grafana's ClickHouse datasource must be set to HTTP), `/play`. The
 * summary's counters are chDB's one rows/bytes pair per query.
 *
 * ## Limits
 *
 * Request bodies are capped (`maxBodyBytes`, before and after
 * decompression: 413 / QUERY_IS_TOO_LARGE), statements at `maxQuerySize`
 * characters like ClickHouse's `max_query_size` (INSERT data after the
 * statement does not count), URL and headers at 1 MiB, reader results at `maxResultBytes` (the
 * engine's `max_result_bytes`), a reader query's memory at
 * `maxMemoryUsageBytes` (`max_memory_usage`: it shares the process with the
 * pipeline), every query at `maxExecutionTimeSec` (the
 * engine's `max_execution_time`, for writers a default they may change).
 * At most `maxConcurrentQueries` run at once (chDB runs each on a libuv
 * worker, which the pipeline's own queries share), `maxQueuedQueries` wait
 * up to `queueTimeoutMs`; beyond that TOO_MANY_SIMULTANEOUS_QUERIES with
 * 503 and Retry-After. A failing request is answered and logged; it never
 * takes the process down.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, totalmem } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { Session } from 'chdb';
import { compressFrame } from 'lz4-napi';
import { z } from 'zod';
import type { Store } from '../storage/store.ts';
import { type CompressionChoice, compressBlocks, compressionChoice, decompressBlocks } from './compression.ts';
import { ClickHouseHttpError } from './errors.ts';
import { nativeForRevision } from './native.ts';
import { checkSession } from './session.ts';
import { escapedText, hostFileClause, insertsIntoFunction, insertsValues, namedFormat, quotedIdentifier, statementKind, stringLiteral } from './sql.ts';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** The writer's user name (option `writeUser`) unless configured otherwise. */
export const WRITER_USER = 'perpass_writer';
/** The query parameter holding the statement while the engine renders it (set before the user's parameters). */
const ANALYSED = 'perpass_endpoint_statement';
/** The engine function that renders it. */
const CANONICAL = 'formatQuerySingleLine';

/**
 * Settings a reader may send: they change how a result is written, not
 * what may run, and none names a file (`format_schema`,
 * `format_template_*` and `output_format_schema` do, and are left out).
 * Names this chDB does not know are dropped at start.
 */
export const READER_SETTINGS: readonly string[] = [
  'extremes',
  'date_time_output_format',
  'interval_output_format',
  'session_timezone',
  'format_csv_delimiter',
  'format_csv_null_representation',
  'format_tsv_null_representation',
  'output_format_json_quote_64bit_integers',
  'output_format_json_quote_64bit_floats',
  'output_format_json_quote_denormals',
  'output_format_json_quote_decimals',
  'output_format_json_escape_forward_slashes',
  'output_format_json_named_tuples_as_objects',
  'output_format_json_array_of_rows',
  'output_format_json_validate_utf8',
  'output_format_json_pretty_print',
  'output_format_json_map_as_array_of_tuples',
  'output_format_write_statistics',
  'output_format_decimal_trailing_zeros',
  'output_format_csv_crlf_end_of_line',
  'output_format_tsv_crlf_end_of_line',
  'output_format_pretty_max_rows',
  'output_format_pretty_max_column_pad_width',
  'output_format_pretty_max_value_width',
  'output_format_pretty_color',
  'output_format_pretty_grid_charset',
  'output_format_pretty_row_numbers',
  'output_format_pretty_display_footer_column_names',
  'output_format_pretty_single_large_number_tip_threshold',
  'output_format_native_encode_types_in_binary_format',
  'output_format_native_write_json_as_string',
  'output_format_binary_write_json_as_string',
  'output_format_arrow_string_as_string',
  'output_format_arrow_low_cardinality_as_dictionary',
  'output_format_arrow_fixed_string_as_fixed_byte_array',
  'output_format_arrow_compression_method',
  'output_format_parquet_string_as_string',
  'output_format_parquet_compression_method',
  'output_format_orc_string_as_string',
  // Caps the rows a SELECT returns (Grafana's "Row limit"): it narrows a result, never widens what runs.
  'limit',
];

/** URL parameters of the HTTP interface itself: consumed here, never settings of the engine. */
const HTTP_PARAMS = new Set([
  'query',
  'query_id',
  'database',
  'default_format',
  'user',
  'password',
  'quota_key',
  'compress',
  'decompress',
  'buffer_size',
  'wait_end_of_query',
  'session_id',
  'session_timeout',
  'session_check',
  'close_session',
  'client_protocol_version',
  'stacktrace',
  'role',
  'enable_http_compression',
  'http_zlib_compression_level',
  'send_progress_in_http_headers',
  'http_headers_progress_interval_ms',
  'http_response_buffer_size',
  'http_wait_end_of_query',
  'cancel_http_readonly_queries_on_client_close',
  'add_http_cors_header',
  'http_native_compression_disable_checksumming_on_decompress',
  // How compress=1 compresses (settings on a server; here part of that transfer).
  'network_compression_method',
  'network_zstd_compression_level',
]);

/** Statement kinds write mode admits (the leading keyword of the engine's rendering). */
const WRITER_KINDS = new Set([
  'SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXPLAIN', 'EXISTS', 'CHECK', 'SET', 'USE',
  'INSERT', 'CREATE', 'ALTER', 'DROP', 'TRUNCATE', 'RENAME', 'EXCHANGE', 'OPTIMIZE', 'DELETE', 'UPDATE',
]);

/** Statement kinds that produce a result set. */
const OUTPUT_KINDS = new Set(['SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXPLAIN', 'EXISTS', 'CHECK']);

const storeSchema = z.custom<Store>(
  (v) => typeof v === 'object' && v !== null && typeof (v as Store).query === 'function' && typeof (v as Store).database === 'string',
  'must be a Store from openStore()',
);

const optionsSchema = z
  .strictObject({
    /** The process's embedded store: its chDB directory is the one queried (or give `dataDir`). */
    store: storeSchema.optional(),
    /** The chDB directory, when there is no Store object at hand. */
    dataDir: z.string().min(1).optional(),
    host: z.string().min(1).default('127.0.0.1'),
    /** 0 = a free port. */
    port: z.number().int().min(0).max(65535).default(8123),
    /** Database of unqualified names when the request names none (default: the store's, else `default`). */
    database: z.string().regex(IDENTIFIER, 'must be a plain identifier').optional(),
    /** Password readers must send (unset: none). */
    readToken: z.string().min(1).optional(),
    /** Password of the writer user; enables write mode. */
    writeToken: z.string().min(16, 'must be at least 16 characters').optional(),
    /** Asks for write mode explicitly: refused without `writeToken`. Default: on iff `writeToken` is set. */
    write: z.boolean().optional(),
    writeUser: z.string().regex(IDENTIFIER, 'must be a plain identifier').default(WRITER_USER),
    maxBodyBytes: z.number().int().min(1).default(64 * 1024 * 1024),
    maxQuerySize: z.number().int().min(1024).default(262_144),
    /** Cap on a reader's result (the engine's max_result_bytes); 0 = none. */
    maxResultBytes: z.number().int().min(0).default(256 * 1024 * 1024),
    /**
     * Cap on the memory of one reader query (the engine's max_memory_usage),
     * so a dashboard cannot starve the pipeline in the same process; 0 = none.
     * Default: a quarter of the machine's memory.
     */
    maxMemoryUsageBytes: z.number().int().min(0).default(Math.floor(totalmem() / 4)),
    maxExecutionTimeSec: z.number().positive().max(86_400).default(60),
    maxConcurrentQueries: z.number().int().min(1).max(64).default(2),
    maxQueuedQueries: z.number().int().min(0).default(64),
    queueTimeoutMs: z.number().int().min(0).default(30_000),
    /** Time to receive a whole request (headers and body). */
    requestTimeoutMs: z.number().int().min(1000).default(120_000),
    displayName: z.string().min(1).default(hostname()),
    /** Where request failures of the endpoint itself are reported (default: stderr). */
    log: z.custom<(message: string) => void>((v) => typeof v === 'function', 'must be a function').optional(),
  })
  .superRefine((o, ctx) => {
    if (!o.store && !o.dataDir) ctx.addIssue({ code: 'custom', path: ['store'], message: 'give the embedded store (or its dataDir)' });
    if (o.store && !o.store.dataDir) {
      ctx.addIssue({ code: 'custom', path: ['store'], message: `is a ClickHouse server (${o.store.location}), not embedded chDB: query that server directly` });
    }
    if (o.store?.dataDir && o.dataDir && path.resolve(o.dataDir) !== o.store.dataDir) {
      ctx.addIssue({ code: 'custom', path: ['dataDir'], message: `differs from the store's directory ${o.store.dataDir}` });
    }
    if (o.write && !o.writeToken) ctx.addIssue({ code: 'custom', path: ['writeToken'], message: 'write mode needs a write token' });
    if (o.writeToken !== undefined && o.write === false) ctx.addIssue({ code: 'custom', path: ['write'], message: 'is false but a writeToken is given' });
    if (o.writeToken !== undefined && o.writeToken === o.readToken) ctx.addIssue({ code: 'custom', path: ['writeToken'], message: 'must differ from readToken' });
  });

export type QueryEndpointOptions = z.input<typeof optionsSchema>;

export interface RunningQueryEndpoint {
  /** `http://host:port` to give a client. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly writeMode: boolean;
  /** Stops accepting, lets running requests finish (their queries end at the execution time cap), then returns. */
  close(): Promise<void>;
}

type Role = 'reader' | 'writer';

interface Engine {
  dataDir: string;
  version: string;
  timezone: string;
  readerSettings: Set<string>;
}

/** Bounds concurrent queries: chDB runs each on a libuv worker the rest of the process needs too. */
class Gate {
  #active = 0;
  readonly #waiting: Array<{ grant: () => void; timer: NodeJS.Timeout | undefined }> = [];
  readonly #max: number;
  readonly #maxQueued: number;
  readonly #timeoutMs: number;

  constructor(max: number, maxQueued: number, timeoutMs: number) {
    this.#max = max;
    this.#maxQueued = maxQueued;
    this.#timeoutMs = timeoutMs;
  }

  get active(): number {
    return this.#active;
  }

  acquire(): Promise<() => void> {
    const release = () => {
      const next = this.#waiting.shift();
      if (next) {
        clearTimeout(next.timer);
        next.grant();
      } else this.#active--;
    };
    if (this.#active < this.#max) {
      this.#active++;
      return Promise.resolve(once(release));
    }
    const busy = () =>
      ClickHouseHttpError.of('TOO_MANY_SIMULTANEOUS_QUERIES', `Too many simultaneous queries: ${this.#max} running, ${this.#waiting.length} waiting`, {
        status: 503,
        headers: { 'Retry-After': '1' },
      });
    if (this.#waiting.length >= this.#maxQueued) return Promise.reject(busy());
    return new Promise((resolve, reject) => {
      const entry: { grant: () => void; timer: NodeJS.Timeout | undefined } = { grant: () => resolve(once(release)), timer: undefined };
      entry.timer = setTimeout(() => {
        const i = this.#waiting.indexOf(entry);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(busy());
      }, this.#timeoutMs);
      this.#waiting.push(entry);
    });
  }
}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      f();
    }
  };
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();
/** Constant-time equality of two secrets of any lengths. */
function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

interface Credentials {
  user: string;
  password: string;
  /** False when the request carried no credentials at all. */
  given: boolean;
}

function credentialsOf(req: IncomingMessage, params: URLSearchParams): Credentials {
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

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

interface Request {
  method: string;
  role: Role;
  sql: string;
  settings: Array<[string, string]>;
  queryParams: Array<[string, string]>;
  database: string | undefined;
  defaultFormat: string | undefined;
  queryId: string;
  /** `client_protocol_version`: the revision Native output is written for (0: plain Native). */
  revision: number;
}

interface Outcome {
  body: Uint8Array;
  format: string | undefined;
  kind: string;
  rows: number;
  bytes: number;
  elapsedSec: number;
}

const CONTENT_TYPES: Array<[RegExp, string]> = [
  [/^(JSON|JSONStrings|JSONCompact|JSONCompactStrings|JSONColumns|JSONCompactColumns|JSONColumnsWithMetadata|JSONObjectEachRow|PrettyJSONEachRow)$/i, 'application/json; charset=UTF-8'],
  [/^(TabSeparated|TSV)(Raw)?(WithNames)?(AndTypes)?$|^TSVRaw|^TabSeparatedRaw/i, 'text/tab-separated-values; charset=UTF-8'],
  [/^CSVWithNames/i, 'text/csv; charset=UTF-8; header=present'],
  [/^CSV$/i, 'text/csv; charset=UTF-8; header=absent'],
  [/^XML$/i, 'application/xml; charset=UTF-8'],
  [/^(Native|RowBinary.*|Parquet|Arrow|ArrowStream|ORC|Avro|Protobuf.*|MsgPack|CapnProto|BSONEachRow|Npy|RawBLOB)$/i, 'application/octet-stream'],
];

function contentTypeOf(format: string): string {
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

export async function startQueryEndpoint(options: QueryEndpointOptions): Promise<RunningQueryEndpoint> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'options'}: ${i.message}`);
    throw new TypeError(`startQueryEndpoint: ${problems.join('; ')}`);
  }
  const o = parsed.data;
  const writeMode = o.writeToken !== undefined;
  const log = o.log ?? ((m: string) => process.stderr.write(`query endpoint: ${m}\n`));
  const defaultDatabase = o.database ?? o.store?.database;
  const engine = await probeEngine(o.store?.dataDir ?? path.resolve(o.dataDir!));
  const gate = new Gate(o.maxConcurrentQueries, o.maxQueuedQueries, o.queueTimeoutMs);
  const inflight = new Set<Promise<void>>();
  /** Responses the client asked to get in ClickHouse's compressed blocks (compress=1). */
  const compressedResponses = new WeakMap<ServerResponse, CompressionChoice>();

  function authenticate(req: IncomingMessage, params: URLSearchParams, method: string): Role {
    const c = credentialsOf(req, params);
    const required = (what: string) =>
      ClickHouseHttpError.of('REQUIRED_PASSWORD', `${c.user}: ${what} requires a password`, {
        headers: { 'WWW-Authenticate': 'Basic realm="ClickHouse server HTTP API", charset="UTF-8"' },
      });
    const failed = () =>
      ClickHouseHttpError.of('AUTHENTICATION_FAILED', `${c.user}: Authentication failed: password is incorrect, or there is no user with such name`);
    if (writeMode && c.user === o.writeUser) {
      if (!c.given || c.password === '') throw required('the writer user');
      if (!sameSecret(c.password, o.writeToken!)) throw failed();
      // GET is read-only on a ClickHouse server whoever asks.
      return method === 'POST' ? 'writer' : 'reader';
    }
    if (o.readToken !== undefined) {
      if (!c.given || c.password === '') throw required('this endpoint');
      if (!sameSecret(c.password, o.readToken)) throw failed();
    }
    return 'reader';
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('X-ClickHouse-Server-Display-Name', o.displayName);
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://endpoint');
    if (method === 'OPTIONS') {
      res.writeHead(204, { Allow: 'GET, HEAD, POST, OPTIONS' }).end();
      return;
    }
    if (url.pathname === '/ping' || url.pathname === '/replicas_status') {
      if (method !== 'GET' && method !== 'HEAD') throw ClickHouseHttpError.of('UNSUPPORTED_METHOD', `HTTP method ${method} is not supported by ${url.pathname}`, { status: 405 });
      res.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8' }).end('Ok.\n');
      return;
    }
    if (url.pathname !== '/') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=UTF-8' });
      res.end(`There is no handle ${url.pathname}\n\nUse / or /ping for health checks.\nOr /replicas_status for more sophisticated health checks.\n\nSend queries from your program with POST method or GET /?query=...\n`);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') {
      throw ClickHouseHttpError.of('UNSUPPORTED_METHOD', `HTTP method ${method} is not supported: use GET or POST`, { status: 405 });
    }
    const params = new URLSearchParams(url.searchParams);
    if (method !== 'POST' && !params.has('query')) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8' }).end('Ok.\n');
      return;
    }
    const role = authenticate(req, params, method);
    // compress=1: the response, an error included, goes out in ClickHouse's compressed blocks, as a server sends it.
    const blocks = truthy(params.get('compress')) ? compressionChoice(params.get('network_compression_method'), params.get('network_zstd_compression_level')) : undefined;
    if (blocks) compressedResponses.set(res, blocks);
    if (method === 'POST' && req.headers['content-length'] === undefined && !/chunked/i.test(header(req, 'transfer-encoding') ?? '')) {
      throw ClickHouseHttpError.of('HTTP_LENGTH_REQUIRED', 'The Transfer-Encoding is not chunked and there is no Content-Length header for POST request');
    }
    let body = '';
    if (method === 'POST') {
      let raw = await decodeBody(req, await readBody(req, o.maxBodyBytes), o.maxBodyBytes);
      if (truthy(params.get('decompress'))) raw = decompressBlocks(raw, o.maxBodyBytes, !truthy(params.get('http_native_compression_disable_checksumming_on_decompress')));
      const contentType = header(req, 'content-type') ?? '';
      if (/^multipart\/form-data/i.test(contentType)) {
        await mergeMultipart(raw, contentType, params);
      } else body = utf8(raw, 'request body');
    }
    if (params.getAll('query').some((q) => q.includes('\0')) || body.includes('\0')) {
      throw ClickHouseHttpError.of('BAD_ARGUMENTS', 'The query contains a NUL byte: the embedded endpoint passes queries and INSERT data to chDB as text');
    }
    const request = prepare(req, method, role, params, body);
    const release = await gate.acquire();
    let outcome: Outcome;
    try {
      outcome = await execute(request);
    } finally {
      release();
    }
    await respond(req, res, request, params, outcome);
  }

  function prepare(req: IncomingMessage, method: string, role: Role, params: URLSearchParams, body: string): Request {
    const urlQuery = params.getAll('query').join('');
    const sql = method === 'POST' && body !== '' ? (urlQuery === '' ? body : `${urlQuery}\n${body}`) : urlQuery;
    if (sql.trim() === '') throw ClickHouseHttpError.of('SYNTAX_ERROR', 'Empty query');
    checkSession(params, role);
    if (params.has('role')) throw ClickHouseHttpError.of('NOT_IMPLEMENTED', 'Roles are not supported by the embedded query endpoint');
    const revisionParam = params.get('client_protocol_version');
    const revision = revisionParam === null ? 0 : Number(revisionParam);
    if (!Number.isSafeInteger(revision) || revision < 0 || revisionParam?.trim() === '') {
      throw ClickHouseHttpError.of('BAD_ARGUMENTS', `client_protocol_version must be a non-negative integer, not '${revisionParam}'`);
    }
    const settings: Array<[string, string]> = [];
    const queryParams: Array<[string, string]> = [];
    const seen = new Set<string>();
    for (const [name, value] of [...params].reverse()) {
      if (seen.has(name)) continue; // the last occurrence wins
      seen.add(name);
      if (name.startsWith('param_')) {
        const p = name.slice('param_'.length);
        if (!/^[A-Za-z0-9_]+$/.test(p)) throw ClickHouseHttpError.of('BAD_ARGUMENTS', `Invalid query parameter name ${JSON.stringify(p)}`);
        if (value.includes('\0')) throw ClickHouseHttpError.of('BAD_ARGUMENTS', `Query parameter ${p} contains a NUL byte`);
        queryParams.push([p, value]);
      } else if (!HTTP_PARAMS.has(name) && name !== '') {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw ClickHouseHttpError.of('UNKNOWN_SETTING', `Unknown setting '${name}'`);
        if (value.includes('\0')) throw ClickHouseHttpError.of('BAD_ARGUMENTS', `Setting ${name} contains a NUL byte`);
        if (role === 'writer' && name === 'dialect' && value !== 'clickhouse') {
          throw ClickHouseHttpError.of('BAD_ARGUMENTS', `dialect '${value}' is not supported by the embedded query endpoint`);
        }
        settings.push([name, value]);
      }
    }
    const requestedDatabase = header(req, 'x-clickhouse-database') || params.get('database') || undefined;
    if (requestedDatabase !== undefined && requestedDatabase.includes('\0')) throw ClickHouseHttpError.of('BAD_ARGUMENTS', 'The database name contains a NUL byte');
    return {
      method,
      role,
      sql,
      settings: settings.reverse(),
      queryParams: queryParams.reverse(),
      database: requestedDatabase,
      defaultFormat: header(req, 'x-clickhouse-format') || params.get('default_format') || undefined,
      queryId: params.get('query_id') || header(req, 'x-clickhouse-query-id') || randomUUID(),
      revision,
    };
  }

  /**
   * The session of one request: readonly=1 from its first moment for
   * readers. Its max_query_size leaves room for the statement as a
   * parameter of its own analysis; the query's size is checked against
   * `maxQuerySize` here instead.
   */
  function openSession(r: Request): { session: Session; refused: Array<[string, string]> } {
    const cap = o.maxExecutionTimeSec;
    // ClickHouse's default, which chDB turns off: JSON formats quote 64-bit integers unless the client asks otherwise.
    const base = [`--max_query_size=${2 * o.maxQuerySize + 4096}`, '--output_format_json_quote_64bit_integers=1'];
    if (r.role === 'writer') return { session: new Session(engine.dataDir, { connectionArgs: [...base, `--max_execution_time=${cap}`] }), refused: [] };
    let maxExecutionTime = cap;
    const allowed: Array<[string, string]> = [];
    const refused: Array<[string, string]> = [];
    for (const [name, value] of r.settings) {
      if (name === 'max_execution_time') {
        const v = Number(value);
        // Above the cap it runs with the cap: clickhouse-go sends its context's deadline + 5 s (Grafana: 65).
        if (value.trim() !== '' && Number.isFinite(v) && v > 0) maxExecutionTime = Math.min(v, cap);
        else refused.push([name, value]);
      } else if (engine.readerSettings.has(name)) allowed.push([name, value]);
      else refused.push([name, value]);
    }
    const args = [
      ...base,
      `--max_execution_time=${maxExecutionTime}`,
      ...(o.maxResultBytes > 0 ? [`--max_result_bytes=${o.maxResultBytes}`, '--result_overflow_mode=throw'] : []),
      ...(o.maxMemoryUsageBytes > 0 ? [`--max_memory_usage=${o.maxMemoryUsageBytes}`] : []),
      ...allowed.map(([k, v]) => `--${k}=${v}`),
      // Last, so nothing before it can matter: the session is read-only from its first query.
      '--readonly=1',
    ];
    try {
      return { session: new Session(engine.dataDir, { connectionArgs: args }), refused };
    } catch (err) {
      throw explainBadSettings(allowed, err);
    }
  }

  /** chDB says only "Failed to create connection" for a bad connection argument: let the engine name the bad value. */
  function explainBadSettings(allowed: Array<[string, string]>, err: unknown): ClickHouseHttpError {
    let probe: Session | undefined;
    try {
      probe = new Session(engine.dataDir, { connectionArgs: ['--readonly=2'] });
      for (const [k, v] of allowed) probe.query(`SET ${k} = ${stringLiteral(v)}`, 'TSV');
    } catch (e) {
      if (probe) return ClickHouseHttpError.fromEngine(e);
    } finally {
      probe?.close();
    }
    return ClickHouseHttpError.of('BAD_ARGUMENTS', `Cannot apply the request's settings: ${(err as Error).message}`, { cause: err });
  }

  async function execute(r: Request): Promise<Outcome> {
    const { session, refused } = openSession(r);
    // A backstop only: the engine's max_execution_time stops the query. A writer may lift that one.
    const timeout = r.role === 'writer' && r.settings.some(([k]) => k === 'max_execution_time') ? undefined : (o.maxExecutionTimeSec + 30) * 1000;
    const run = (sql: string) => session.queryAsync(sql, { format: 'TSV', timeout });
    try {
      // A reader's other settings go to the engine, whose readonly refuses them.
      for (const [k, v] of refused) await run(`SET ${k} = ${stringLiteral(v)}`);
      if (r.role === 'writer') for (const [k, v] of r.settings) await run(`SET ${k} = ${stringLiteral(v)}`);

      const canonical = await canonicalOf(session, r.sql, timeout);
      const kind = statementKind(canonical);
      const hostFile = hostFileClause(canonical);
      if (hostFile === 'INTO OUTFILE') throw ClickHouseHttpError.of('INTO_OUTFILE_NOT_ALLOWED', 'INTO OUTFILE is not allowed');
      if (hostFile === 'FROM INFILE') throw ClickHouseHttpError.of('SUPPORT_IS_DISABLED', 'FROM INFILE is not allowed over HTTP: send the data in the request body');
      if (r.role === 'reader' && kind === 'KILL') {
        throw ClickHouseHttpError.of('READONLY', 'KILL is not allowed in readonly mode: every embedded chDB session is the same user, so it could cancel the pipeline\'s queries');
      }
      if (r.role === 'writer') {
        if (!WRITER_KINDS.has(kind)) throw ClickHouseHttpError.of('ACCESS_DENIED', `${kind || 'This'} statements are not allowed over the embedded query endpoint`);
        if (insertsIntoFunction(canonical)) throw ClickHouseHttpError.of('ACCESS_DENIED', 'INSERT INTO FUNCTION is not allowed over the embedded query endpoint');
        if (insertsValues(canonical) && r.sql.replace(/;\s*$/, '').includes(';')) {
          throw ClickHouseHttpError.of(
            'NOT_IMPLEMENTED',
            "Inline VALUES data containing ';' is not supported by the embedded query endpoint (clickhouse-local ends VALUES data at ';'): send the rows as FORMAT JSONEachRow, CSV or TSV",
          );
        }
      }

      const database = r.database ?? defaultDatabase;
      if (database !== undefined) {
        try {
          await run(`USE ${quotedIdentifier(database)}`);
        } catch (err) {
          // The endpoint's default database may not exist yet (not migrated); one the client names must.
          if (r.database !== undefined || ClickHouseHttpError.fromEngine(err).code !== 81) throw err;
        }
      }
      for (const [k, v] of r.queryParams) await run(`SET param_${k} = ${stringLiteral(v)}`);
      const result = await session.queryAsync(r.sql, { format: r.defaultFormat ?? 'TabSeparated', timeout });
      return {
        body: result.bytes(),
        format: OUTPUT_KINDS.has(kind) ? (namedFormat(canonical) ?? r.defaultFormat ?? 'TabSeparated') : undefined,
        kind,
        rows: result.rowsRead,
        bytes: result.bytesRead,
        elapsedSec: result.elapsed,
      };
    } catch (err) {
      throw ClickHouseHttpError.fromEngine(err);
    } finally {
      session.close();
    }
  }

  /**
   * The engine's canonical rendering of the statement, on the request's own
   * session. A text longer than max_query_size can only be an INSERT with
   * inline data, whose head is within it.
   */
  async function canonicalOf(session: Session, sql: string, timeout: number | undefined): Promise<string> {
    const truncated = sql.length > o.maxQuerySize;
    const text = truncated ? sql.slice(0, o.maxQuerySize) : sql;
    await session.queryAsync(`SET param_${ANALYSED} = ${stringLiteral(escapedText(text))}`, { format: 'TSV', timeout });
    let canonical: string;
    try {
      canonical = (await session.queryAsync(`SELECT ${CANONICAL}({${ANALYSED}:String})`, { format: 'RawBLOB', timeout })).text();
    } catch (err) {
      // A syntax error names this wrapper as its scope; the client sent only the statement.
      throw ClickHouseHttpError.fromEngine(err).withoutScope(`SELECT ${CANONICAL}(`);
    }
    if (truncated && !(statementKind(canonical) === 'INSERT' && /\bFORMAT\s+[A-Za-z][A-Za-z0-9_]*\s*$/.test(canonical))) {
      throw ClickHouseHttpError.of('SYNTAX_ERROR', `Max query size exceeded (${o.maxQuerySize} bytes)`);
    }
    return canonical;
  }

  async function respond(req: IncomingMessage, res: ServerResponse, r: Request, params: URLSearchParams, out: Outcome): Promise<void> {
    const isInsert = out.kind === 'INSERT';
    const summary = {
      read_rows: String(out.rows),
      read_bytes: String(out.bytes),
      written_rows: String(isInsert ? out.rows : 0),
      written_bytes: String(isInsert ? out.bytes : 0),
      total_rows_to_read: '0',
      result_rows: String(isInsert ? 0 : out.rows),
      result_bytes: String(isInsert ? 0 : out.bytes),
      elapsed_ns: String(Math.round(out.elapsedSec * 1e9)),
    };
    const headers: Record<string, string> = {
      'Content-Type': out.format ? contentTypeOf(out.format) : 'text/plain; charset=UTF-8',
      'X-ClickHouse-Query-Id': r.queryId,
      'X-ClickHouse-Timezone': engine.timezone,
      'X-ClickHouse-Summary': JSON.stringify(summary),
      ...(out.format && { 'X-ClickHouse-Format': out.format }),
      ...cors(req, params),
    };
    let body: Uint8Array = out.format !== undefined && /^Native$/i.test(out.format) ? nativeForRevision(out.body, r.revision) : out.body;
    const blocks = compressedResponses.get(res);
    if (blocks) body = compressBlocks(body, blocks);
    if (truthy(params.get('enable_http_compression'))) {
      const codec = chooseCodec(header(req, 'accept-encoding') ?? '');
      if (codec) {
        const level = Number(params.get('http_zlib_compression_level') ?? 3);
        body = await compressors[codec]!(body, Number.isInteger(level) && level >= 1 && level <= 9 ? level : 3);
        headers['Content-Encoding'] = codec;
      }
    }
    headers['Content-Length'] = String(body.byteLength);
    res.writeHead(200, headers);
    res.end(body);
  }

  function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const e = ClickHouseHttpError.fromEngine(err);
    if (e.code === 1002) log(`request failed: ${(err as Error)?.stack ?? String(err)}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const text = Buffer.from(e.body(engine.version));
    const blocks = compressedResponses.get(res);
    const body = blocks ? compressBlocks(text, blocks) : text;
    res.writeHead(e.status, {
      'Content-Type': 'text/plain; charset=UTF-8',
      'X-ClickHouse-Exception-Code': String(e.code),
      'Content-Length': String(body.byteLength),
      ...e.headers,
      ...(!req.complete && { Connection: 'close' }),
    });
    res.end(body);
  }

  const server = createServer(
    { requestTimeout: o.requestTimeoutMs, headersTimeout: Math.min(60_000, o.requestTimeoutMs), keepAliveTimeout: 10_000, maxHeaderSize: 1024 * 1024 },
    (req, res) => {
      const p = handle(req, res)
        .catch((err: unknown) => fail(req, res, err))
        .catch((err: unknown) => {
          log(`cannot answer a request: ${(err as Error)?.stack ?? String(err)}`);
          res.destroy();
        })
        .finally(() => inflight.delete(p));
      inflight.add(p);
    },
  );
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && !socket.writableEnded) {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    } else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(new Error(`query endpoint cannot listen on ${o.host}:${o.port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(o.port, o.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log(`server error: ${err.message}`));
  const port = (server.address() as AddressInfo).port;
  const urlHost = o.host.includes(':') ? `[${o.host}]` : o.host === '0.0.0.0' ? '127.0.0.1' : o.host === '::' ? '[::1]' : o.host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    host: o.host,
    port,
    writeMode,
    close: () =>
      (closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await Promise.allSettled([...inflight]);
        server.closeAllConnections();
        await closed;
      })()),
  };
}

/** The engine's version, time zone and settings, from a session on the directory (which also proves it opens). */
async function probeEngine(dataDir: string): Promise<Engine> {
  const session = new Session(dataDir, { connectionArgs: ['--readonly=1'] });
  try {
    const info = (await session.queryAsync('SELECT version(), timezone()', { format: 'TSV' })).text().trim().split('\t');
    const known = new Set(
      (await session.queryAsync('SELECT name FROM system.settings', { format: 'TSVRaw' })).text().split('\n').filter(Boolean),
    );
    return {
      dataDir,
      version: info[0] ?? 'unknown',
      timezone: info[1] ?? 'UTC',
      readerSettings: new Set(READER_SETTINGS.filter((s) => known.has(s))),
    };
  } finally {
    session.close();
  }
}

function truthy(v: string | null): boolean {
  return v !== null && /^(1|true|yes|on)$/i.test(v.trim());
}

function utf8(buf: Buffer, what: string): string {
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
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
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

async function decodeBody(req: IncomingMessage, raw: Buffer, max: number): Promise<Buffer> {
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
async function mergeMultipart(raw: Buffer, contentType: string, params: URLSearchParams): Promise<void> {
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

function chooseCodec(acceptEncoding: string): string | undefined {
  const offered = acceptEncoding
    .toLowerCase()
    .split(',')
    .map((s) => s.split(';')[0]!.trim());
  return ['gzip', 'zstd', 'lz4', 'br', 'deflate'].find((c) => offered.includes(c) && compressors[c] !== undefined);
}

function cors(req: IncomingMessage, params: URLSearchParams): Record<string, string> {
  return truthy(params.get('add_http_cors_header')) && header(req, 'origin') ? { 'Access-Control-Allow-Origin': '*' } : {};
}
