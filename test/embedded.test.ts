/**
 * The newcomer's path: `fleet start` (one process, no services) as a child
 * process on free ports, `fleet demo` against it through the real OTLP
 * exporter, and the answers read back through the ClickHouse-compatible
 * endpoint with @clickhouse/client — exact, read-only, durable, and complete
 * after SIGTERM. Then what surrounds it: a start that fails, the other
 * commands while `fleet start` owns the store, `fleet start` on a ClickHouse
 * server, and alerts inside the all-in-one.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsumedMessage } from '../bus/types.ts';
import { DEMO_DEFAULTS } from '../cli/demo.ts';
import { resolveConfig } from '../config/settings.ts';
import { planFleet, SEED_FLEET } from '../demo/plan.ts';
import { startAllInOne } from '../embedded/all-in-one.ts';
import { encodeTraceRequest } from '../otlp/codec.ts';
import { expectedCostPerPass, loadCards } from './support/ground-truth.ts';
import { fleetPlan } from './support/fleet-plan.ts';
import { attemptSpans, traceRequest } from './support/otlp-fleet.ts';
import { freePort } from './support/polling.ts';
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
  // Exact decimals as strings; counts as numbers (the endpoint, like a server, quotes 64-bit integers unless asked not to).
  return (await client!.query({ query, format: 'JSONEachRow', clickhouse_settings: { output_format_json_quote_decimals: 1, output_format_json_quote_64bit_integers: 0 } })).json<T>();
}

const byCell = (x: { model: string; spec_tier: string }, y: typeof x) => (`${x.model}|${x.spec_tier}` < `${y.model}|${y.spec_tier}` ? -1 : 1);

afterAll(async () => {
  await client?.close();
  await running?.kill();
});

/** The rows of the first table in `output` whose header has column `column`, as { header: cell }. */
function tableWith(output: string, column: string): Record<string, string>[] {
  const lines = output.split('\n');
  const cells = (line: string) => line.split('│').slice(1, -1).map((c) => c.trim());
  const at = lines.findIndex((l) => l.startsWith('│') && cells(l).includes(column));
  expect(at, `a table with a ${column} column in:\n${output}`).toBeGreaterThanOrEqual(0);
  const head = cells(lines[at]!);
  const out: Record<string, string>[] = [];
  for (const line of lines.slice(at + 1)) {
    if (line.startsWith('└')) break;
    if (line.startsWith('│')) out.push(Object.fromEntries(cells(line).map((c, i) => [head[i]!, c])));
  }
  return out;
}

/** The fleet `fleet demo` sends by default (its spec ids aside). */
const demoPlan = () => planFleet({ ...DEMO_DEFAULTS, startNs: BigInt(Date.now()) * 1_000_000n });

