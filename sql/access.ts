/**
 * Least privilege on a ClickHouse server (production mode), done by
 * ClickHouse itself: what the embedded endpoint does for its readers, as
 * SQL that `fleet migrate --reader-tenants …` runs.
 *
 *   - a role `perpass_reader` with SELECT on the perpass database only;
 *   - per tenant a role `perpass_tenant_<tenant>` that inherits it, and a
 *     row policy on every table with a `tenant` column letting it see that
 *     tenant's rows only (the shared price catalog whole, the other tables
 *     — dead letters, alerts — not at all);
 *   - one policy `perpass_unscoped` (`USING 1` on the whole database, for
 *     every user except the tenant roles): once a table has row policies,
 *     ClickHouse shows nothing to users no policy names, so without it the
 *     pipeline's own users would lose their reads.
 *
 * Grant the roles to users as usual (`GRANT perpass_tenant_acme TO
 * team_acme`). Statements carry `{{on_cluster}}` placement like the
 * migrations; on a cluster sql/cluster.ts renders them, adding each sharded
 * table's `_local` table to the policies.
 */
import type { Store } from '../storage/store.ts';
import { clusterStatements, LOCAL_SUFFIX } from './cluster.ts';

export interface AccessOptions {
  database: string;
  tenants: readonly string[];
  /** Tables of `database` with a `tenant` column (TENANT_TABLES_SQL). */
  tenantTables: readonly string[];
  /** Tables every tenant may read whole. */
  sharedTables?: readonly string[];
  /** Name of the reader role (default perpass_reader). */
  readerRole?: string;
  cluster?: string;
}

export const READER_ROLE = 'perpass_reader';

/** The tables (not views: a view reads its tables with the reader's policies) of database {db} with a tenant column. */
export const TENANT_TABLES_SQL =
  "SELECT DISTINCT table FROM system.columns WHERE database = {db:String} AND name = 'tenant' " +
  "AND table IN (SELECT name FROM system.tables WHERE database = {db:String} AND engine NOT LIKE '%View') ORDER BY table";
export const UNSCOPED_POLICY = 'perpass_unscoped';

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ident = (name: string) => (IDENT.test(name) ? name : `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``);
const literal = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** The role of a tenant's readers. */
export function tenantRole(tenant: string): string {
  return `perpass_tenant_${tenant}`;
}

/** The statements, in order, for a single server or (with `cluster`) rendered for the cluster. */
export function accessStatements(o: AccessOptions): string[] {
  if (!IDENT.test(o.database)) throw new Error(`database ${JSON.stringify(o.database)} must be a plain identifier`);
  const reader = o.readerRole ?? READER_ROLE;
  if (!IDENT.test(reader)) throw new Error(`reader role ${JSON.stringify(reader)} must be a plain identifier`);
  const tenants = [...new Set(o.tenants)];
  for (const t of tenants) if (t === '' || t.length > 200) throw new Error(`tenant ${JSON.stringify(t)} must be 1 to 200 characters`);
  if (o.tenantTables.length === 0) throw new Error(`database ${o.database} has no table with a tenant column: migrate it first`);
  const on = o.cluster ? ` ON CLUSTER ${ident(o.cluster)}` : '';
  const db = o.database;
  const shared = o.sharedTables ?? ['prices'];
  const statements = [`CREATE ROLE IF NOT EXISTS ${reader}${on}`, `GRANT${on} SELECT ON ${db}.* TO ${reader}`];
  for (const tenant of tenants) {
    const role = ident(tenantRole(tenant));
    statements.push(
      `CREATE ROLE IF NOT EXISTS ${role}${on}`,
      `GRANT${on} ${reader} TO ${role}`,
      `CREATE ROW POLICY OR REPLACE ${role}${on} ON ${o.tenantTables.map((t) => `${db}.${ident(t)}`).join(', ')} FOR SELECT USING tenant = ${literal(tenant)} AS PERMISSIVE TO ${role}`,
    );
    if (shared.length) {
      statements.push(`CREATE ROW POLICY OR REPLACE ${ident(`${tenantRole(tenant)}_shared`)}${on} ON ${shared.map((t) => `${db}.${ident(t)}`).join(', ')} FOR SELECT USING 1 AS PERMISSIVE TO ${role}`);
    }
  }
  const except = tenants.length ? ` EXCEPT ${tenants.map((t) => ident(tenantRole(t))).join(', ')}` : '';
  statements.push(`CREATE ROW POLICY OR REPLACE ${UNSCOPED_POLICY}${on} ON ${db}.* FOR SELECT USING 1 AS PERMISSIVE TO ALL${except}`);
  return o.cluster ? clusterStatements(statements, { database: db, cluster: o.cluster }) : statements;
}

/**
 * Creates the reader role and the tenants' row policies on the store's
 * server (`fleet migrate --reader-tenants`). chDB has no users, roles or
 * row policies: there the query endpoint scopes readers (--query-tokens).
 */
export async function applyAccess(store: Store, o: { tenants: readonly string[]; cluster?: string }): Promise<string[]> {
  if (store.dataDir) {
    throw new Error('--reader-tenants needs a ClickHouse server: embedded chDB has no users, roles or row policies (bind read tokens to tenants with --query-tokens instead)');
  }
  const rows = await store.query<{ table: string }>(TENANT_TABLES_SQL, { db: store.database });
  // On a cluster the `_local` tables come from sql/cluster.ts, next to their Distributed table.
  const tenantTables = rows.map((r) => r.table).filter((t) => !(o.cluster && t.endsWith(LOCAL_SUFFIX)));
  const statements = accessStatements({ database: store.database, tenants: o.tenants, tenantTables, ...(o.cluster && { cluster: o.cluster }) });
  for (const statement of statements) await store.command(statement);
  return statements;
}
