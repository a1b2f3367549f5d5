/**
 * Production-mode least privilege (sql/access.ts): the reader role and the
 * per-tenant row policies `fleet migrate --reader-tenants` creates on a
 * ClickHouse server — for one node and rendered for a cluster — parse with
 * the engine's own parser (chDB), name every table with a tenant column of
 * a migrated database, and `fleet migrate` refuses them on chDB, which has
 * no access control.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessStatements, applyAccess, TENANT_TABLES_SQL, tenantRole } from '../sql/access.ts';
import type { Store } from '../storage/store.ts';
import { startFleet } from './support/processes.ts';
import { freshStore, tempDir } from './support/store.ts';

let store: Store;
let tenantTables: string[];

beforeAll(async () => {
  store = await freshStore('fleet');
  tenantTables = (await store.query<{ table: string }>(TENANT_TABLES_SQL, { db: 'fleet' })).map((r) => r.table);
}, 120_000);

afterAll(async () => {
  await store?.close();
});

/** The engine's canonical rendering: a parse error throws. */
async function parse(sql: string): Promise<string> {
  const [row] = await store.query<{ q: string }>('SELECT formatQuerySingleLine({s:String}) AS q', { s: sql });
  return row!.q;
}

describe('reader role and tenant row policies', () => {
  it('cover every table with a tenant column, and parse with the engine\'s parser', async () => {
    expect(tenantTables).toEqual(expect.arrayContaining(['attempts', 'llm_calls', 'spans']));
    expect(tenantTables.filter((t) => t.startsWith('v_'))).toEqual([]);
    const statements = accessStatements({ database: 'fleet', tenants: ['acme', "o'brien team"], tenantTables });
    for (const s of statements) await parse(s);
    const text = statements.join(';\n');
    expect(text).toContain('CREATE ROLE IF NOT EXISTS perpass_reader');
    expect(text).toContain('GRANT SELECT ON fleet.* TO perpass_reader');
    expect(text).toContain("USING tenant = 'acme' AS PERMISSIVE TO perpass_tenant_acme");
    expect(text).toContain("USING tenant = 'o\\'brien team' AS PERMISSIVE TO `perpass_tenant_o'brien team`");
    for (const t of tenantTables) expect(text).toContain(`fleet.${t}`);
    expect(text).not.toMatch(/ON fleet\.dead_letters|ON fleet\.alerts\b/);
    // Users no tenant role names keep every row: once a table has policies, ClickHouse shows nothing to the others.
    expect(statements.at(-1)).toBe(`CREATE ROW POLICY OR REPLACE perpass_unscoped ON fleet.* FOR SELECT USING 1 AS PERMISSIVE TO ALL EXCEPT ${tenantRole('acme')}, \`perpass_tenant_o'brien team\``);
  });

  it('render for a cluster: ON CLUSTER everywhere, the _local table of each sharded table under the same policy', async () => {
    const statements = accessStatements({ database: 'fleet', tenants: ['acme'], tenantTables, cluster: 'perpass' });
    for (const s of statements) {
      expect(s).toMatch(/ON CLUSTER perpass/);
      await parse(s);
    }
    const policy = statements.find((s) => s.startsWith('CREATE ROW POLICY OR REPLACE perpass_tenant_acme '))!;
    for (const t of ['attempts', 'llm_calls', 'spans']) expect(policy).toContain(`fleet.${t}, fleet.${t}_local`);
  });

  it('are refused with a clear error on embedded chDB, by applyAccess and by fleet migrate', async () => {
    await expect(applyAccess(store, { tenants: ['acme'] })).rejects.toThrow(/needs a ClickHouse server.*--query-tokens/);
    const migrate = startFleet(['migrate', '--data-dir', tempDir('access-migrate'), '--reader-tenants', 'acme']);
    expect(await migrate.exited).not.toBe(0);
    expect(migrate.output()).toMatch(/--reader-tenants needs a ClickHouse server/);
  }, 120_000);

  it('refuse bad input by name', () => {
    expect(() => accessStatements({ database: 'fleet; DROP', tenants: ['a'], tenantTables })).toThrow(/database/);
    expect(() => accessStatements({ database: 'fleet', tenants: [''], tenantTables })).toThrow(/tenant/);
    expect(() => accessStatements({ database: 'fleet', tenants: ['a'], tenantTables: [] })).toThrow(/migrate it first/);
  });
});