describe('fleet start + fleet demo', () => {
  let endpoints: { otlp: string; query: string };

  it('serves the demo fleet\'s exact $/pass on the query endpoint, and prints the ranking inversion', async () => {
    endpoints = await start();
    const demo = startFleet(['demo', '--endpoint', endpoints.otlp, '--query-port', new URL(endpoints.query).port]);
    await demo.waitFor(/all \d+ attempts visible/, 240_000);
    expect(await demo.exited).toBe(0);

    const plan = demoPlan();
    const expected = expectedCostPerPass(cards, plan);
    const got = await rows<{ model: string; spec_tier: string }>(
      'SELECT tenant, model, spec_tier, canary, variant, attempts, passes, unpriced_attempts, cost_usd, cost_per_pass FROM fleet.v_cost_per_pass',
    );
    expect(got.sort(byCell)).toEqual(expected.sort(byCell));

    // The printed table: every model × tier of this run once, ranked by $/pass within a tier.
    const table = tableWith(demo.output(), '$/M in · out');
    expect(table.map((r) => `${r.tier} ${r.model}`).sort()).toEqual(['tier-2', 'tier-3'].flatMap((t) => SEED_FLEET.map((c) => `${t} ${c.model}`)).sort());
    const tier3 = table.filter((r) => r.tier === 'tier-3');
    const byPass = tier3.map((r) => r.model);
    const perPass = (c: (typeof expected)[number]) => (c.cost_per_pass === null ? Infinity : Number(c.cost_per_pass));
    expect(byPass).toEqual(
      expected
        .filter((c) => c.spec_tier === 'tier-3')
        .sort((x, y) => perPass(x) - perPass(y) || (x.model < y.model ? -1 : 1))
        .map((c) => c.model),
    );
    const inputPrice = (r: Record<string, string>) => Number(/^\$([\d.]+) · /.exec(r['$/M in · out']!)?.[1] ?? Infinity);
    const byInputPrice = [...tier3].sort((x, y) => inputPrice(x) - inputPrice(y)).map((r) => r.model);
    expect(byInputPrice[0]).toBe('grok-4.3'); // cheapest per token …
    expect(byPass[0]).toBe('deepseek-v4-flash'); // … but not per pass
    expect(byPass.indexOf('grok-4.3')).toBeGreaterThan(0);
    expect(byInputPrice).not.toEqual(byPass);
    const cell = (model: string) => tier3.find((r) => r.model === model)!;
    expect(cell('grok-4.20-reasoning')['$/pass']).toBe('∞');
    expect(cell('grok-4.3')['$/M in · out']).toBe('$0.20 · $1.50');
    expect(cell('deepseek-v4-pro')['$/M in · out']).toBe('$1.74 · $3.48'); // the card after the launch discount
  }, 300_000);

  it('reports through the running endpoint as table, JSON and CSV', async () => {
    const port = new URL(endpoints.query).port;
    const json = startFleet(['report', 'cost-per-pass', '--query-port', port, '--format', 'json']);
    expect(await json.exited).toBe(0);
    const cells = JSON.parse(json.output().slice(json.output().indexOf('['))) as { model: string; spec_tier: string; cost_per_pass: string | null }[];
    const plan = demoPlan();
    const expected = expectedCostPerPass(cards, plan);
    expect(cells.map((c) => [c.model, c.spec_tier, c.cost_per_pass]).sort()).toEqual(expected.map((c) => [c.model, c.spec_tier, c.cost_per_pass]).sort());
    const csv = startFleet(['report', 'routing', '--query-port', port, '--format', 'csv', '--min-pass-rate', '0', '--tier', 'tier-3']);
    expect(await csv.exited).toBe(0);
    expect(csv.output()).toMatch(/^tenant,spec_tier,rank,model,/m);
    expect(csv.output()).toMatch(/default,tier-3,1,deepseek-v4-flash,/);
    const specs = startFleet(['report', 'specs', '--query-port', port, '--tier', 'tier-2']);
    expect(await specs.exited).toBe(0);
    expect(specs.output()).toMatch(/cost to first pass/);
    const kimi = startFleet(['report', 'specs', '--query-port', port, '--model', 'kimi-k2.6', '--format', 'json']);
    expect(await kimi.exited).toBe(0);
    const kimiSpecs = JSON.parse(kimi.output().slice(kimi.output().indexOf('['))) as { spec_id: string }[];
    expect(kimiSpecs).toHaveLength(new Set(plan.filter((a) => a.model === 'kimi-k2.6').map((a) => a.specId)).size);
    const none = startFleet(['report', 'specs', '--query-port', port, '--model', 'no-such-model']);
    expect(await none.exited).toBe(0);
    expect(none.output()).toMatch(/no attempts in this window/);
    const routing = startFleet(['report', 'routing', '--query-port', port, '--canary', 'tier-3/197e215e-record-cost-on-send-error']);
    expect(await routing.exited).toBe(1);
    expect(routing.output()).toMatch(/fleet: report routing cannot filter by --canary: it ranks models per tier over every canary and variant/);

    const check = startFleet(['prices', 'check', '--query-port', port]);
    expect(await check.exited).toBe(0);
    expect(check.output()).toMatch(/every LLM call seen has a price in force in the catalog loaded in http:\/\/127\.0\.0\.1:\d+ \(\d+ cards\)/);
    // A catalog without kimi's card leaves exactly kimi's calls unpriced, per service tier.
    const noKimi = path.join(tempDir('prices'), 'no-kimi.json');
    writeFileSync(noKimi, JSON.stringify({ cards: cards.filter((c) => c.model !== 'kimi-k2.6') }));
    const unpriced = startFleet(['prices', 'check', '--query-port', port, '--prices', noKimi]);
    expect(await unpriced.exited).toBe(1);
    const kimiCalls = plan.filter((a) => a.model === 'kimi-k2.6').flatMap((a) => a.calls);
    const tiers = [...new Set(kimiCalls.map((c) => c.serviceTier))].sort();
    expect(unpriced.output()).toContain(`${tiers.length} model(s) seen without a price in force in catalog ${noKimi}`);
    for (const tier of tiers) {
      const n = kimiCalls.filter((c) => c.serviceTier === tier).length;
      expect(unpriced.output()).toMatch(new RegExp(`  moonshot/kimi-k2\\.6 \\(${tier}\\): ${n} calls in \\d+ attempts from \\S+ to \\S+ — .*kimi-k2\\.6.*\\n`));
    }
    expect(unpriced.output().match(/^  \S+\/\S+ \(/gm)).toHaveLength(tiers.length);
  }, 120_000);

  it('prints only its own run: a second demo does not count the first one\'s attempts', async () => {
    const again = startFleet(['demo', '--endpoint', endpoints.otlp, '--query-port', new URL(endpoints.query).port, '--specs', '1', '--seed', '5']);
    await again.waitFor(/all \d+ attempts visible/, 120_000);
    expect(await again.exited).toBe(0);
    const plan = planFleet({ specsPerCell: 1, seed: 5, startNs: 0n });
    const attempts = (tier: string, model: string) => plan.filter((a) => a.tier === tier && a.model === model).length;
    const table = tableWith(again.output(), '$/M in · out');
    expect(table).toHaveLength(12);
    for (const r of table) expect(r.N!.replace(' low N', ''), `${r.tier} ${r.model}`).toBe(String(attempts(r.tier!, r.model!)));
  }, 180_000);

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WRITE_TOKEN = 'embedded-write-token-0123456789';

const answersPing = (url: string) => fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);

/** One attempt whose only LLM call is of a model no price card knows, as OTLP protobuf. */
function unpricedAttempt(tenant: string): Uint8Array {
  const [attempt] = planFleet({
    specsPerCell: 1,
    startNs: BigInt(Date.now()) * 1_000_000n,
    tenant,
    specPrefix: tenant,
    tiers: ['tier-2'],
    configs: [{ provider: 'acme', model: 'no-such-model-x', variant: 'v', passRate: { 'tier-2': 1 }, failure: 'fail', callTokens: { input: 100, cache_read: 0, cache_write: 0, output: 10, reasoning: 0 }, callsPerAttempt: 1 }],
  });
  return encodeTraceRequest(traceRequest(attemptSpans(attempt!), tenant));
}

async function postTraces(tracesUrl: string, body: Uint8Array): Promise<void> {
  const res = await fetch(tracesUrl, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body });
  expect(res.status).toBe(200);
}

describe('a fleet start that cannot start', () => {
  it('exits non-zero within seconds, naming the taken port, and leaves its store free', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, resolve));
    const taken = (blocker.address() as AddressInfo).port;
    const dir = tempDir('taken-port');
    try {
      const started = Date.now();
      const failed = startFleet(['start', '--data-dir', dir, '--collector-port', String(taken), '--query-port', '0']);
      expect(await Promise.race([failed.exited, sleep(30_000).then(() => 'still running after 30 s')])).toBe(1);
      expect(Date.now() - started).toBeLessThan(30_000);
      // fleet start binds its collector to 127.0.0.1 unless told otherwise (it has no auth by default)
      expect(failed.output()).toMatch(new RegExp(`fleet: collector cannot listen on 127\\.0\\.0\\.1:${taken}: listen EADDRINUSE`));
      // its store lock and query port went with it
      const migrate = startFleet(['migrate', '--data-dir', dir]);
      expect(await migrate.exited).toBe(0);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  }, 60_000);
});

