/**
 * Cluster DDL (sql/cluster.ts): every migration rendered for a cluster
 * parses in ClickHouse (chDB's parser, nothing executed: chDB has no
 * cluster), uses only Replicated and Distributed engines, and describes
 * exactly the single-node schema — column for column, same keys, TTLs and
 * settings — with the same table, view and function names for users.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clusterStatements,
  ClusterRenderError,
  closingParen,
  EVERYWHERE_REPLICA_NAME,
  EVERYWHERE_REPLICA_PATH,
  EVERYWHERE_TABLES,
  LOCAL_SUFFIX,
  SHARDED_REPLICA_NAME,
  SHARDED_REPLICA_PATH,
  SHARDED_TABLES,
} from '../sql/cluster.ts';
import { splitTopLevel } from '../query/sql.ts';
import { bootstrapStatements, listMigrations, renderStatements } from '../sql/migrate.ts';
import type { Store } from '../storage/store.ts';
import { freshStore } from './support/store.ts';

const DB = 'fleet';
const CLUSTER = 'perpass';

const single = [...bootstrapStatements({ database: DB }), ...listMigrations().flatMap((m) => renderStatements(m.template, { database: DB }))];
const clustered = [
  ...bootstrapStatements({ database: DB, cluster: CLUSTER }),
  ...listMigrations().flatMap((m) => renderStatements(m.template, { database: DB, cluster: CLUSTER })),
];

interface Column {
  name: string;
  type: string;
  defaultKind: string;
  defaultExpression: string;
  codec: string;
}

/** Position of the first top-level ` KEYWORD` of a column declaration, or its length. */
function topLevelKeyword(text: string, keywords: readonly string[]): { at: number; keyword: string } {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '`') {
      for (i++; i < text.length && text[i] !== c; i++) if (text[i] === '\\') i++;
    } else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (depth === 0 && c === ' ') {
      const keyword = keywords.find((k) => text.startsWith(` ${k} `, i) || text.startsWith(` ${k}(`, i));
      if (keyword) return { at: i, keyword };
    }
  }
  return { at: text.length, keyword: '' };
}

