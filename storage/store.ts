/**
 * The one storage interface every component writes and reads through: a
 * thin wrapper over @clickhouse/client, connected either to embedded chDB
 * (in-process ClickHouse, `chdb/connection`) or to a ClickHouse server over
 * HTTP. The SQL is the same on both; values travel as query parameters
 * (`{name:Type}`), never spliced into SQL text.
 */
import { mkdirSync } from 'node:fs';
import { Readable } from 'node:stream';
import path from 'node:path';
import { createClient, type ClickHouseClient, type ClickHouseClientConfigOptions, type ClickHouseSettings } from '@clickhouse/client';
import { createChdbConnection, type ChdbConnection } from 'chdb/connection';
import { clearSpool, withSpoolFile } from './spool.ts';
import { quotedIdentifier, stringLiteral } from './sql-text.ts';

export interface Store {
  /** Database holding perpass's tables and views (already validated as an identifier). */
  readonly database: string;
  /** Where the store lives, for logs: a URL or `chdb:<dir>`. */
  readonly location: string;
  /**
   * The absolute directory of the embedded chDB store; unset when the store
   * is a ClickHouse server. Other chDB sessions of this process (the query
   * endpoint's) open the same directory: chDB binds one per process.
   */
  readonly dataDir?: string;
  /** Inserts rows (JSONEachRow) into `<database>.<table>`. */
  insert(table: string, rows: readonly object[]): Promise<void>;
  /**
   * Inserts rows already encoded as RowBinaryWithDefaults (storage/row-binary.ts)
   * for `columns`, in chunks of whole rows, as one insert.
   */
  insertRowBinary(table: string, columns: readonly string[], chunks: readonly Uint8Array[]): Promise<void>;
  /** Runs a SELECT and returns its rows. */
  query<T = Record<string, unknown>>(sql: string, params?: Record<string, unknown>, settings?: ClickHouseSettings): Promise<T[]>;
  /** Runs a statement that returns no rows (DDL, INSERT … SELECT). */
  command(sql: string, params?: Record<string, unknown>, settings?: ClickHouseSettings): Promise<void>;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** ClickHouse server URL (`FLEET_CLICKHOUSE_URL`); unset = embedded chDB in `dataDir`. */
  url?: string;
  /** Directory of the embedded chDB store (default ./data). One process may own it at a time. */
  dataDir?: string;
  /** Database name (default `fleet`). */
  database?: string;
  username?: string;
  password?: string;
  /** Per-request timeout for the HTTP client, ms. */
  requestTimeoutMs?: number;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export function assertIdentifier(name: string, what: string): string {
  if (!IDENTIFIER.test(name)) throw new RangeError(`${what} must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), got ${JSON.stringify(name)}`);
  return name;
}

/**
 * Money comes back as exact decimal strings (Decimal(38, 18) would
 * otherwise be rendered as a JSON number and lose digits); counts as JSON
 * numbers (exact below 2^53, far beyond any count or token sum here).
 */
const SETTINGS: ClickHouseSettings = { output_format_json_quote_decimals: 1, output_format_json_quote_64bit_integers: 0 };

/** chDB binds one data directory per process; reuse the connection for every Store opened on it. */
let embedded: { dir: string; client: ClickHouseClient; connection: ChdbConnection; users: number } | undefined;

function embeddedConnection(dir: string): NonNullable<typeof embedded> {
  const resolved = path.resolve(dir);
  if (embedded && embedded.dir !== resolved) {
    throw new Error(`chDB is already open on ${embedded.dir} in this process; it cannot also open ${resolved}`);
  }
  if (!embedded) {
    mkdirSync(resolved, { recursive: true });
    clearSpool(resolved);
    // chdb types its Connection against @clickhouse/client-common 1.23.0, the
    // client bundles its own copy of the same interface: structurally equal.
    const connection = createChdbConnection({ path: resolved });
    embedded = {
      dir: resolved,
      users: 0,
      connection,
      client: createClient({ connection: connection as unknown as ClickHouseClientConfigOptions['connection'], clickhouse_settings: SETTINGS }),
    };
  }
  embedded.users++;
  return embedded;
}

async function releaseEmbedded(): Promise<void> {
  if (!embedded || --embedded.users > 0) return;
  const { client } = embedded;
  embedded = undefined;
  await client.close();
}

export function openStore(options: StoreOptions = {}): Store {
  const database = assertIdentifier(options.database ?? 'fleet', 'database');
  const url = options.url;
  const local = url ? undefined : embeddedConnection(options.dataDir ?? './data');
  const client = local
    ? local.client
    : createClient({
        url,
        ...(options.username !== undefined && { username: options.username }),
        ...(options.password !== undefined && { password: options.password }),
        request_timeout: options.requestTimeoutMs ?? 60_000,
        clickhouse_settings: SETTINGS,
      });
  const qualified = (table: string) => `${database}.${assertIdentifier(table, 'table')}`;
  let closed = false;
  const dataDir = local?.dir;
  /** A statement with its data as the request body; the (empty) response read to its end, so the socket goes back to the pool. */
  const exec = async (query: string, body: readonly Uint8Array[]): Promise<void> => {
    const result = await client.exec({ query, values: Readable.from(body) });
    for await (const _ of result.stream);
  };
  const insertJson = async (table: string, rows: readonly object[]): Promise<void> => {
    if (rows.length === 0) return;
    const values = Buffer.from(rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
    if (local) {
      await local.connection.chdb.rawInsert({ table: qualified(table), values, format: 'JSONEachRow' });
      return;
    }
    await exec(`INSERT INTO ${qualified(table)} FORMAT JSONEachRow`, [values]);
  };
  const insertRowBinary = async (table: string, columns: readonly string[], chunks: readonly Uint8Array[]): Promise<void> => {
    if (chunks.every((c) => c.byteLength === 0)) return;
    const into = `${qualified(table)} (${columns.map(quotedIdentifier).join(', ')})`;
    if (!local) {
      await exec(`INSERT INTO ${into} FORMAT RowBinaryWithDefaults`, chunks);
      return;
    }
    // chDB's raw insert takes text formats only: binary rows reach it through the spool (storage/spool.ts)
    await withSpoolFile(local.dir, table, chunks, (file) =>
      client.command({ query: `INSERT INTO ${into} FROM INFILE ${stringLiteral(file)} FORMAT RowBinaryWithDefaults` }),
    );
  };
  return {
    database,
    location: url ?? `chdb:${dataDir}`,
    ...(dataDir !== undefined && { dataDir }),
    insert: insertJson,
    insertRowBinary,
    async query<T>(sql: string, params?: Record<string, unknown>, settings?: ClickHouseSettings) {
      const rs = await client.query({ query: sql, format: 'JSONEachRow', ...(params && { query_params: params }), ...(settings && { clickhouse_settings: settings }) });
      return rs.json<T>();
    },
    async command(sql, params, settings) {
      await client.command({ query: sql, ...(params && { query_params: params }), ...(settings && { clickhouse_settings: settings }) });
    },
    async close() {
      if (closed) return;
      closed = true;
      if (url) await client.close();
      else await releaseEmbedded();
    },
  };
}
