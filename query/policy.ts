/**
 * What a reader or writer of the embedded query endpoint may run.
 *
 * chDB has one user and no access control, so the endpoint is the sandbox.
 * Default-deny, on the engine's own parse of the statement (`EXPLAIN AST`,
 * query/ast.ts) and its canonical rendering (query/sql.ts), never on the
 * user's text: a statement runs only when every node of it is allowed —
 *
 * - its kind (and, for `ALTER`, every command; for `CREATE`, what it creates);
 * - every function: a reviewed list (query/functions.ts; aggregate
 *   combinators on allowed aggregates; SQL functions perpass's migrations
 *   created); anything else, including what a later ClickHouse adds, is
 *   refused;
 * - every table function (TABLE_FUNCTIONS: numbers, values, view, … —
 *   nothing that reads a file, a URL, another server or other tables by
 *   name) and, in `CREATE`, every table engine (MergeTree family, Memory,
 *   Null) and codec;
 * - every table: the perpass database, a few system tables (SYSTEM_TABLES),
 *   and for a tenant-scoped reader only the perpass tables that have a
 *   `tenant` column (the endpoint filters those rows, see endpoint.ts) and
 *   the shared ones (SHARED_TABLES);
 * - every setting (query/settings.ts).
 *
 * `SYSTEM`, `KILL`, `BACKUP`, `ATTACH`/`DETACH`, dictionaries, users,
 * `INSERT INTO FUNCTION`, `INTO OUTFILE` and `FROM INFILE` are refused to
 * everyone. A reader is also on a `readonly=1` session, so the engine
 * refuses writes and setting changes a second time.
 *
 *     const verdict = await checkStatement({ ast, canonical, role, scope, engine, limits, lookup });
 */
import type { AstNode } from './ast.ts';
import { walk } from './ast.ts';
import { ClickHouseHttpError } from './errors.ts';
import { AGGREGATE_FUNCTIONS, SCALAR_FUNCTIONS } from './functions.ts';
import { settingRefusal, storageSettingRefusal, unchanged, type SettingsLimits } from './settings.ts';
import { hostFileClause, insertsValues, statementKind } from './sql.ts';

export type Role = 'reader' | 'writer';

/** The settings policy, for the wire code: one import for what a request may run and set. */
export { settingRefusal, unchanged, WRITER_FIXED, SCOPED_FIXED, type SettingsLimits } from './settings.ts';

/** Table functions any request may use: they make rows from their arguments only. */
export const TABLE_FUNCTIONS: ReadonlySet<string> = new Set([
  'numbers', 'numbers_mt', 'zeros', 'zeros_mt', 'values', 'SQLStandardValues', 'generate_series', 'generateSeries', 'primes', 'null', 'view', 'format', 'generateRandom',
]);

/** Table engines (and the database engine) a writer may create. */
export const TABLE_ENGINES: ReadonlySet<string> = new Set([
  'MergeTree', 'ReplacingMergeTree', 'SummingMergeTree', 'AggregatingMergeTree', 'CollapsingMergeTree', 'VersionedCollapsingMergeTree', 'CoalescingMergeTree',
  'Memory', 'Null', 'Atomic',
]);

/** Data-skipping index types of `INDEX … TYPE …`. */
const INDEX_TYPES: ReadonlySet<string> = new Set(['minmax', 'set', 'bloom_filter', 'ngrambf_v1', 'tokenbf_v1', 'text']);

/** Compression codecs of `CODEC(…)`. */
const CODECS: ReadonlySet<string> = new Set(['NONE', 'LZ4', 'LZ4HC', 'ZSTD', 'Delta', 'DoubleDelta', 'Gorilla', 'T64', 'FPC', 'GCD']);

/** System tables an unscoped reader may read: catalogue and counters Grafana and clients look at; none holds host paths' contents, secrets or other sessions' queries. */
export const SYSTEM_TABLES: ReadonlySet<string> = new Set([
  'one', 'numbers', 'numbers_mt', 'zeros', 'zeros_mt', 'databases', 'tables', 'columns', 'functions', 'table_functions', 'table_engines', 'formats',
  'data_type_families', 'settings', 'time_zones', 'collations', 'aggregate_function_combinators', 'metrics', 'events', 'asynchronous_metrics',
]);

