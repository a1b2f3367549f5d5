/**
 * Migration runner: applies sql/migrations/NNNN_name.sql in order and
 * records each applied version with its checksum in `<db>.schema_migrations`.
 * Every statement is idempotent (IF NOT EXISTS / OR REPLACE), so two
 * processes migrating at once, or a migration re-run after a crash, do no
 * harm. An applied migration whose file changed since is an error, not
 * something to skip silently.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Store } from '../storage/store.ts';
import { clusterStatements } from './cluster.ts';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

export interface Migration {
  version: number;
  name: string;
  /** The file's text with placeholders still in it. */
  template: string;
  checksum: string;
}

export interface RenderOptions {
  database: string;
  /** ClickHouse cluster name: renders `ON CLUSTER` on every statement. */
  cluster?: string;
  /** Days spans are kept (TTL of `spans`, default 14). */
  spansTtlDays?: number;
}

export function listMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const template = readFileSync(path.join(dir, file), 'utf8');
      return {
        version: Number(file.slice(0, 4)),
        name: file.slice(5, -4),
        template,
        checksum: createHash('sha256').update(template).digest('hex').slice(0, 16),
      };
    });
}

/** The statements of a migration with its placeholders filled. */
export function renderStatements(template: string, options: RenderOptions): string[] {
  const values: Record<string, string> = {
    db: options.database,
    on_cluster: options.cluster ? `ON CLUSTER ${options.cluster}` : '',
    spans_ttl_days: String(options.spansTtlDays ?? 14),
  };
  const sql = template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`unknown placeholder {{${key}}} in a migration`);
    return v;
  });
  // comment lines go first, so a comment ending in ';' never ends a statement
  const statements = sql
    .replace(/^\s*--.*$/gm, '')
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  // On a cluster: Replicated engines, Distributed tables (sql/cluster.ts).
  return options.cluster ? clusterStatements(statements, { database: options.database, cluster: options.cluster }) : statements;
}

/** The database and `schema_migrations`, created before any migration. */
export function bootstrapStatements(options: RenderOptions): string[] {
  const onCluster = options.cluster ? ` ON CLUSTER ${options.cluster}` : '';
  const statements = [
    `CREATE DATABASE IF NOT EXISTS ${options.database}${onCluster} ENGINE = Atomic`,
    `CREATE TABLE IF NOT EXISTS ${options.database}.schema_migrations${onCluster}
     (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
     ENGINE = ReplacingMergeTree ORDER BY version`,
  ];
  return options.cluster ? clusterStatements(statements, { database: options.database, cluster: options.cluster }) : statements;
}

const label = (m: Migration) => `${String(m.version).padStart(4, '0')}_${m.name}`;

export interface MigrateResult {
  applied: number[];
  alreadyApplied: number[];
}

export async function migrate(store: Store, options: Omit<RenderOptions, 'database'> = {}): Promise<MigrateResult> {
  const render = { ...options, database: store.database };
  for (const statement of bootstrapStatements(render)) await store.command(statement);
  const done = new Map(
    (await store.query<{ version: number; checksum: string }>(`SELECT version, checksum FROM ${store.database}.schema_migrations FINAL`)).map((r) => [
      Number(r.version),
      r.checksum,
    ]),
  );
  const result: MigrateResult = { applied: [], alreadyApplied: [] };
  for (const m of listMigrations()) {
    const applied = done.get(m.version);
    if (applied !== undefined) {
      // An applied migration that changed would leave this database on a schema the code no longer matches.
      if (applied !== m.checksum) {
        throw new Error(
          `migration ${label(m)} was applied to database ${store.database} (${store.location}) with checksum ${applied}, but the file now has ${m.checksum}: ` +
            'the database was created by another perpass schema. Keep its data elsewhere and start from an empty database (or data directory).',
        );
      }
      result.alreadyApplied.push(m.version);
      continue;
    }
    for (const statement of renderStatements(m.template, render)) {
      try {
        await store.command(statement);
      } catch (err) {
        throw new Error(`migration ${label(m)} failed: ${(err as Error).message}\n--- statement ---\n${statement}`, { cause: err });
      }
    }
    await store.insert('schema_migrations', [{ version: m.version, name: m.name, checksum: m.checksum }]);
    result.applied.push(m.version);
  }
  return result;
}
