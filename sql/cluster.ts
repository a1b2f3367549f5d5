/**
 * Cluster DDL: the single-node statements of a migration, rendered for a
 * ClickHouse cluster (`--clickhouse-cluster` / FLEET_CLICKHOUSE_CLUSTER).
 * A pure function of the statements: migrations are written once, for one
 * node, with `{{on_cluster}}` on every DDL statement; this module turns
 *
 *   - a table of the write path (attempts, llm_calls, spans) into a
 *     `<name>_local` Replicated*MergeTree table on every shard plus a
 *     `Distributed` table under the original name, sharded by a key that
 *     keeps together the rows ReplacingMergeTree must deduplicate;
 *   - a small table (prices, alerts, schema_migrations, …) into one
 *     Replicated*MergeTree table replicated to every node, so every node
 *     holds all of it and reads it locally (joins with it stay local);
 *   - views, functions and the database into the same statements (they
 *     already carry ON CLUSTER): the views read the Distributed tables by
 *     their unchanged names, so users query the same names on a cluster.
 *
 * Why these shard keys. The views read with FINAL, and FINAL over a
 * Distributed table deduplicates on each shard only: every version of a row
 * must land on the same shard, so the key must be a function of what
 * identifies the row (its ORDER BY identity).
 *
 *   attempts   cityHash64(tenant, spec_id). An attempt's identity is its
 *              attempt_id; tenant and spec_id come from the same attempt
 *              span as the attempt_id, so every version of an attempt row
 *              (a re-assembly after redelivery, a retried insert) has the
 *              same tenant and spec_id and lands on the same shard. And
 *              every attempt of a spec lands on one shard, so the per-spec
 *              window and GROUP BY of v_spec_outcomes (first passing
 *              attempt, cost until first pass) see a spec whole on one
 *              shard: ClickHouse may aggregate it there
 *              (optimize_distributed_group_by_sharding_key) and the answer
 *              stays exact.
 *   llm_calls  cityHash64(attempt_id): an attempt's calls together; the
 *              identity (…, attempt_id, span_id) contains the key.
 *   spans      cityHash64(trace_id): a trace's spans together (an attempt
 *              lives inside one trace); the identity (tenant, trace_id,
 *              span_id) contains the key.
 *
 * Replication paths: ClickHouse's default `/clickhouse/tables/{uuid}/{shard}`
 * and `{replica}` for sharded tables (ON CLUSTER gives a table the same UUID
 * on every node). Tables replicated to every node use
 * `/clickhouse/tables/{uuid}/all` and `{shard}-{replica}` (unique across the
 * cluster whenever (shard, replica) is, which sharded tables need anyway).
 */

export interface ClusterOptions {
  database: string;
  /** Name of the cluster in the servers' `remote_servers`. */
  cluster: string;
}

export interface ShardedTable {
  /** The Distributed table's sharding expression. */
  key: string;
  /** Columns the key reads (checked against the table by the tests). */
  columns: readonly string[];
}

/** Tables of the write path: sharded across the cluster. */
export const SHARDED_TABLES: Readonly<Record<string, ShardedTable>> = {
  attempts: { key: 'cityHash64(tenant, spec_id)', columns: ['tenant', 'spec_id'] },
  llm_calls: { key: 'cityHash64(attempt_id)', columns: ['attempt_id'] },
  spans: { key: 'cityHash64(trace_id)', columns: ['trace_id'] },
};

/** Small tables: one replicated copy on every node. */
export const EVERYWHERE_TABLES: readonly string[] = ['schema_migrations', 'prices', 'alerts', 'alert_deliveries', 'alert_samples', 'dead_letters', 'attempt_rollup_blocks', 'attempt_rollups'];

export const LOCAL_SUFFIX = '_local';
export const SHARDED_REPLICA_PATH = '/clickhouse/tables/{uuid}/{shard}';
export const SHARDED_REPLICA_NAME = '{replica}';
export const EVERYWHERE_REPLICA_PATH = '/clickhouse/tables/{uuid}/all';
export const EVERYWHERE_REPLICA_NAME = '{shard}-{replica}';

export class ClusterRenderError extends Error {
  override name = 'ClusterRenderError';
}

const quote = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
const short = (sql: string) => (sql.length > 160 ? `${sql.slice(0, 160)}…` : sql);

/**
 * Index just past the parenthesis closing the one at `open`, skipping
 * string literals, quoted identifiers and `--` comments.
 */