/** Of those, what a tenant-scoped reader may read: nothing that counts or sizes other tenants' rows (`tables`, `columns`, `parts`, metrics). */
export const SCOPED_SYSTEM_TABLES: ReadonlySet<string> = new Set([
  'one', 'numbers', 'numbers_mt', 'zeros', 'zeros_mt', 'databases', 'functions', 'table_functions', 'table_engines', 'formats', 'data_type_families',
  'time_zones', 'collations', 'aggregate_function_combinators',
]);

/** perpass tables without a tenant column that every tenant may read. */
export const SHARED_TABLES: ReadonlySet<string> = new Set(['prices']);

/** Root node kinds of statements a reader may run. */
const READER_STATEMENTS = new Set(['SelectWithUnionQuery', 'SelectIntersectExceptQuery', 'ShowTables', 'ShowColumns', 'ShowCreateTableQuery', 'DescribeQuery', 'ExistsTableQuery', 'Explain']);
/** …and those a writer may run besides. */
const WRITER_STATEMENTS = new Set([
  ...READER_STATEMENTS, 'InsertQuery', 'CreateQuery', 'CreateSQLFunctionQuery', 'AlterQuery', 'DropQuery', 'TruncateQuery', 'Rename', 'OptimizeQuery',
  'DeleteQuery', 'UpdateQuery', 'Set', 'UseQuery', 'CheckQuery',
]);
/** Leading keywords of the canonical rendering that go with those (DropQuery is also DETACH; CreateQuery also ATTACH and DICTIONARY). */
const WRITER_KEYWORDS = new Set(['SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXPLAIN', 'EXISTS', 'INSERT', 'CREATE', 'ALTER', 'DROP', 'TRUNCATE', 'RENAME', 'EXCHANGE', 'OPTIMIZE', 'DELETE', 'UPDATE', 'SET', 'USE', 'CHECK']);
/** What `CREATE` may create (the canonical rendering's words after CREATE [OR REPLACE]). */
const CREATABLE = /^CREATE (?:OR REPLACE )?(?:TEMPORARY )?(TABLE|VIEW|MATERIALIZED VIEW|DATABASE|FUNCTION)\b/;
/** ALTER commands a writer may run: schema changes of its own tables, no partition moves, fetches, freezes or attaches. */
const ALTER_COMMANDS = new Set([
  'ADD_COLUMN', 'DROP_COLUMN', 'MODIFY_COLUMN', 'COMMENT_COLUMN', 'RENAME_COLUMN', 'MATERIALIZE_COLUMN', 'MODIFY_TTL', 'REMOVE_TTL', 'MATERIALIZE_TTL',
  'ADD_INDEX', 'DROP_INDEX', 'MATERIALIZE_INDEX', 'CLEAR_INDEX', 'ADD_PROJECTION', 'DROP_PROJECTION', 'MATERIALIZE_PROJECTION', 'CLEAR_PROJECTION',
  'MODIFY_ORDER_BY', 'MODIFY_QUERY', 'MODIFY_COMMENT', 'MODIFY_SETTING', 'RESET_SETTING', 'DELETE', 'UPDATE', 'DROP_PARTITION',
]);
/** The SHOW lists that read only names (and settings' values). */
const SHOW_LISTS = /^SHOW (?:FULL )?(?:TEMPORARY )?(?:TABLES|DATABASES|DICTIONARIES|SETTINGS?|CHANGED SETTINGS)\b/;
/** Statements that name the table or database they change (as Identifier children of their node). */
const TARGETED = new Set(['InsertQuery', 'CreateQuery', 'AlterQuery', 'DropQuery', 'TruncateQuery', 'Rename', 'OptimizeQuery', 'DeleteQuery', 'UpdateQuery']);
const SYSTEM_DATABASES = new Set(['system', 'INFORMATION_SCHEMA', 'information_schema']);
/** EXPLAIN kinds a tenant-scoped reader may use (the others estimate rows and parts of the whole table). */
const SCOPED_EXPLAIN = new Set(['EXPLAIN AST', 'EXPLAIN SYNTAX']);
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What the policy needs to know of the running engine (read once at start). */
export interface EngineCatalog {
  /** alias → the function it names (system.functions.alias_to). */
  aliases: ReadonlyMap<string, string>;
  /** lower-case name → name, of case-insensitive functions. */
  caseInsensitive: ReadonlyMap<string, string>;
  /** Aggregate function combinators (system.aggregate_function_combinators), longest first. */
  combinators: readonly string[];
  /** Every function name the engine knows (to answer UNKNOWN_FUNCTION as it would). */
  functions: ReadonlySet<string>;
  /** Every setting the engine knows, with its default value (a request may send a setting with the value it already has). */
  settings: ReadonlyMap<string, string>;
}

