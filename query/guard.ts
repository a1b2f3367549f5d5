/**
 * What the endpoint asks the engine before it runs a request's statement:
 * its canonical rendering and parse (on a small pool of analysis sessions
 * that never run a user's statement), the catalogue lookups of the policy
 * (query/policy.ts), the row filter of a tenant-scoped reader, and the
 * Host check against DNS rebinding.
 *
 *     const guard = await openGuard({ maxQuerySize, pool });
 *     const { canonical, ast } = await guard.analyse(sql, timeout);
 *     await checkStatement({ ast, canonical, …, engine: guard.engine, lookup: guard.lookup });
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { Session } from 'chdb';
import { parseExplainAst, type AstNode } from './ast.ts';
import { ClickHouseHttpError } from './errors.ts';
import type { CatalogLookup, EngineCatalog } from './policy.ts';
import type { SessionPool } from './sessions.ts';
import { stringLiteral } from '../storage/sql-text.ts';
import { skeleton, statementKind } from './sql.ts';

export interface Analysis {
  /** The engine's single-line rendering (no comments, upper-case keywords, no INSERT data). */
  canonical: string;
  ast: AstNode;
}

export interface Guard {
  engine: EngineCatalog;
  lookup: CatalogLookup;
  /** The statement's canonical rendering and parse; a syntax error or a second statement is the engine's error. */
  analyse(sql: string, params: ReadonlyArray<[string, string]>, timeout: number | undefined): Promise<Analysis>;
  /** Connection arguments restricting every perpass table and view with a `tenant` column to `tenant`'s rows. */
  tenantFilter(database: string, tenant: string): Promise<string[]>;
}

/**
 * Analysis sessions are not readonly so that a statement's own `SETTINGS`
 * (even `readonly = 1`) cannot fail its EXPLAIN; they only ever run the
 * endpoint's fixed queries and `EXPLAIN AST` of a rendering, which parses
 * and prints, nothing more.
 */
