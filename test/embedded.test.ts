/**
 * The newcomer's path: `fleet start` (one process, no services) as a child
 * process on free ports, `fleet demo` against it through the real OTLP
 * exporter, and the answers read back through the ClickHouse-compatible
 * endpoint with @clickhouse/client — exact, read-only, durable, and complete
 * after SIGTERM.
 */
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, describe, expect, it } from 'vitest';
import { planFleet } from '../demo/plan.ts';
import { expectedCostPerPass, loadCards } from './support/ground-truth.ts';
import { fleetPlan } from './support/fleet-plan.ts';
import { startFleet, startNode, type Child } from './support/processes.ts';
import { tempDir } from './support/store.ts';

const dataDir = tempDir('embedded');
const cards = loadCards();
let running: Child | undefined;
let client: ClickHouseClient | undefined;

async function start(): Promise<{ otlp: string; query: string }> {
  running = startFleet(['start', '--data-dir', dataDir, '--collector-port', '0', '--query-port', '0']);
  const m = await running.waitFor(/OTLP\/HTTP (http:\/\/\S+?)\/v1\/traces · query (http:\/\/[\d.]+:\d+)/);
  await client?.close();
  // refused queries are expected here; the client would log each one
  client = createClient({ url: m[2]!, log: { level: ClickHouseLogLevel.OFF } });
  return { otlp: m[1]!, query: m[2]! };
}

async function rows<T>(query: string): Promise<T[]> {
  return (await client!.query({ query, format: 'JSONEachRow', clickhouse_settings: { output_format_json_quote_decimals: 1 } })).json<T>();
}

const byCell = (x: { model: string; spec_tier: string }, y: typeof x) => (`${x.model}|${x.spec_tier}` < `${y.model}|${y.spec_tier}` ? -1 : 1);

afterAll(async () => {
  await client?.close();
  await running?.kill();
});

describe('fleet start + fleet demo', () => {
  let endpoints: { otlp: string; query: string };

  it('serves the demo fleet\'s exact $/pass on the query endpoint', async () => {
    endpoints = await start();
    const demo = startFleet(['demo', '--endpoint', endpoints.otlp, '--query-port', new URL(endpoints.query).port, '--specs', '8', '--seed', '3']);
    await demo.waitFor(/all \d+ attempts visible/, 120_000);
    expect(await demo.exited).toBe(0);
    expect(demo.output()).toMatch(/deepseek-v4-flash/);
    expect(demo.output()).toMatch(/∞/); // grok-4.20-reasoning never passes tier-3

    const plan = planFleet({ specsPerCell: 8, seed: 3, startNs: BigInt(Date.now()) * 1_000_000n });
    const got = await rows<{ model: string; spec_tier: string }>(
      'SELECT tenant, model, spec_tier, canary, variant, attempts, passes, unpriced_attempts, cost_usd, cost_per_pass FROM fleet.v_cost_per_pass',
    );
    expect(got.sort(byCell)).toEqual(expectedCostPerPass(cards, plan).sort(byCell));
  }, 180_000);

  it('reports through the running endpoint as table, JSON and CSV', async () => {
    const port = new URL(endpoints.query).port;
    const json = startFleet(['report', 'cost-per-pass', '--query-port', port, '--format', 'json']);
    expect(await json.exited).toBe(0);
    const cells = JSON.parse(json.output().slice(json.output().indexOf('['))) as { model: string; spec_tier: string; cost_per_pass: string | null }[];
    const plan = planFleet({ specsPerCell: 8, seed: 3, startNs: BigInt(Date.now()) * 1_000_000n });
    const expected = expectedCostPerPass(cards, plan);
    expect(cells.map((c) => [c.model, c.spec_tier, c.cost_per_pass]).sort()).toEqual(expected.map((c) => [c.model, c.spec_tier, c.cost_per_pass]).sort());
    const csv = startFleet(['report', 'routing', '--query-port', port, '--format', 'csv', '--min-pass-rate', '0', '--tier', 'tier-3']);
    expect(await csv.exited).toBe(0);
    expect(csv.output()).toMatch(/^tenant,spec_tier,rank,model,/m);
    expect(csv.output()).toMatch(/default,tier-3,1,deepseek-v4-flash,/);
    const specs = startFleet(['report', 'specs', '--query-port', port, '--tier', 'tier-2']);
    expect(await specs.exited).toBe(0);
    expect(specs.output()).toMatch(/cost to first pass/);
    const check = startFleet(['prices', 'check', '--query-port', port]);
    expect(await check.exited).toBe(0);
    expect(check.output()).toMatch(/every LLM call seen has a price in force/);
  }, 120_000);

  it('refuses writes and setting overrides through :8123', async () => {
    const before = await rows<{ n: number }>('SELECT count() AS n FROM fleet.attempts');
    for (const statement of [
      "INSERT INTO fleet.attempts (attempt_id, tenant, spec_id, spec_tier, attempt_number, outcome) VALUES ('x', 't', 's', 'tier-1', 1, 'pass')",
      'DROP TABLE fleet.attempts',
      'ALTER TABLE fleet.attempts DELETE WHERE 1',
      'TRUNCATE TABLE fleet.attempts',
      'CREATE TABLE fleet.evil (x UInt8) ENGINE = Memory',
    ]) {
      await expect(client!.command({ query: statement }), statement).rejects.toMatchObject({ code: '164' });
    }
    await expect(client!.query({ query: 'SELECT 1', clickhouse_settings: { readonly: '0' } })).rejects.toMatchObject({ code: '164' });
    await expect(client!.query({ query: 'SELECT 1 SETTINGS max_memory_usage = 1' })).rejects.toMatchObject({ code: '164' });
    expect(await rows<{ n: number }>('SELECT count() AS n FROM fleet.attempts')).toEqual(before);
  });

  it('loses nothing acknowledged on SIGTERM, and keeps it across a restart', async () => {
    const [{ n: before } = { n: 0 }] = await rows<{ n: number }>('SELECT count() AS n FROM fleet.attempts FINAL');
    // an agent sends a fleet; the moment its exporter has every span acknowledged, stop perpass
    const agent = startNode('test/support/send-fleet.ts', [endpoints.otlp, 'sigterm', '6', '9']);
    await agent.waitFor(/sent \d+/, 120_000);
    expect(await running!.kill('SIGTERM')).toBe(0);
    expect(running!.output()).toMatch(/stopped; everything accepted is written/);

    await start();
    const plan = fleetPlan('sigterm', 6, 9);
    const [{ n: after } = { n: 0 }] = await rows<{ n: number }>('SELECT count() AS n FROM fleet.attempts FINAL');
    expect(after).toBe(before + plan.length);
    const got = await rows<{ model: string; spec_tier: string }>(
      "SELECT tenant, model, spec_tier, canary, variant, attempts, passes, unpriced_attempts, cost_usd, cost_per_pass FROM fleet.v_cost_per_pass WHERE tenant = 'sigterm'",
    );
    expect(got.sort(byCell)).toEqual(expectedCostPerPass(cards, plan).sort(byCell));
  }, 180_000);
});