/** Lookups done only when a statement needs them, against the live catalogue. */
export interface CatalogLookup {
  /** Whether `name` is a SQL function created with CREATE FUNCTION (perpass's migrations make some). */
  isSqlFunction(name: string): Promise<boolean>;
  /** The tables and views of `database` with a `tenant` column. */
  tenantTables(database: string): Promise<ReadonlySet<string>>;
  /** Whether `database.name` is a (parameterized) view. */
  isView(database: string, name: string): Promise<boolean>;
  /** The engine of `database.name` and, for a view, its CREATE statement; undefined when there is no such table. */
  table(database: string, name: string): Promise<{ engine: string; create: string } | undefined>;
  /** The engine's parse of a statement (a view's CREATE). */
  parse(sql: string): Promise<AstNode>;
}

export interface StatementContext {
  ast: AstNode;
  canonical: string;
  role: Role;
  /** The tenant a scoped reader is bound to. */
  tenant: string | undefined;
  /** Database of unqualified names. */
  database: string;
  /** The perpass database (the only one a scoped reader reads). */
  storeDatabase: string;
  engine: EngineCatalog;
  limits: SettingsLimits;
  lookup: CatalogLookup;
}

export interface Verdict {
  /** Settings of the statement's `SETTINGS` clauses, allowed, to give the session (a readonly session admits a clause equal to the value in force). */
  settings: Array<[string, string]>;
}

function denied(message: string): ClickHouseHttpError {
  return ClickHouseHttpError.of('ACCESS_DENIED', `${message} (embedded query endpoint policy)`);
}

function readonly(message: string): ClickHouseHttpError {
  return ClickHouseHttpError.of('READONLY', `${message}: the embedded query endpoint is read-only for this user`);
}

/** Throws the refusal of the statement, or returns the settings its clauses set. */
export async function checkStatement(c: StatementContext): Promise<Verdict> {
  const kind = statementKind(c.canonical);
  const hostFile = hostFileClause(c.canonical);
  if (hostFile === 'INTO OUTFILE') throw ClickHouseHttpError.of('INTO_OUTFILE_NOT_ALLOWED', 'INTO OUTFILE is not allowed');
  if (hostFile === 'FROM INFILE') throw ClickHouseHttpError.of('SUPPORT_IS_DISABLED', 'FROM INFILE is not allowed over HTTP: send the data in the request body');
  checkStatementKind(c, c.ast, kind);
  await checkCopiedEngine(c);

  const sqlFunctions = new Set<string>();
  for (const n of walk(c.ast)) {
    switch (n.kind) {
      case 'Function':
        await checkFunctionNode(c, n, sqlFunctions);
        break;
      case 'TableIdentifier':
        await checkTable(c, n.detail, new Set());
        break;
      case 'Explain':
        if (n !== c.ast) throw denied('A nested EXPLAIN is not allowed');
        break;
      case 'ColumnsApplyTransformer':
        // The AST does not show which function APPLY calls.
        throw denied('APPLY column transformers are not allowed: call the function on the columns');
      case 'FunctionWithKeyValueArguments':
        throw denied('Dictionary sources are not allowed');
      case 'InsertQuery':
        if (n.children[0]?.kind === 'Function') throw denied('INSERT INTO FUNCTION is not allowed');
        break;
      case 'AlterCommand':
        if (!ALTER_COMMANDS.has(n.detail)) throw denied(`ALTER … ${n.detail.replace(/_/g, ' ')} is not allowed (allowed: ${[...ALTER_COMMANDS].join(', ')})`);
        break;
      case 'ShowProcesslistQuery':
      case 'SYSTEM query':
      case 'KillQueryQuery':
        throw c.role === 'reader' ? readonly(`${n.kind} is not allowed`) : denied(`${n.kind} is not allowed`);
    }
  }
  return { settings: settingsOf(c) };
}

