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
 * ## Least privilege: the endpoint is the sandbox
 *
 * chDB has no users or grants, so every statement is checked before it runs
 * by a default-deny policy on the engine's own parse of it (query/guard.ts
 * renders and parses it on a pooled analysis session; query/policy.ts
 * walks the parse: statement kinds, functions, table functions, engines,
 * tables, settings). Nothing a reader or the writer sends reaches the
 * host's files, the network, a process or server-wide state; see
 * docs/operations.md#query-endpoint-least-privilege.
 *
 * A reader's session is also opened with ClickHouse's `readonly=1` as a
 * connection argument, so the engine refuses writes and setting changes a
 * second time. The settings the policy allows (URL parameters, the
 * statement's `SETTINGS`) become connection arguments of that session, so
 * a `SETTINGS` clause equal to them passes readonly. Every reader session
 * carries `max_result_bytes`, `max_memory_usage` (a quarter of the
 * process's memory limit by default), `max_threads` and
 * `max_execution_time` caps; a tenant-scoped reader's also carries
 * `additional_table_filters` for its tenant on every perpass table with a
 * `tenant` column. A limit may be tightened, never lifted: a
 * `max_execution_time` URL parameter above the cap runs with the cap
 * (clickhouse-go, hence Grafana, sends its query deadline + 5 s this way;
 * 0, "no limit", is refused), while one in a `SETTINGS` clause must be
 * within it. JSON formats quote 64-bit integers as a server does by
 * default (`output_format_json_quote_64bit_integers=1`, which chDB turns
 * off) and write decimals unquoted as a server does; clients that need
 * exact money in JSON ask for `output_format_json_quote_decimals=1`.
 *
 * Multi-statements are refused with SYNTAX_ERROR, as by a server (the
 * engine's rendering takes exactly one statement).
 *
 * Sessions are pooled by their connection arguments (query/sessions.ts)
 * and reused only by requests that leave nothing in them.
 *
 * ## Write mode (opt-in)
 *
 * Off unless `writeToken` is given (`write: true` without a token refuses
 * to start). A request authenticated as user `perpass_writer` (option
 * `writeUser`) with password = the write token runs on a writable session:
 * INSERT into the perpass tables and the migrations' DDL, so another
 * process can `openStore({ url, username: 'perpass_writer', password })`
 * and `migrate()` through it as through a ClickHouse server. The same
 * policy holds for it (no SYSTEM, KILL, ATTACH, BACKUP, INSERT INTO
 * FUNCTION, host-reaching engines or functions). INSERT data is text
 * (JSONEachRow, CSV, TSV, …) after the statement, or binary (RowBinary…,
 * Native) with the statement in the URL (binary-insert.ts); inline
 * `VALUES` data must be literals without a `;` (clickhouse-local ends
 * VALUES data at `;`, and expressions in it are not part of the parse).
 * GET requests are always read-only, as on a ClickHouse server.
 *
 * ## Credentials
 *
 * What `@clickhouse/client` and ClickHouse accept: HTTP Basic auth,
 * `X-ClickHouse-User` / `X-ClickHouse-Key` headers, or `?user=&password=`
 * (mixing them is refused, as by ClickHouse); `Authorization: Bearer
 * <token>` also counts as a password. Readers: any user name except the
 * writer's (in write mode), password = `readToken` or one of
 * `tenantTokens` (a reader bound to that tenant); neither: anyone on the
 * bound interface reads (`fleet report` connects as `default`). Writer:
 * user `perpass_writer`, password = `writeToken`.
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
 * (query/session.ts: a read-only session holds nothing, so nothing is kept
 * for the id — each request is analysed, checked and run like one without
 * it, on a pooled session; a writer's is refused);
 * `Content-Encoding: gzip|deflate|br|zstd` request bodies;
 * responses in an `Accept-Encoding` the client offers (gzip, deflate, br,
 * zstd, lz4) with `http_zlib_compression_level`: `enable_http_compression`
 * is on in every session's profile, and `=0` turns it off. Never CORS:
 * `add_http_cors_header` is refused; a `Host` header that is not a name of
 * the bound address is refused (DNS rebinding);
 * response headers `X-ClickHouse-Query-Id`, `-Format`, `-Timezone`,
 * `-Summary`, `-Server-Display-Name`, `-Exception-Code`; Content-Type by
 * format. `wait_end_of_query` is always in effect: results are buffered
 * (up to `maxResultBytes`) so an error always arrives as an error response.
 *
 * Not supported: writer sessions (`session_id` with the write token),
 * external data tables (multipart file parts), roles, progress headers
 * (`send_progress_in_http_headers` is accepted and ignored), other binary
 * INSERT formats (Parquet, Arrow, … bodies), the native TCP protocol
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
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Session } from 'chdb';
import { type CompressionChoice, compressBlocks, compressionChoice, decompressBlocks } from './compression.ts';
import { ClickHouseHttpError } from './errors.ts';
import { binaryInsertFormat, withSpooledData } from './binary-insert.ts';
import { Gate } from './gate.ts';
import { checkHost, openGuard } from './guard.ts';
import { contentTypeOf, credentialsOf, decodeBody, header, httpCompressed, mergeMultipart, readBody, sameSecret, truthy, utf8 } from './http.ts';
import { nativeForRevision } from './native.ts';
import { checkSession } from './session.ts';
import { SessionPool } from './sessions.ts';
import { checkStatement, valuesWithSemicolon, type Role, type Verdict } from './policy.ts';
import { ALL_FIXED, cappedUrlSetting, HTTP_COMPRESSION_DEFAULT, SCOPED_FIXED, settingRefusal, unchanged, WRITER_FIXED, type SettingsLimits } from './settings.ts';
import { quotedIdentifier, stringLiteral } from '../storage/sql-text.ts';
import { namedFormat, statementKind } from './sql.ts';
import { optionsSchema, type QueryEndpointOptions } from './options.ts';
import { serveConsole } from '../console/serve.ts';

export { memoryLimit, WRITER_USER, type QueryEndpointOptions } from './options.ts';

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

/** Statement kinds that produce a result set. */
const OUTPUT_KINDS = new Set(['SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXPLAIN', 'EXISTS', 'CHECK']);

export interface RunningQueryEndpoint {
  /** `http://host:port` to give a client. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly writeMode: boolean;
  /** Stops accepting, lets running requests finish (their queries end at the execution time cap), then returns. */
  close(): Promise<void>;
}

interface Engine {
  dataDir: string;
  version: string;
  timezone: string;
}

interface Request {
  method: string;
  role: Role;
  /** The tenant of a tenant-scoped reader. */
  tenant: string | undefined;
  sql: string;
  settings: Array<[string, string]>;
  queryParams: Array<[string, string]>;
  database: string | undefined;
  defaultFormat: string | undefined;
  queryId: string;
  /** `client_protocol_version`: the revision Native output is written for (0: plain Native). */
  revision: number;
  /** A writer's binary INSERT data, read from a spool file (binary-insert.ts). */
  data?: Uint8Array;
}

interface Outcome {
  body: Uint8Array;
  format: string | undefined;
  kind: string;
  rows: number;
  bytes: number;
  elapsedSec: number;
}

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
  /** The perpass database: the one a tenant-scoped reader reads. */
  const storeDatabase = o.store?.database ?? o.database ?? 'default';
  const engine = await probeEngine(o.store?.dataDir ?? path.resolve(o.dataDir!));
  const pool = new SessionPool(engine.dataDir, 2 * o.maxConcurrentQueries + 2);
  const guard = await openGuard({ maxQuerySize: o.maxQuerySize, pool });
  const tenantTokens = Object.entries(o.tenantTokens ?? {});
  const limits: SettingsLimits = { maxExecutionTimeSec: o.maxExecutionTimeSec, maxThreads: o.maxThreads, maxResultBytes: o.maxResultBytes };
  const gate = new Gate(o.maxConcurrentQueries, o.maxQueuedQueries, o.queueTimeoutMs);
  const inflight = new Set<Promise<void>>();
  /** Responses the client asked to get in ClickHouse's compressed blocks (compress=1). */
  const compressedResponses = new WeakMap<ServerResponse, CompressionChoice>();

  function authenticate(req: IncomingMessage, params: URLSearchParams, method: string): { role: Role; tenant?: string } {
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
      return { role: method === 'POST' ? 'writer' : 'reader' };
    }
    if (o.readToken === undefined && tenantTokens.length === 0) return { role: 'reader' };
    if (!c.given || c.password === '') throw required('this endpoint');
    // Every token is compared, so the time taken does not say which one matched.
    let tenant: string | undefined;
    let unscoped = o.readToken !== undefined && sameSecret(c.password, o.readToken);
    for (const [token, t] of tenantTokens) if (sameSecret(c.password, token)) tenant = t;
    if (tenant !== undefined) unscoped = false;
    if (!unscoped && tenant === undefined) throw failed();
    return { role: 'reader', ...(tenant !== undefined && { tenant }) };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('X-ClickHouse-Server-Display-Name', o.displayName);
    checkHost(req, o.host, o.allowedHosts);
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
    // The web console's static files; its data comes back through `/` like any reader's (console/serve.ts).
    if (serveConsole(url.pathname, method, res)) return;
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
    const { role, tenant } = authenticate(req, params, method);
    // compress=1: the response, an error included, goes out in ClickHouse's compressed blocks, as a server sends it.
    const blocks = truthy(params.get('compress')) ? compressionChoice(params.get('network_compression_method'), params.get('network_zstd_compression_level')) : undefined;
    if (blocks) compressedResponses.set(res, blocks);
    if (method === 'POST' && req.headers['content-length'] === undefined && !/chunked/i.test(header(req, 'transfer-encoding') ?? '')) {
      throw ClickHouseHttpError.of('HTTP_LENGTH_REQUIRED', 'The Transfer-Encoding is not chunked and there is no Content-Length header for POST request');
    }
    let body = '';
    /** A writer's binary INSERT data (binary-insert.ts): rows, not part of the statement. */
    let data: Uint8Array | undefined;
    if (method === 'POST') {
      let raw = await decodeBody(req, await readBody(req, o.maxBodyBytes), o.maxBodyBytes);
      if (truthy(params.get('decompress'))) raw = decompressBlocks(raw, o.maxBodyBytes, !truthy(params.get('http_native_compression_disable_checksumming_on_decompress')));
      const contentType = header(req, 'content-type') ?? '';
      if (/^multipart\/form-data/i.test(contentType)) {
        await mergeMultipart(raw, contentType, params);
      } else if (role === 'writer' && binaryInsertFormat(params.getAll('query').join('')) !== undefined) data = raw;
      else body = utf8(raw, 'request body');
    }
    if (params.getAll('query').some((q) => q.includes('\0')) || body.includes('\0')) {
      throw ClickHouseHttpError.of('BAD_ARGUMENTS', 'The query contains a NUL byte: the embedded endpoint passes queries and INSERT data to chDB as text');
    }
    const request = { ...prepare(req, method, role, tenant, params, body), ...(data && { data }) };
    const release = await gate.acquire();
    let outcome: Outcome;
    try {
      outcome = await execute(request);
    } finally {
      release();
    }
    await respond(req, res, request, params, outcome);
  }

  function prepare(req: IncomingMessage, method: string, role: Role, tenant: string | undefined, params: URLSearchParams, body: string): Request {
    const urlQuery = params.getAll('query').join('');
    const sql = method === 'POST' && body !== '' ? (urlQuery === '' ? body : `${urlQuery}\n${body}`) : urlQuery;
    if (sql.trim() === '') throw ClickHouseHttpError.of('SYNTAX_ERROR', 'Empty query');
    checkSession(params, role);
    if (truthy(params.get('add_http_cors_header'))) {
      throw ClickHouseHttpError.of('ACCESS_DENIED', 'add_http_cors_header is refused: the embedded query endpoint never answers cross-origin reads from web pages', { status: 403 });
    }
    const queryId = params.get('query_id') || header(req, 'x-clickhouse-query-id') || randomUUID();
    // It is echoed in a response header: CR, LF and other control characters would split or break it.
    if (!/^[\x20-\x7e]{1,256}$/.test(queryId)) {
      throw ClickHouseHttpError.of('BAD_ARGUMENTS', 'query_id must be 1 to 256 printable ASCII characters (no CR, LF or other control characters)', { status: 400 });
    }
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
      tenant,
      sql,
      settings: settings.reverse(),
      queryParams: queryParams.reverse(),
      database: requestedDatabase,
      defaultFormat: header(req, 'x-clickhouse-format') || params.get('default_format') || undefined,
      queryId,
      revision,
    };
  }

  /**
   * The session that runs one request's statement, with every setting the
   * policy allowed (URL parameters, then the statement's own SETTINGS) as
   * connection arguments: a reader's is `readonly=1` from its first
   * moment, so the engine refuses any other change, and a clause equal to
   * the value in force passes. Its max_query_size leaves room for the
   * statement as a parameter of its own analysis; the query's size is
   * checked against `maxQuerySize` instead.
   */
  async function sessionArgs(r: Request, verdict: Verdict): Promise<{ args: string[]; chosen: Map<string, string> }> {
    const chosen = new Map<string, string>([
      ['max_execution_time', String(o.maxExecutionTimeSec)],
      ['max_threads', String(o.maxThreads)],
      // ClickHouse's default, which chDB turns off: JSON formats quote 64-bit integers unless the client asks otherwise.
      ['output_format_json_quote_64bit_integers', '1'],
    ]);
    const fromUrl = r.settings.map(([name, value]): [string, string] => [name, cappedUrlSetting(name, value, limits)]);
    for (const [name, value] of [...fromUrl, ...verdict.settings]) {
      if (!guard.engine.settings.has(name)) throw ClickHouseHttpError.of('UNKNOWN_SETTING', `Unknown setting '${name}'`);
      const why = settingRefusal(r.role, name, value, limits, r.tenant !== undefined);
      // A setting sent with the value it already has changes nothing (clients send some with every request).
      if (why && unchanged(name, value, guard.engine.settings)) continue;
      if (why) {
        throw r.role === 'reader'
          ? ClickHouseHttpError.of('READONLY', `Cannot modify '${name}' setting in readonly mode: ${why}`)
          : ClickHouseHttpError.of('SETTING_CONSTRAINT_VIOLATION', why);
      }
      if (name !== 'readonly') chosen.set(name, value);
    }
    // display_name: displayName() answers the name every response already carries in X-ClickHouse-Server-Display-Name.
    const args = [`--max_query_size=${2 * o.maxQuerySize + 4096}`, `--display_name=${o.displayName}`, ...ALL_FIXED.map(([k, v]) => `--${k}=${v}`)];
    if (r.role === 'writer') args.push(...WRITER_FIXED.map(([k, v]) => `--${k}=${v}`));
    else {
      if (o.maxResultBytes > 0 && !chosen.has('max_result_bytes')) chosen.set('max_result_bytes', String(o.maxResultBytes));
      if (!chosen.has('result_overflow_mode')) chosen.set('result_overflow_mode', 'throw');
      if (o.maxMemoryUsageBytes > 0) args.push(`--max_memory_usage=${o.maxMemoryUsageBytes}`);
      if (r.tenant !== undefined) {
        args.push(...SCOPED_FIXED.map(([k, v]) => `--${k}=${v}`), ...(await guard.tenantFilter(storeDatabase, r.tenant)));
      }
    }
    args.push(...[...chosen].map(([k, v]) => `--${k}=${v}`));
    // Last, so nothing before it can matter: the session is read-only from its first query.
    if (r.role === 'reader') args.push('--readonly=1');
    return { args, chosen };
  }

  /** chDB says only "Failed to create connection" for a bad connection argument: let the engine name the bad value. */
  function explainBadSettings(chosen: Map<string, string>, err: unknown): ClickHouseHttpError {
    let probe: Session | undefined;
    try {
      probe = new Session(engine.dataDir);
      for (const [k, v] of chosen) probe.query(`SET ${k} = ${stringLiteral(v)}`, 'TSV');
    } catch (e) {
      if (probe) return ClickHouseHttpError.fromEngine(e);
    } finally {
      probe?.close();
    }
    return ClickHouseHttpError.of('BAD_ARGUMENTS', `Cannot apply the request's settings: ${(err as Error).message}`, { cause: err });
  }

  async function execute(r: Request): Promise<Outcome> {
    // A backstop only: the engine's max_execution_time stops the query.
    const timeout = (o.maxExecutionTimeSec + 30) * 1000;
    const database = r.database ?? defaultDatabase;
    let canonical: string;
    let verdict: Verdict;
    try {
      const analysis = await guard.analyse(r.sql, r.queryParams, timeout);
      canonical = analysis.canonical;
      verdict = await checkStatement({
        ast: analysis.ast,
        canonical,
        role: r.role,
        tenant: r.tenant,
        database: database ?? 'default',
        storeDatabase,
        engine: guard.engine,
        limits,
        lookup: guard.lookup,
      });
    } catch (err) {
      throw ClickHouseHttpError.fromEngine(err);
    }
    const kind = statementKind(canonical);
    if (r.role === 'writer' && valuesWithSemicolon(canonical, r.sql)) {
      throw ClickHouseHttpError.of(
        'NOT_IMPLEMENTED',
        "Inline VALUES data containing ';' is not supported by the embedded query endpoint (clickhouse-local ends VALUES data at ';'): send the rows as FORMAT JSONEachRow, CSV or TSV",
      );
    }
    const { args, chosen } = await sessionArgs(r, verdict);
    // A session goes back to the pool only if this request leaves nothing in it: no parameters, SET, USE or temporary table of its own.
    const reuse = r.queryParams.length === 0 && kind !== 'SET' && kind !== 'USE' && !/^CREATE (OR REPLACE )?TEMPORARY\b/.test(canonical);
    const run = async (session: Session): Promise<Outcome> => {
      const q = (sql: string) => session.queryAsync(sql, { format: 'TSV', timeout });
      try {
        await q(`USE ${quotedIdentifier(database ?? 'default')}`);
      } catch (err) {
        // The endpoint's default database may not exist yet (not migrated); one the client names must.
        if (r.database !== undefined || ClickHouseHttpError.fromEngine(err).code !== 81) throw err;
        await q('USE default');
      }
      for (const [k, v] of r.queryParams) await q(`SET param_${k} = ${stringLiteral(v)}`);
      const query = (sql: string) => session.queryAsync(sql, { format: r.defaultFormat ?? 'TabSeparated', timeout });
      const result = r.data ? await withSpooledData(engine.dataDir, r.sql, r.data, query) : await query(r.sql);
      return {
        body: result.bytes(),
        format: OUTPUT_KINDS.has(kind) ? (namedFormat(canonical) ?? r.defaultFormat ?? 'TabSeparated') : undefined,
        kind,
        rows: result.rowsRead,
        bytes: result.bytesRead,
        elapsedSec: result.elapsed,
      };
    };
    let opened = false;
    try {
      return await pool.use(
        args,
        (session) => {
          opened = true;
          return run(session);
        },
        { reuse },
      );
    } catch (err) {
      throw opened ? ClickHouseHttpError.fromEngine(err) : explainBadSettings(chosen, err);
    }
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
    };
    let body: Uint8Array = out.format !== undefined && /^Native$/i.test(out.format) ? nativeForRevision(out.body, r.revision) : out.body;
    const blocks = compressedResponses.get(res);
    if (blocks) body = compressBlocks(body, blocks);
    const encoded = await httpCompressed(req, params, body, HTTP_COMPRESSION_DEFAULT);
    body = encoded.body;
    if (encoded.encoding) headers['Content-Encoding'] = encoded.encoding;
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
        pool.close();
      })()),
  };
}

/** The engine's version and time zone, from a session on the directory (which also proves it opens). */
async function probeEngine(dataDir: string): Promise<Engine> {
  const session = new Session(dataDir, { connectionArgs: ['--readonly=1'] });
  try {
    const info = (await session.queryAsync('SELECT version(), timezone()', { format: 'TSV' })).text().trim().split('\t');
    return { dataDir, version: info[0] ?? 'unknown', timezone: info[1] ?? 'UTC' };
  } finally {
    session.close();
  }
}