/** Columns of a CREATE TABLE as formatted by formatQuerySingleLine. */
function parseColumns(formatted: string): Column[] {
  const open = formatted.indexOf('(');
  const list = formatted.slice(open + 1, closingParen(formatted, open) - 1);
  return splitTopLevel(list).map((decl) => {
    const m = /^`([^`]+)` ([\s\S]+)$/.exec(decl);
    if (!m) throw new Error(`cannot read column declaration ${decl}`);
    const rest = m[2]!;
    const typeEnd = topLevelKeyword(rest, ['DEFAULT', 'MATERIALIZED', 'ALIAS', 'EPHEMERAL', 'CODEC', 'COMMENT', 'TTL']);
    let tail = rest.slice(typeEnd.at).trim();
    let defaultKind = '';
    let defaultExpression = '';
    let codec = '';
    const kind = /^(DEFAULT|MATERIALIZED|ALIAS|EPHEMERAL) /.exec(tail);
    if (kind) {
      const end = topLevelKeyword(tail.slice(kind[0].length - 1), ['CODEC', 'COMMENT', 'TTL']);
      defaultKind = kind[1]!;
      defaultExpression = tail.slice(kind[0].length, kind[0].length - 1 + end.at).trim();
      tail = tail.slice(kind[0].length - 1 + end.at).trim();
    }
    if (tail.startsWith('CODEC(')) {
      codec = tail.slice(0, closingParen(tail, 5));
      tail = tail.slice(codec.length).trim();
    }
    expect(tail, `unparsed rest of column ${m[1]}`).toBe('');
    return { name: m[1]!, type: rest.slice(0, typeEnd.at).trim(), defaultKind, defaultExpression, codec };
  });
}

/** Applies the `ADD COLUMN … [AFTER c]` commands of a formatted ALTER TABLE to `columns` (other commands change no column list). */
async function addColumns(columns: Column[], formatted: string): Promise<void> {
  // formatQuerySingleLine writes each command in parentheses: `ALTER TABLE t ON CLUSTER c (ADD COLUMN …), (…)`
  const at = formatted.indexOf(' (');
  if (at < 0) return;
  for (const command of splitTopLevel(formatted.slice(at + 1))) {
    const text = command.trim().replace(/^\(([\s\S]*)\)$/, '$1');
    if (!text.startsWith('ADD COLUMN ')) continue;
    const m = /^ADD COLUMN (?:IF NOT EXISTS )?([\s\S]+?)(?: AFTER `?(\w+)`?| FIRST)?$/.exec(text);
    if (!m) throw new Error(`cannot read ALTER command ${command}`);
    const [column] = parseColumns(`t (${m[1]})`);
    const after = m[2] === undefined ? columns.length - 1 : columns.findIndex((c) => c.name === m[2]);
    expect(after, `${command}: AFTER names a column of the table`).toBeGreaterThanOrEqual(-1);
    if (!columns.some((c) => c.name === column!.name)) columns.splice(after + 1, 0, column!);
  }
}

const createdName = (statement: string) => /^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|FUNCTION|DATABASE)\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.]+)/i.exec(statement)?.[1];

describe('cluster DDL', () => {
  let store: Store;
  const format = async (sql: string, singleLine = false) =>
    (await store.query<{ f: string }>(`SELECT ${singleLine ? 'formatQuerySingleLine' : 'formatQuery'}({q:String}) AS f`, { q: sql }))[0]!.f;

  beforeAll(async () => {
    store = await freshStore(DB); // the single-node schema, migrated for real
  });
  afterAll(async () => store?.close());

  it('renders every migration, and every statement parses in ClickHouse without running', async () => {
    expect(listMigrations().length).toBeGreaterThanOrEqual(4);
    expect(clustered.length).toBeGreaterThan(single.length);
    for (const statement of clustered) {
      // chDB hands EXPLAIN's single `explain` column back as plain lines
      const ast = (await store.query<string | Record<string, string>>(`EXPLAIN AST ${statement}`)).map((r) => (typeof r === 'string' ? r : Object.values(r)[0]!));
      expect(ast.length, statement).toBeGreaterThan(0);
      expect(ast[0]).toMatch(/^(CreateQuery|CreateSQLFunctionQuery|AlterQuery|DropQuery|InsertQuery)/);
      if (!/^INSERT\b/i.test(statement)) expect(statement).toMatch(new RegExp(`\\bON CLUSTER ${CLUSTER}\\b`));
    }
    // nothing was created by parsing: the cluster-only names do not exist
    const [locals] = await store.query<{ n: number }>("SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name LIKE '%\\_local'", { db: DB });
    expect(locals!.n).toBe(0);
  });

  it('uses Replicated*MergeTree with the default replication macros, and Distributed for the sharded tables', () => {
    const engines = clustered.flatMap((s) => [...s.matchAll(/\bENGINE\s*=\s*(\w+)/gi)].map((m) => ({ engine: m[1]!, statement: s })));
    expect(engines.length).toBeGreaterThan(0);
    for (const { engine, statement } of engines) {
      if (engine === 'Atomic') continue;
      expect(engine, statement).toMatch(/^(Replicated\w*MergeTree|Distributed)$/);
      const name = createdName(statement)!.split('.')[1]!;
      if (engine === 'Distributed') {
        expect(Object.keys(SHARDED_TABLES)).toContain(name);
        expect(statement).toContain(`AS ${DB}.${name}${LOCAL_SUFFIX}`);
        expect(statement).toContain(`Distributed('${CLUSTER}', '${DB}', '${name}${LOCAL_SUFFIX}', ${SHARDED_TABLES[name]!.key})`);
      } else if (name.endsWith(LOCAL_SUFFIX)) {
        expect(statement).toContain(`${engine}('${SHARDED_REPLICA_PATH}', '${SHARDED_REPLICA_NAME}'`);
      } else {
        expect(EVERYWHERE_TABLES).toContain(name);
        expect(statement).toContain(`${engine}('${EVERYWHERE_REPLICA_PATH}', '${EVERYWHERE_REPLICA_NAME}'`);
      }
    }
    // ReplacingMergeTree keeps its version column after the replication arguments
    const attempts = clustered.find((s) => createdName(s) === `${DB}.attempts${LOCAL_SUFFIX}`)!;
    expect(attempts).toContain(`ReplicatedReplacingMergeTree('${SHARDED_REPLICA_PATH}', '${SHARDED_REPLICA_NAME}', version)`);
  });

  it('keeps the single-node schema column for column: same columns, types, defaults, codecs, keys, TTLs and settings', async () => {
    const tables = await store.query<{ name: string; engine: string; sorting_key: string }>(
      "SELECT name, engine, sorting_key FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree' ORDER BY name",
      { db: DB },
    );
    expect(tables.map((t) => t.name).sort()).toEqual([...Object.keys(SHARDED_TABLES), ...EVERYWHERE_TABLES].sort());
    for (const { name } of tables) {
      const physical = Object.hasOwn(SHARDED_TABLES, name) ? `${name}${LOCAL_SUFFIX}` : name;
      const clusterDdl = clustered.filter((s) => createdName(s) === `${DB}.${physical}`);
      const singleDdl = single.filter((s) => createdName(s) === `${DB}.${name}`);
      expect(clusterDdl, name).toHaveLength(1);
      expect(singleDdl, name).toHaveLength(1);

      // 1. the cluster table, with the cluster parts taken out, is the single-node table
      const backToSingle = (await format(clusterDdl[0]!))
        .replace(` ON CLUSTER ${CLUSTER}`, '')
        .replace(`${DB}.${physical}`, `${DB}.${name}`)
        .replace(/Replicated(\w*MergeTree)\('[^']*', '[^']*'(, )?/, '$1(')
        .replace(/(\w*MergeTree)\(\)/, '$1');
      expect(backToSingle, name).toBe(await format(singleDdl[0]!));

      // 2. its columns, read from the cluster DDL and the ADD COLUMNs of later migrations, are the live single-node table's
      const parsed = parseColumns(await format(clusterDdl[0]!, true));
      for (const alter of clustered.filter((st) => new RegExp(`^ALTER\\s+TABLE\\s+${DB}\\.${physical}\\s`, 'i').test(st))) {
        await addColumns(parsed, await format(alter, true));
      }
      const live = await store.query<{ name: string; type: string; default_kind: string; default_expression: string; compression_codec: string }>(
        'SELECT name, type, default_kind, default_expression, compression_codec FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position',
        { db: DB, t: name },
      );
      expect(parsed.map(({ name: n, type, defaultKind, defaultExpression }) => ({ n, type, defaultKind, defaultExpression })), name).toEqual(
        live.map((c) => ({ n: c.name, type: c.type, defaultKind: c.default_kind, defaultExpression: c.default_expression })),
      );
      // codecs: system.columns spells defaults out (Delta → Delta(8)); same set of columns compressed, same codec families
      expect(parsed.map((c) => c.codec.replace(/\(\d+\)/g, '')), name).toEqual(live.map((c) => c.compression_codec.replace(/\(\d+\)/g, '')));
    }
  });

  it('shards by keys that keep deduplicated rows (and a spec) on one shard, and the keys evaluate on the real tables', async () => {
    const keys = await store.query<{ name: string; sorting_key: string }>(
      'SELECT name, sorting_key FROM system.tables WHERE database = {db:String} AND has({t:Array(String)}, name)',
      { db: DB, t: Object.keys(SHARDED_TABLES) },
    );
    expect(keys).toHaveLength(3);
    for (const [table, shard] of Object.entries(SHARDED_TABLES)) {
      const rows = await store.query<{ k: string }>(`SELECT toString(${shard.key}) AS k FROM ${DB}.${table} LIMIT 1`);
      expect(rows.length).toBeLessThanOrEqual(1); // evaluates against the real columns
      for (const c of shard.columns) expect(shard.key).toContain(c);
      const sorting = keys.find((k) => k.name === table)!.sorting_key.split(',').map((s) => s.trim());
      if (table === 'attempts') {
        // spec_id is set by the same attempt span as attempt_id (the identity): every version of an attempt shares it
        expect(sorting).toContain('attempt_id');
        expect(sorting).toContain('tenant');
        expect(shard.columns).toEqual(['tenant', 'spec_id']);
      } else {
        for (const c of shard.columns) expect(sorting, `${table}: the shard key must be part of the dedup identity`).toContain(c);
      }
    }
  });

  it('keeps the names users query: every table, view and function of a single node exists on the cluster, views unchanged', async () => {
    const names = (statements: string[]) => new Set(statements.map(createdName).filter((n): n is string => n !== undefined && !n.endsWith(LOCAL_SUFFIX)));
    expect(names(clustered)).toEqual(names(single));
    // in order: a later migration may replace a view an earlier one created
    const replaced = (statements: string[]) => statements.filter((s) => /^CREATE\s+OR\s+REPLACE\s+(VIEW|FUNCTION)/i.test(s));
    const views = replaced(single);
    expect(views.length).toBeGreaterThanOrEqual(10);
    expect(replaced(clustered).map(createdName)).toEqual(views.map(createdName));
    for (const [i, c] of replaced(clustered).entries()) {
      expect((await format(c)).replace(` ON CLUSTER ${CLUSTER}`, '')).toBe(await format(views[i]!));
    }
    // and single-node rendering knows nothing of clusters
    expect(single.join('\n')).not.toMatch(/Replicated|Distributed|ON CLUSTER|_local\b/);
  });

  it('renders later migrations: column changes reach the local and the Distributed table, other changes the local one', async () => {
    const o = { database: DB, cluster: CLUSTER };
    const add = clusterStatements([`ALTER TABLE ${DB}.attempts ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS region LowCardinality(String) DEFAULT ''`], o);
    expect(add).toEqual([
      `ALTER TABLE ${DB}.attempts_local ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS region LowCardinality(String) DEFAULT ''`,
      `ALTER TABLE ${DB}.attempts ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS region LowCardinality(String) DEFAULT ''`,
    ]);
    const ttl = clusterStatements([`ALTER TABLE ${DB}.spans ON CLUSTER ${CLUSTER} MODIFY TTL toDateTime(start_time) + INTERVAL 30 DAY`], o);
    expect(ttl).toEqual([`ALTER TABLE ${DB}.spans_local ON CLUSTER ${CLUSTER} MODIFY TTL toDateTime(start_time) + INTERVAL 30 DAY`]);
    const drop = clusterStatements([`DROP TABLE IF EXISTS ${DB}.llm_calls ON CLUSTER ${CLUSTER} SYNC`], o);
    expect(drop).toEqual([`DROP TABLE IF EXISTS ${DB}.llm_calls ON CLUSTER ${CLUSTER} SYNC`, `DROP TABLE IF EXISTS ${DB}.llm_calls_local ON CLUSTER ${CLUSTER} SYNC`]);
    const everywhere = `ALTER TABLE ${DB}.prices ON CLUSTER ${CLUSTER} ADD COLUMN IF NOT EXISTS note String DEFAULT ''`;
    expect(clusterStatements([everywhere], o)).toEqual([everywhere]);
    const insert = `INSERT INTO ${DB}.attempts SELECT * FROM ${DB}.attempts WHERE 0`;
    expect(clusterStatements([insert], o)).toEqual([insert]);
    for (const s of [...add, ...ttl, ...drop]) expect((await store.query(`EXPLAIN AST ${s}`)).length).toBeGreaterThan(0);
  });

  it('refuses what it cannot render faithfully, saying what to do', () => {
    const o = { database: DB, cluster: CLUSTER };
    const refuse = (sql: string, message: RegExp) => expect(() => clusterStatements([sql], o)).toThrow(message);
    refuse(`CREATE TABLE IF NOT EXISTS ${DB}.mystery ON CLUSTER ${CLUSTER} (a UInt8) ENGINE = MergeTree ORDER BY a`, /add it to SHARDED_TABLES .* or EVERYWHERE_TABLES/);
    refuse(`CREATE TABLE IF NOT EXISTS ${DB}.prices (a UInt8) ENGINE = MergeTree ORDER BY a`, /no ON CLUSTER \(write \{\{on_cluster\}\}/);
    refuse(`CREATE TABLE ${DB}.prices ON CLUSTER ${CLUSTER} (a UInt8) ENGINE = MergeTree ORDER BY a`, /IF NOT EXISTS/);
    refuse(`CREATE TABLE IF NOT EXISTS ${DB}.prices ON CLUSTER other (a UInt8) ENGINE = MergeTree ORDER BY a`, /ON CLUSTER other, expected perpass/);
    refuse(`CREATE TABLE IF NOT EXISTS ${DB}.prices ON CLUSTER ${CLUSTER} (a UInt8) ENGINE = Log`, /replicates single-node \*MergeTree engines, got Log/);
    refuse(`CREATE TABLE IF NOT EXISTS other.prices ON CLUSTER ${CLUSTER} (a UInt8) ENGINE = MergeTree ORDER BY a`, /names database other/);
    refuse(`CREATE OR REPLACE VIEW ${DB}.v AS SELECT 1`, /no ON CLUSTER/);
    refuse(`ALTER TABLE ${DB}.attempts ADD COLUMN x UInt8`, /no ON CLUSTER/);
    refuse(`CREATE MATERIALIZED VIEW ${DB}.mv ON CLUSTER ${CLUSTER} TO ${DB}.attempts AS SELECT 1`, /teach sql\/cluster.ts/);
    refuse(`TRUNCATE TABLE ${DB}.attempts ON CLUSTER ${CLUSTER}`, /teach sql\/cluster.ts/);
    expect(() => clusterStatements([`CREATE TABLE IF NOT EXISTS ${DB}.prices ON CLUSTER ${CLUSTER} (a UInt8`], o)).toThrow(ClusterRenderError);
  });
});