function checkStatementKind(c: StatementContext, ast: AstNode, kind: string): void {
  const root = ast.kind === 'Explain' ? ast.children.find((ch) => ch.kind !== 'Set') : ast;
  if (!root) throw denied('An EXPLAIN without a statement');
  const allowed = c.role === 'reader' ? READER_STATEMENTS : WRITER_STATEMENTS;
  if (!allowed.has(root.kind) || (root !== ast && root.kind === 'Explain')) {
    if (c.role === 'reader') throw readonly(`${kind || root.kind} statements are not allowed`);
    throw denied(`${kind || root.kind} statements are not allowed over the embedded query endpoint`);
  }
  if (c.role === 'writer' && !WRITER_KEYWORDS.has(kind)) throw denied(`${kind || 'This'} statements are not allowed over the embedded query endpoint`);
  // One parse node stands for SHOW TABLES and for SHOW MERGES, CLUSTERS, FILESYSTEM CACHES (which read other system tables).
  if (root.kind === 'ShowTables' && !SHOW_LISTS.test(c.canonical.replace(/^EXPLAIN\s+\S*\s*/, ''))) {
    throw denied('Only SHOW TABLES, DATABASES, DICTIONARIES and SETTINGS are allowed of the SHOW … lists');
  }
  // The engine's own databases hold server-wide state (its logs): a writer changes perpass's tables, not those.
  if (TARGETED.has(root.kind) && (SYSTEM_DATABASES.has(c.database) || root.children.some((ch) => ch.kind === 'Identifier' && SYSTEM_DATABASES.has(ch.detail)))) {
    throw denied(`${kind || root.kind} on the engine's system databases is not allowed`);
  }
  if (ast.kind === 'Explain' && c.tenant !== undefined && !SCOPED_EXPLAIN.has(ast.detail)) {
    throw denied(`${ast.detail} is not allowed to a tenant-scoped reader (it describes every tenant's parts): use EXPLAIN AST or EXPLAIN SYNTAX`);
  }
  if (root.kind === 'CreateQuery') {
    const what = CREATABLE.exec(c.canonical.replace(/^EXPLAIN\s+\S*\s*/, ''));
    if (!what) throw denied('Only CREATE TABLE, VIEW, MATERIALIZED VIEW, DATABASE and FUNCTION are allowed');
    if (/\bREFRESH\b/.test(c.canonical) && what[1] === 'MATERIALIZED VIEW') throw denied('Refreshable materialized views are not allowed (they run in the background)');
    const storage = root.children.find((ch) => ch.kind === 'Storage definition');
    const asFunction = root.children.some((ch) => ch.kind === 'Function');
    // A missing ENGINE is default_table_engine's; CREATE TABLE … AS another_table is checked by checkCopiedEngine.
    if (what[1] === 'TABLE' && !asFunction && storage?.children[0]?.kind !== 'Function' && !COPY.test(c.canonical)) {
      throw denied('CREATE TABLE needs an explicit ENGINE here (ENGINE = MergeTree, …)');
    }
  }
}

const IN_FUNCTIONS = /^(global)?(not)?(null)?in$/i;