describe('while fleet start owns its store', () => {
  const ownedDir = tempDir('owned');
  const rules = path.join(tempDir('rules'), 'alerts.json');
  let owner: Child;
  let ownerQuery: string;
  let ownerOtlp: string;
  let ownerClient: ClickHouseClient;

  beforeAll(async () => {
    writeFileSync(rules, JSON.stringify({ evaluationInterval: '1s', rules: [{ kind: 'unpriced_model', name: 'unpriced' }] }));
    owner = startFleet(
      ['start', '--data-dir', ownedDir, '--collector-port', '0', '--query-port', '0', '--query-write-token', WRITE_TOKEN, '--alert-rules', rules, '--decision-wait-ms', '100'],
      { FLEET_KAFKA_BROKERS: 'kafka.invalid:9092' },
    );
    const m = await owner.waitFor(/OTLP\/HTTP (http:\/\/\S+?)\/v1\/traces · query (http:\/\/[\d.]+:\d+) \(read-only, write mode on\)/);
    ownerOtlp = m[1]!;
    ownerQuery = m[2]!;
    // Counts as JSON numbers (the endpoint quotes 64-bit integers by default, as a server does).
    ownerClient = createClient({ url: ownerQuery, log: { level: ClickHouseLogLevel.OFF }, clickhouse_settings: { output_format_json_quote_64bit_integers: 0 } });
  }, 60_000);
  afterAll(async () => {
    await ownerClient?.close();
    await owner?.kill();
  });

  it('says FLEET_KAFKA_BROKERS does not apply, and runs the rules of --alert-rules', async () => {
    expect(owner.output()).toMatch(/kafka brokers are set \(kafka\.invalid:9092, FLEET_KAFKA_BROKERS or the config file\) but fleet start always uses its in-process queue and ignores them/);
    expect(owner.output()).toMatch(/alerts: evaluating 1 rule\(s\) every 1s/);
    await postTraces(`${ownerOtlp}/v1/traces`, unpricedAttempt('owned'));
    // the log sink of the rules file, in fleet start's own output
    await owner.waitFor(/alert FIRING unpriced \{.*model="no-such-model-x"/, 60_000);
  }, 90_000);

  it('lets report find it on its own query port, and tells alerts and migrate what to do', async () => {
    const report = startFleet(['report', 'cost-per-pass', '--data-dir', ownedDir, '--format', 'json']);
    expect(await report.exited).toBe(0);
    const cells = JSON.parse(report.output().slice(report.output().indexOf('['))) as { tenant: string; model: string; unpriced_attempts: number }[];
    expect(cells).toMatchObject([{ tenant: 'owned', model: 'no-such-model-x', unpriced_attempts: 1 }]);

    const refused = startFleet(['alerts', 'check', '--data-dir', ownedDir, '--alert-rules', rules]);
    expect(await refused.exited).toBe(1);
    expect(refused.output()).toMatch(/fleet: fleet alerts check: the embedded store \S+ is open in the running fleet start \(PID \d+, query endpoint http:\S+\) .*give fleet alerts check the same --query-write-token/);
    expect(refused.output()).not.toMatch(/Failed to create connection/);

    const check = startFleet(['alerts', 'check', '--data-dir', ownedDir, '--alert-rules', rules, '--query-write-token', WRITE_TOKEN]);
    expect(await check.exited).toBe(1); // exits 1 while anything fires
    expect(check.output()).toMatch(/^1 firing, 0 newly fired, 0 resolved$/m); // fleet start's service fired it; the table says so
    expect(check.output()).toMatch(/FIRING unpriced \{.*"model":"no-such-model-x"/);

    const migrate = startFleet(['migrate', '--data-dir', ownedDir]);
    expect(await migrate.exited).toBe(1);
    expect(migrate.output()).toMatch(/fleet: the embedded store \S+ is open in the running fleet start \(PID \d+, query endpoint http:\S+\); chDB lets one process open it/);
  }, 120_000);

  it('serves as the ClickHouse server of another fleet start, which has no query endpoint of its own', async () => {
    const idlePort = await freePort();
    const server = startFleet([
      'start',
      '--clickhouse-url', ownerQuery,
      '--clickhouse-user', 'perpass_writer',
      '--clickhouse-password', WRITE_TOKEN,
      '--collector-port', '0',
      '--query-port', String(idlePort),
    ]);
    try {
      const [, otlp] = await server.waitFor(/perpass running: OTLP\/HTTP (http:\/\/\S+?)\/v1\/traces · query on the ClickHouse server/, 60_000);
      expect(server.output()).toMatch(/no query endpoint: the store is a ClickHouse server, query it directly \(http:\/\/127\.0\.0\.1:\d+\/\)/);
      expect(server.output()).not.toContain(WRITE_TOKEN);
      expect(await answersPing(`http://127.0.0.1:${idlePort}`)).toBe(false);

      const agent = startNode('test/support/send-fleet.ts', [otlp!, 'server-mode', '2', '7']);
      await agent.waitFor(/sent \d+/, 120_000);
      const plan = fleetPlan('server-mode', 2, 7);
      const count = async () =>
        (await (await ownerClient.query({ query: "SELECT count() AS n FROM fleet.attempts FINAL WHERE tenant = 'server-mode'", format: 'JSONEachRow' })).json<{ n: number }>())[0]!.n;
      for (const deadline = Date.now() + 60_000; Date.now() < deadline && (await count()) < plan.length; ) await sleep(250);
      const got = await (
        await ownerClient.query({
          query: "SELECT tenant, model, spec_tier, canary, variant, attempts, passes, unpriced_attempts, cost_usd, cost_per_pass FROM fleet.v_cost_per_pass WHERE tenant = 'server-mode'",
          format: 'JSONEachRow',
          clickhouse_settings: { output_format_json_quote_decimals: 1 },
        })
      ).json<{ model: string; spec_tier: string }>();
      expect(got.sort(byCell)).toEqual(expectedCostPerPass(cards, plan).sort(byCell));
      expect(await server.kill('SIGTERM')).toBe(0);
    } finally {
      await server.kill();
    }
  }, 180_000);
});

describe('alerts inside the all-in-one process', () => {
  it('publishes the alerts of a kafka sink to the in-process queue', async () => {
    const rulesFile = path.join(tempDir('kafka-sink'), 'alerts.json');
    writeFileSync(rulesFile, JSON.stringify({ evaluationInterval: '1s', sinks: [{ type: 'kafka', name: 'bus', topic: 'perpass_alerts' }], rules: [{ kind: 'unpriced_model', name: 'unpriced' }] }));
    const config = resolveConfig({ dataDir: tempDir('in-process'), collectorPort: '0', grpcPort: '0', queryPort: '0', alertRules: rulesFile, decisionWaitMs: '100' }, {});
    const running = await startAllInOne(config, () => {});
    try {
      const received: ConsumedMessage[] = [];
      const alerts = running.bus.subscriber('perpass_alerts');
      await alerts.start({
        onBatch: async (batch) => {
          received.push(...batch.messages);
          await alerts.commit([{ topic: batch.topic, partition: batch.partition, offset: String(BigInt(batch.messages.at(-1)!.offset) + 1n) }]);
        },
        onAssign: () => {},
      });
      await postTraces(running.collector.tracesUrl, unpricedAttempt('in-process'));
      for (const deadline = Date.now() + 60_000; Date.now() < deadline && received.length === 0; ) await sleep(100);
      await alerts.stop();
      expect(received).toHaveLength(1);
      const [message] = received;
      expect(message!.headers).toMatchObject({ 'content-type': 'application/json', 'perpass-alert-event': 'firing' });
      expect(JSON.parse(Buffer.from(message!.value).toString('utf8'))).toMatchObject({
        event: 'firing',
        rule: 'unpriced',
        kind: 'unpriced_model',
        labels: { tenant: 'in-process', provider: 'acme', model: 'no-such-model-x' },
      });
    } finally {
      await running.close();
    }
  }, 120_000);
});