export async function openGuard(o: { maxQuerySize: number; pool: SessionPool }): Promise<Guard> {
  const args = [`--max_query_size=${2 * o.maxQuerySize + 4096}`];
  const withSession = <T>(f: (s: Session) => Promise<T>): Promise<T> => o.pool.use(args, f, { reuse: true });
  const text = (sql: string, timeout?: number) =>
    withSession(async (s) => (await s.queryAsync(sql, { format: 'TSVRaw', ...(timeout !== undefined && { timeout }) })).text());

  const catalogue = await text(
    "SELECT name, alias_to, case_insensitive FROM system.functions WHERE origin = 'System'",
  );
  const functions = new Set<string>();
  const aliases = new Map<string, string>();
  const caseInsensitive = new Map<string, string>();
  for (const line of catalogue.split('\n').filter(Boolean)) {
    const [name, aliasTo, ci] = line.split('\t') as [string, string, string];
    functions.add(name);
    if (aliasTo) aliases.set(name, aliasTo);
    if (ci === '1') caseInsensitive.set(name.toLowerCase(), name);
  }
  const combinators = (await text('SELECT name FROM system.aggregate_function_combinators ORDER BY length(name) DESC'))
    .split('\n')
    .filter(Boolean);

  async function settingDefaults(): Promise<Map<string, string>> {
    const rows = (await text('SELECT name, value FROM system.settings')).split('\n').filter(Boolean);
    return new Map(rows.map((r) => r.split('\t', 2) as [string, string]));
  }

  const lookup: CatalogLookup = {
    isSqlFunction: async (name) =>
      (await text(`SELECT count() FROM system.functions WHERE name = ${stringLiteral(name)} AND origin = 'SQLUserDefined'`)).trim() === '1',
    tenantTables: async (database) =>
      new Set((await text(`SELECT DISTINCT table FROM system.columns WHERE database = ${stringLiteral(database)} AND name = 'tenant'`)).split('\n').filter(Boolean)),
    table: async (database, name) => {
      const row = await text(
        `SELECT engine, replaceRegexpAll(create_table_query, '[\\n\\t]', ' ') FROM system.tables WHERE database = ${stringLiteral(database)} AND name = ${stringLiteral(name)}`,
      );
      if (!row.trim()) return undefined;
      const [engine, create] = row.replace(/\n$/, '').split('\t', 2) as [string, string];
      return { engine, create };
    },
    parse: async (sql) => explain(sql, [], undefined, (x, format) => withSession((s) => s.queryAsync(x, { format: format ?? 'TSV' }))),
    isView: async (database, name) =>
      (await text(`SELECT count() FROM system.tables WHERE database = ${stringLiteral(database)} AND name = ${stringLiteral(name)} AND engine = 'View'`)).trim() === '1',
  };

  return {
    engine: { aliases, caseInsensitive, combinators, functions, settings: await settingDefaults() },
    lookup,
    analyse: (sql, params, timeout) =>
      withSession(async (s) => {
        const truncated = sql.length > o.maxQuerySize;
        const head = truncated ? sql.slice(0, o.maxQuerySize) : sql;
        const q = (x: string, format = 'TSV') => s.queryAsync(x, { format, ...(timeout !== undefined && { timeout }) });
        let canonical: string;
        try {
          canonical = (await q(`SELECT formatQuerySingleLine(${stringLiteral(head)})`, 'RawBLOB')).text();
        } catch (err) {
          // A syntax error names this wrapper as its scope; the client sent only the statement.
          throw ClickHouseHttpError.fromEngine(err).withoutScope('SELECT formatQuerySingleLine(');
        }
        // A text longer than max_query_size can only be an INSERT with inline data, whose head is within it.
        if (truncated && !(statementKind(canonical) === 'INSERT' && /\bFORMAT\s+[A-Za-z][A-Za-z0-9_]*\s*$/.test(canonical))) {
          throw ClickHouseHttpError.of('SYNTAX_ERROR', `Max query size exceeded (${o.maxQuerySize} bytes)`);
        }
        return { canonical, ast: await explain(canonical, params, timeout, q) };
      }),
    tenantFilter: async (database, tenant) => {
      const tables = [...(await lookup.tenantTables(database))].sort();
      const condition = `tenant = ${stringLiteral(tenant)}`;
      const entries = tables.flatMap((t) => [`${stringLiteral(`${database}.${t}`)}: ${stringLiteral(condition)}`]);
      return [`--additional_table_filters={${entries.join(', ')}}`];
    },
  };

  /**
   * The parse. It substitutes query parameters (`{t:Identifier}` names a
   * table), so a statement that has any is parsed on a fresh session
   * holding this request's parameters only, never another request's.
   */
  async function explain(canonical: string, params: ReadonlyArray<[string, string]>, timeout: number | undefined, pooled: (sql: string, format?: string) => Promise<{ text(): string }>): Promise<AstNode> {
    const sql = `EXPLAIN AST ${canonical}`;
    let printed: string;
    if (params.length === 0 && !/\{/.test(skeleton(canonical))) printed = (await pooled(sql, 'TSVRaw')).text();
    else {
      printed = await o.pool.use(
        args,
        async (fresh) => {
          for (const [k, v] of params) await fresh.queryAsync(`SET param_${k} = ${stringLiteral(v)}`, { format: 'TSV', ...(timeout !== undefined && { timeout }) });
          return (await fresh.queryAsync(sql, { format: 'TSVRaw', ...(timeout !== undefined && { timeout }) })).text();
        },
        { reuse: false },
      );
    }
    try {
      return parseExplainAst(printed);
    } catch (err) {
      // The engine printed a shape this reading does not know: refuse rather than guess.
      throw ClickHouseHttpError.of('ACCESS_DENIED', `The statement cannot be checked by the embedded query endpoint policy: ${(err as Error).message}`, { cause: err });
    }
  }
}

/**
 * Whether the request's Host header names this endpoint: its bound
 * address, a loopback name when it is bound to loopback, or one of
 * `allowed`. A page on another site that rebinds its own name to
 * 127.0.0.1 sends that name, and is refused.
 */
export function checkHost(req: IncomingMessage, boundHost: string, allowed: readonly string[]): void {
  const raw = req.headers.host;
  if (raw === undefined) return; // HTTP/1.0 clients: no browser sends a request without one.
  const host = raw.trim().toLowerCase().replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const bound = boundHost.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const loopback = new Set(['localhost', '127.0.0.1', '::1', 'localhost.localdomain']);
  const wildcard = bound === '0.0.0.0' || bound === '::';
  const ok =
    host === bound ||
    allowed.some((a) => a.toLowerCase() === host) ||
    (loopback.has(bound) || wildcard ? loopback.has(host) : false) ||
    (wildcard && (isIP(host) !== 0 || host === hostname().toLowerCase()));
  if (!ok) {
    throw ClickHouseHttpError.of(
      'ACCESS_DENIED',
      `Host '${raw.slice(0, 200)}' is not a name of this endpoint (bound to ${boundHost}): refused against DNS rebinding; add the name with --query-allowed-hosts`,
      { status: 403 },
    );
  }
}