/** `CREATE TABLE t AS other_table`: the structure and engine of another table, which the parse does not show. */
const COPY = /^CREATE (?:OR REPLACE )?TABLE (?:IF NOT EXISTS )?\S+(?: ON CLUSTER \S+)? AS ([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)$/;

async function checkCopiedEngine(c: StatementContext): Promise<void> {
  const m = COPY.exec(c.canonical);
  if (!m) return;
  const parts = m[1]!.split('.');
  const [database, table] = parts.length === 2 ? [parts[0]!, parts[1]!] : [c.database, parts[0]!];
  const found = await c.lookup.table(database, table);
  if (!found) throw ClickHouseHttpError.of('UNKNOWN_TABLE', `Table ${database}.${table} does not exist`);
  if (!TABLE_ENGINES.has(found.engine)) throw denied(`CREATE TABLE … AS ${database}.${table} would copy the engine ${found.engine}, which is not allowed`);
}

async function checkFunctionNode(c: StatementContext, n: AstNode, sqlFunctions: Set<string>): Promise<void> {
  const name = n.detail;
  const parent = n.parent;
  const grand = parent?.parent;
  // A table function: FROM f(…), CREATE TABLE t AS f(…), DESCRIBE f(…).
  if (parent?.kind === 'TableExpression' || parent?.kind === 'CreateQuery') {
    if (TABLE_FUNCTIONS.has(name)) return;
    if (parent.kind === 'TableExpression' && (await isParameterizedView(c, name))) {
      if (c.tenant !== undefined) await checkTable(c, name, new Set());
      return;
    }
    throw denied(`The table function ${name}() is not allowed (allowed: ${[...TABLE_FUNCTIONS].join(', ')}, and perpass's parameterized views)`);
  }
  if (parent?.kind === 'Storage definition' && parent.children[0] === n) {
    if (!TABLE_ENGINES.has(name)) throw denied(`The engine ${name} is not allowed (allowed: ${[...TABLE_ENGINES].join(', ')})`);
    return;
  }
  if (parent?.kind === 'Index' && parent.children.at(-1) === n) {
    if (!INDEX_TYPES.has(name)) throw denied(`The index type ${name} is not allowed (allowed: ${[...INDEX_TYPES].join(', ')})`);
    return;
  }
  if (name === 'CODEC' && parent?.kind === 'ColumnDeclaration') return;
  if (grand?.kind === 'Function' && grand.detail === 'CODEC' && grand.parent?.kind === 'ColumnDeclaration') {
    if (!CODECS.has(name)) throw denied(`The codec ${name} is not allowed`);
    return;
  }
  if (parent?.kind === 'ColumnDeclaration' && n.detail === 'STATISTICS') throw denied('Column statistics are not allowed');
  // `x IN db.table`: the right side names a table, read to build the set.
  const inTable = IN_FUNCTIONS.test(name) ? n.children[0]?.children[1] : undefined;
  if (inTable?.kind === 'Identifier') await checkTable(c, inTable.detail, new Set());
  if (isAllowedFunction(c.engine, name)) return;
  if (NAME.test(name) && !sqlFunctions.has(name) && (await c.lookup.isSqlFunction(name))) sqlFunctions.add(name);
  if (sqlFunctions.has(name)) return;
  if (!knownFunction(c.engine, name)) {
    throw ClickHouseHttpError.of('UNKNOWN_FUNCTION', `Function with name \`${name}\` does not exist. In scope ${c.canonical}`);
  }
  throw denied(`The function ${name} is not allowed (the endpoint allows a reviewed list of functions that compute on their arguments only)`);
}

async function isParameterizedView(c: StatementContext, name: string): Promise<boolean> {
  const parts = name.split('.');
  if (parts.length > 2 || !parts.every((p) => NAME.test(p))) return false;
  const [database, view] = parts.length === 2 ? [parts[0]!, parts[1]!] : [c.database, parts[0]!];
  return c.lookup.isView(database, view);
}

/** Whether `name` is an allowed function, an alias of one, or an allowed aggregate with combinators. */
export function isAllowedFunction(engine: EngineCatalog, name: string): boolean {
  if (!NAME.test(name)) return false;
  if (STRUCTURAL.has(name)) return true;
  const resolve = (n: string): string => engine.aliases.get(n) ?? engine.aliases.get(engine.caseInsensitive.get(n.toLowerCase()) ?? '') ?? engine.caseInsensitive.get(n.toLowerCase()) ?? n;
  const base = resolve(name);
  if (SCALAR_FUNCTIONS.has(base) || AGGREGATE_FUNCTIONS.has(base)) return true;
  // sumIf, uniqExactStateIf, quantilesMergeState, …: strip combinators off an allowed aggregate.
  let rest = name;
  for (let depth = 0; depth < 8; depth++) {
    const combinator = engine.combinators.find((k) => rest.length > k.length && rest.endsWith(k));
    if (!combinator) return false;
    rest = rest.slice(0, -combinator.length);
    if (AGGREGATE_FUNCTIONS.has(resolve(rest))) return true;
  }
  return false;
}

function knownFunction(engine: EngineCatalog, name: string): boolean {
  if (engine.functions.has(name) || engine.caseInsensitive.has(name.toLowerCase())) return true;
  const combinator = engine.combinators.find((k) => name.length > k.length && name.endsWith(k));
  return combinator !== undefined && knownFunction(engine, name.slice(0, -combinator.length));
}

/** Nodes of the parse that are written as functions but are syntax, not functions of system.functions. */
const STRUCTURAL = new Set(['lambda', 'exists', 'grouping']);

/**
 * A table reference. For a tenant-scoped reader, a view is followed into
 * the tables it reads (the engine's parse of its CREATE), since the row
 * filter applies to tables with a tenant column only: a view over one
 * without (dead letters, alerts) would show every tenant's rows.
 * `seen` holds the views on the way, against cycles.
 */
async function checkTable(c: StatementContext, ref: string, seen: ReadonlySet<string>): Promise<void> {
  const parts = ref.split('.');
  if (parts.length > 2 || !parts.every((p) => NAME.test(p))) {
    throw denied(`The table name ${JSON.stringify(ref)} is not allowed: use plain identifiers ([A-Za-z_][A-Za-z0-9_]*)`);
  }
  const [database, table] = parts.length === 2 ? [parts[0]!, parts[1]!] : [c.database, parts[0]!];
  if (SYSTEM_DATABASES.has(database)) {
    const allowed = c.tenant !== undefined ? SCOPED_SYSTEM_TABLES : SYSTEM_TABLES;
    if (database === 'system' && allowed.has(table)) return;
    throw denied(`${database}.${table} is not readable here (system tables allowed: ${[...allowed].join(', ')})`);
  }
  if (c.tenant === undefined) return;
  const found = await c.lookup.table(database, table);
  // An unqualified name that is no table is a CTE of the statement (or an error of the engine's).
  if (parts.length === 1 && found === undefined) return;
  if (database !== c.storeDatabase) throw denied(`A tenant-scoped reader reads only the ${c.storeDatabase} database, not ${database}.${table}`);
  if (SHARED_TABLES.has(table)) return;
  if (found?.engine === 'View') {
    const key = `${database}.${table}`;
    if (seen.has(key) || seen.size > 16) throw denied(`The view ${key} is nested too deeply to check`);
    const inner = new Set([...seen, key]);
    const view = await c.lookup.parse(found.create);
    for (const n of walk(view)) {
      if (n.kind === 'TableIdentifier') await checkTable({ ...c, database }, n.detail, inner);
      if (n.kind === 'Function' && n.parent?.kind === 'TableExpression' && !TABLE_FUNCTIONS.has(n.detail)) await checkTable({ ...c, database }, n.detail, inner);
    }
    return;
  }
  if (!(await c.lookup.tenantTables(database)).has(table)) {
    throw denied(`${database}.${table} has no tenant column, so a tenant-scoped reader cannot read it`);
  }
}

/** One `name = value` of a SETTINGS clause, its value as the text a connection argument takes. */
interface Assignment {
  name: string;
  value: string;
  /** False when the value is not a plain number, string or boolean. */
  simple: boolean;
}

/**
 * The settings the statement sets, read from the canonical rendering at
 * each `SETTINGS` / `MODIFY SETTING` / leading `SET`, and matched with the
 * engine's parse: it has one `Set` node per clause, so a clause this
 * reading missed is a refusal, not a setting let through.
 */
function settingsOf(c: StatementContext): Array<[string, string]> {
  const clauses = settingsClauses(c.canonical);
  const sets = [...walk(c.ast)].filter((n) => n.kind === 'Set');
  if (clauses.length !== sets.length) {
    throw denied(`Cannot match the statement's ${sets.length} settings clause(s) (EXPLAIN options and unusual SETTINGS forms are not supported)`);
  }
  const out: Array<[string, string]> = [];
  clauses.forEach((clause, i) => {
    const node = sets[i]!;
    const storage = node.parent?.kind === 'Storage definition' || (node.parent?.kind === 'AlterCommand' && node.parent.detail === 'MODIFY_SETTING');
    for (const a of clause) {
      if (!storage && !c.engine.settings.has(a.name)) throw ClickHouseHttpError.of('UNKNOWN_SETTING', `Unknown setting '${a.name}'`);
      if (storage) {
        const why = c.role === 'writer' ? storageSettingRefusal(a.name) : 'table settings are not allowed to readers';
        if (why) throw denied(why);
        if (!a.simple) throw denied(`The table setting ${a.name} must be a number or a string`);
        continue;
      }
      const why = settingRefusal(c.role, a.name, a.simple || a.name === 'additional_table_filters' ? a.value : '\0', c.limits, c.tenant !== undefined);
      if (why && a.simple && unchanged(a.name, a.value, c.engine.settings)) continue;
      if (why) throw c.role === 'reader' ? ClickHouseHttpError.of('READONLY', `Cannot modify '${a.name}' setting in readonly mode: ${why}`) : ClickHouseHttpError.of('SETTING_CONSTRAINT_VIOLATION', why);
      if (a.name !== 'readonly') out.push([a.name, a.value]);
    }
  });
  return out;
}

/** Tokens of a canonical rendering: quoted literals and identifiers whole, words, numbers, punctuation. */
function tokens(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    const ch = s[i]!;
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === "'" || ch === '"' || ch === '`') {
      let j = i + 1;
      while (j < s.length) {
        if (s[j] === '\\') j += 2;
        else if (s[j] === ch && s[j + 1] === ch) j += 2;
        else if (s[j] === ch) break;
        else j++;
      }
      out.push(s.slice(i, j + 1));
      i = j + 1;
    } else if (/[A-Za-z0-9_.]/.test(ch)) {
      let j = i;
      while (j < s.length && /[A-Za-z0-9_.]/.test(s[j]!)) j++;
      // 1.5e-3: the sign belongs to the number.
      while (j < s.length && /[eE]$/.test(s.slice(i, j)) && /^\d/.test(s.slice(i, j)) && /[+-]/.test(s[j]!)) {
        j++;
        while (j < s.length && /[0-9]/.test(s[j]!)) j++;
      }
      out.push(s.slice(i, j));
      i = j;
    } else {
      out.push(ch);
      i++;
    }
  }
  return out;
}