export function closingParen(sql: string, open: number): number {
  let depth = 0;
  for (let i = open; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === '`') {
      for (i++; i < sql.length && sql[i] !== c; i++) if (sql[i] === '\\') i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      while (i < sql.length && sql[i] !== '\n') i++;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
  }
  throw new ClusterRenderError(`unbalanced parentheses in: ${short(sql)}`);
}

const CREATE_TABLE = /^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)\.(\w+)\s+ON\s+CLUSTER\s+(\w+)\s*\(/i;
const ENGINE = /^\s*ENGINE\s*=\s*(\w+)/i;
const ALTER_OR_DROP_TABLE = /^(ALTER\s+TABLE|DROP\s+TABLE(?:\s+IF\s+EXISTS)?)\s+(\w+)\.(\w+)\s+ON\s+CLUSTER\s+(\w+)\b([\s\S]*)$/i;
const PASS_THROUGH = /^(CREATE\s+DATABASE|CREATE\s+(?:OR\s+REPLACE\s+)?VIEW|CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION|DROP\s+VIEW|DROP\s+FUNCTION|CREATE\s+ROLE|GRANT)\b/i;
const ON_CLUSTER = /\bON\s+CLUSTER\s+(\w+)\b/i;
/** Alterations a Distributed table must follow (it has the columns of its local table). */
const COLUMN_ALTERATION = /^\s*(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b/i;

function checkCluster(statement: string, found: string | undefined, options: ClusterOptions): void {
  if (found !== options.cluster) {
    throw new ClusterRenderError(
      found === undefined
        ? `statement has no ON CLUSTER (write {{on_cluster}} in the migration): ${short(statement)}`
        : `statement is ON CLUSTER ${found}, expected ${options.cluster}: ${short(statement)}`,
    );
  }
}

function checkDatabase(statement: string, database: string, options: ClusterOptions): void {
  if (database !== options.database) throw new ClusterRenderError(`statement names database ${database}, expected ${options.database}: ${short(statement)}`);
}

function tableKind(table: string, statement: string): 'sharded' | 'everywhere' {
  if (Object.hasOwn(SHARDED_TABLES, table)) return 'sharded';
  if (EVERYWHERE_TABLES.includes(table)) return 'everywhere';
  throw new ClusterRenderError(
    `table ${table} is neither sharded nor replicated everywhere: add it to SHARDED_TABLES (with a shard key) or EVERYWHERE_TABLES in sql/cluster.ts: ${short(statement)}`,
  );
}

function createTable(statement: string, options: ClusterOptions): string[] {
  const head = CREATE_TABLE.exec(statement);
  if (!head) {
    if (/^CREATE\s+TABLE\b/i.test(statement) && !/^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\b/i.test(statement)) {
      throw new ClusterRenderError(`CREATE TABLE must say IF NOT EXISTS (migrations are idempotent): ${short(statement)}`);
    }
    if (!ON_CLUSTER.test(statement)) checkCluster(statement, undefined, options);
    throw new ClusterRenderError(`cluster mode renders CREATE TABLE IF NOT EXISTS <db>.<table> ON CLUSTER <cluster> (<columns>) ENGINE = …, got: ${short(statement)}`);
  }
  const [, database, table, cluster] = head as unknown as [string, string, string, string];
  checkCluster(statement, cluster, options);
  checkDatabase(statement, database, options);
  const kind = tableKind(table, statement);
  const columnsStart = head[0].length - 1;
  const columnsEnd = closingParen(statement, columnsStart);
  const columns = statement.slice(columnsStart, columnsEnd);
  const rest = statement.slice(columnsEnd);
  const engine = ENGINE.exec(rest);
  if (!engine) throw new ClusterRenderError(`no ENGINE after the columns of ${table}: ${short(statement)}`);
  const engineName = engine[1]!;
  if (!/^\w*MergeTree$/.test(engineName) || engineName.startsWith('Replicated')) {
    throw new ClusterRenderError(`table ${table}: cluster mode replicates single-node *MergeTree engines, got ${engineName}`);
  }
  let afterEngine = rest.slice(engine[0].length);
  let args = '';
  const argsOpen = /^\s*\(/.exec(afterEngine);
  if (argsOpen) {
    const end = closingParen(afterEngine, argsOpen[0].length - 1);
    args = afterEngine.slice(argsOpen[0].length, end - 1).trim();
    afterEngine = afterEngine.slice(end);
  }
  const [path, replica] = kind === 'sharded' ? [SHARDED_REPLICA_PATH, SHARDED_REPLICA_NAME] : [EVERYWHERE_REPLICA_PATH, EVERYWHERE_REPLICA_NAME];
  const replicated = `ENGINE = Replicated${engineName}(${[quote(path), quote(replica), ...(args ? [args] : [])].join(', ')})${afterEngine}`;
  const db = options.database;
  if (kind === 'everywhere') return [`CREATE TABLE IF NOT EXISTS ${db}.${table} ON CLUSTER ${options.cluster}\n${columns}\n${replicated}`];
  const local = `${table}${LOCAL_SUFFIX}`;
  const shard = SHARDED_TABLES[table]!;
  return [
    `CREATE TABLE IF NOT EXISTS ${db}.${local} ON CLUSTER ${options.cluster}\n${columns}\n${replicated}`,
    `CREATE TABLE IF NOT EXISTS ${db}.${table} ON CLUSTER ${options.cluster} AS ${db}.${local}\nENGINE = Distributed(${[quote(options.cluster), quote(db), quote(local), shard.key].join(', ')})`,
  ];
}

function alterOrDropTable(match: RegExpExecArray, statement: string, options: ClusterOptions): string[] {
  const [, verb, database, table, cluster, body] = match as unknown as [string, string, string, string, string, string];
  checkCluster(statement, cluster, options);
  checkDatabase(statement, database, options);
  if (tableKind(table, statement) === 'everywhere') return [statement];
  const on = (name: string) => `${verb} ${options.database}.${name} ON CLUSTER ${options.cluster}${body}`;
  const local = on(`${table}${LOCAL_SUFFIX}`);
  if (/^DROP/i.test(verb)) return [on(table), local];
  return COLUMN_ALTERATION.test(body) ? [local, on(table)] : [local];
}

/** `CREATE ROW POLICY … ON CLUSTER c ON <tables> FOR SELECT …` (sql/access.ts). */
const ROW_POLICY = /^(CREATE\s+ROW\s+POLICY\s+OR\s+REPLACE\s+\S+\s+ON\s+CLUSTER\s+(\w+)\s+ON\s+)(.+?)(\s+FOR\s+SELECT\b[\s\S]*)$/i;

/** A row policy on a sharded table holds for its `_local` table too: a shard reads that one, whoever asked the Distributed table. */
function rowPolicy(m: RegExpExecArray, statement: string, options: ClusterOptions): string {
  const tables = m[3]!.split(/\s*,\s*/).flatMap((ref) => {
    const [db, table] = ref.split('.') as [string, string | undefined];
    if (table === undefined) throw new ClusterRenderError(`row policy tables must be <db>.<table>: ${short(statement)}`);
    return db === options.database && SHARDED_TABLES[table] ? [ref, `${db}.${table}${LOCAL_SUFFIX}`] : [ref];
  });
  return `${m[1]}${tables.join(', ')}${m[4]}`;
}

/**
 * The statements for a cluster, from the single-node statements (already
 * rendered with `ON CLUSTER <cluster>`). Throws ClusterRenderError for a
 * statement it cannot render faithfully rather than guessing.
 */
export function clusterStatements(statements: readonly string[], options: ClusterOptions): string[] {
  const out: string[] = [];
  for (const raw of statements) {
    const statement = raw.trim();
    if (/^CREATE\s+TABLE\b/i.test(statement)) {
      out.push(...createTable(statement, options));
      continue;
    }
    const alter = ALTER_OR_DROP_TABLE.exec(statement);
    if (alter) {
      out.push(...alterOrDropTable(alter, statement, options));
      continue;
    }
    if (/^(ALTER|DROP)\s+TABLE\b/i.test(statement)) {
      checkCluster(statement, ON_CLUSTER.exec(statement)?.[1], options);
      throw new ClusterRenderError(`cluster mode renders ALTER TABLE / DROP TABLE [IF EXISTS] <db>.<table> ON CLUSTER <cluster> …, got: ${short(statement)}`);
    }
    const policy = ROW_POLICY.exec(statement);
    if (policy) {
      checkCluster(statement, policy[2], options);
      out.push(rowPolicy(policy, statement, options));
      continue;
    }
    if (PASS_THROUGH.test(statement)) {
      checkCluster(statement, ON_CLUSTER.exec(statement)?.[1], options);
      out.push(statement);
      continue;
    }
    if (/^INSERT\s+INTO\b/i.test(statement)) {
      // Data statements go through the Distributed tables by their names.
      out.push(statement);
      continue;
    }
    throw new ClusterRenderError(`cluster mode cannot render this statement yet (teach sql/cluster.ts): ${short(statement)}`);
  }
  return out;
}