function unquote(literal: string): string {
  return literal.slice(1, -1).replace(/\\(.)|''/g, (m, c: string | undefined) => (c === undefined ? "'" : ({ n: '\n', t: '\t', r: '\r', '0': '\0', b: '\b', f: '\f' } as Record<string, string>)[c] ?? c));
}

function settingsClauses(canonical: string): Assignment[][] {
  const t = tokens(canonical);
  const clauses: Assignment[][] = [];
  for (let i = 0; i < t.length; i++) {
    const starts = t[i] === 'SETTINGS' || (t[i] === 'SETTING' && t[i - 1] === 'MODIFY') || (i === 0 && t[i] === 'SET');
    if (!starts) continue;
    const clause: Assignment[] = [];
    let j = i + 1;
    for (;;) {
      const name = t[j];
      if (name === undefined || !NAME.test(name) || t[j + 1] !== '=') break;
      // The value: up to a comma or closing bracket at depth 0.
      let k = j + 2;
      let depth = 0;
      const start = k;
      while (k < t.length) {
        const tok = t[k]!;
        if (tok === '(' || tok === '[' || tok === '{') depth++;
        else if (tok === ')' || tok === ']' || tok === '}') {
          if (depth === 0) break;
          depth--;
        } else if (tok === ',' && depth === 0) break;
        else if (depth === 0 && k > start && !/^[(\[{]$/.test(t[k - 1]!) && NAME.test(tok) && /^[A-Z]+$/.test(tok)) break;
        k++;
      }
      const value = t.slice(start, k);
      const one = value.length === 1 ? value[0]! : value.length === 2 && value[0] === '-' ? `-${value[1]}` : undefined;
      const simple = one !== undefined && (/^'/.test(one) || /^-?[0-9][0-9A-Za-z_.+-]*$/.test(one) || /^(true|false)$/i.test(one));
      clause.push({ name, value: one === undefined ? value.join(' ') : one.startsWith("'") ? unquote(one) : one, simple });
      j = k;
      if (t[j] !== ',') break;
      j++;
    }
    if (clause.length) clauses.push(clause);
  }
  return clauses;
}

/** A writer's INSERT … VALUES data holding a `;`, which clickhouse-local would run as a second statement. */
export function valuesWithSemicolon(canonical: string, sql: string): boolean {
  return insertsValues(canonical) && sql.replace(/;\s*$/, '').includes(';');
}
