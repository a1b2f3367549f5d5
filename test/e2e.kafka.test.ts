/**
 * End to end, as deployed: agents (separate processes, real OTel SDK and
 * OTLP exporter) → `fleet collector` → Kafka (3 partitions, a broker of this
 * file's own) → `fleet consumer` × 2 in one group → the store, owned by a
 * `fleet start` process whose ClickHouse-compatible endpoint runs in its
 * token-protected write mode (chDB binds one data directory to one process).
 * Every scenario sends its own tenant's fleet and then requires
 * v_cost_per_pass, v_spec_outcomes and v_routing to equal the independent
 * computation exactly — with faults injected along the way.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaPublisher, KafkaSubscriber } from '../bus/kafka.ts';
import type { ConsumedMessage } from '../bus/types.ts';
import type { PlannedAttempt } from '../demo/plan.ts';
import { openStore, type Store } from '../storage/store.ts';
import { expectedCostPerPass, expectedRouting, expectedSpecOutcomes, loadCards } from './support/ground-truth.ts';
import { fleetPlan } from './support/fleet-plan.ts';
import { privateBroker, uniqueName, type TestBroker } from './support/kafka.ts';
import { startFleet, startNode, type Child } from './support/processes.ts';
import { tempDir } from './support/store.ts';

const WRITE_TOKEN = 'e2e-write-token-0123456789';
const TOPIC = 'otlp_spans_e2e';
const DLQ = 'otlp_spans_e2e_dlq';
const GROUP = uniqueName('e2e-consumers');
const cards = loadCards();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let broker: TestBroker;
let owner: Child;
let collector: Child;
const consumers = new Map<string, Child>();
let queryUrl: string;
let collectorUrl: string;
let reader: Store;

function consumer(name: string): Child {
  const c = startFleet(
    [
      'consumer',
      '--kafka-brokers', broker.brokers.join(','),
      '--topic', TOPIC,
      '--dead-letter-topic', DLQ,
      '--topic-partitions', '3',
      '--group-id', GROUP,
      '--clickhouse-url', queryUrl,
      '--clickhouse-user', 'perpass_writer',
      '--clickhouse-password', WRITE_TOKEN,
      '--metrics-port', '0',
      '--decision-wait-ms', '300',
      '--trace-timeout-ms', '5000',
    ],
  );
  consumers.set(name, c);
  return c;
}

beforeAll(async () => {
  broker = await privateBroker('e2e');
  owner = startFleet(['start', '--data-dir', tempDir('e2e-store'), '--collector-port', '0', '--query-port', '0', '--query-write-token', WRITE_TOKEN]);
  queryUrl = (await owner.waitFor(/query (http:\/\/[\d.]+:\d+)/))[1]!;
  collector = startFleet(['collector', '--kafka-brokers', broker.brokers.join(','), '--topic', TOPIC, '--dead-letter-topic', DLQ, '--topic-partitions', '3', '--collector-port', '0']);
  collectorUrl = (await collector.waitFor(/collector: (http:\/\/\S+?)\/v1\/traces/))[1]!;
  await Promise.all([consumer('c1').waitFor(/consumer: group/), consumer('c2').waitFor(/consumer: group/)]);
  reader = openStore({ url: queryUrl, database: 'fleet' });
}, 240_000);

afterAll(async () => {
  await reader?.close();
  await Promise.all([...consumers.values()].map((c) => c.kill()));
  await collector?.kill();
  await owner?.kill();
  await broker?.destroy();
}, 120_000);

/** Sends a tenant's fleet from a separate agent process; resolves with its plan once every span is exported. */
async function send(tenant: string, specsPerCell: number, seed: number, endpoint = collectorUrl, paceMs = 0): Promise<PlannedAttempt[]> {
  // the exporter's retries (honouring Retry-After) must outlast a broker restart: give it 30 s, not the default 10
  const agent = startNode('test/support/send-fleet.ts', [endpoint, tenant, String(specsPerCell), String(seed), String(paceMs)], { OTEL_EXPORTER_OTLP_TIMEOUT: '30000' });
  await agent.waitFor(/sent \d+/, 300_000);
  return fleetPlan(tenant, specsPerCell, seed);
}

async function attemptsOf(tenant: string): Promise<number> {
  const [r] = await reader.query<{ n: number }>('SELECT count() AS n FROM fleet.attempts FINAL WHERE tenant = {t:String}', { t: tenant });
  return r!.n;
}

async function waitForAttempts(tenant: string, n: number, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = 0;
  while ((seen = await attemptsOf(tenant)) < n) {
    if (Date.now() > deadline) throw new Error(`${tenant}: ${seen} of ${n} attempts after ${timeoutMs} ms`);
    await sleep(250);
  }
  expect(seen).toBe(n);
}

/** All three views of `tenant` against the hand computation over `plan`. */
async function assertViewsExact(tenant: string, plan: PlannedAttempt[]): Promise<void> {
  await waitForAttempts(tenant, plan.length);
  const window = "since = '2000-01-01 00:00:00', until = '2200-01-01 00:00:00'";
  const cells = await reader.query<Record<string, unknown>>(
    `SELECT tenant, model, spec_tier, canary, variant, attempts, passes, unpriced_attempts, cost_usd, cost_per_pass
     FROM fleet.v_cost_per_pass_window(${window}) WHERE tenant = {t:String} ORDER BY model, spec_tier, canary, variant`,
    { t: tenant },
  );
  const order = (x: { model: string; spec_tier: string; canary: string; variant: string }, y: typeof x) =>
    [x.model, x.spec_tier, x.canary, x.variant].join('|') < [y.model, y.spec_tier, y.canary, y.variant].join('|') ? -1 : 1;
  expect(cells).toEqual(expectedCostPerPass(cards, plan).sort(order));

  const specs = await reader.query<Record<string, unknown>>(
    `SELECT tenant, spec_id, attempts, passes, first_pass_attempt, cost_until_first_pass, total_cost_usd
     FROM fleet.v_spec_outcomes WHERE tenant = {t:String} ORDER BY spec_id`,
    { t: tenant },
  );
  expect(specs).toEqual(expectedSpecOutcomes(cards, plan).sort((x, y) => (x.spec_id < y.spec_id ? -1 : 1)));

  const routes = await reader.query<Record<string, unknown>>(
    `SELECT tenant, spec_tier, model, rank, attempts, passes, cost_per_pass
     FROM fleet.v_routing_window(${window}, min_pass_rate = 0.5, z = 1.959963984540054) WHERE tenant = {t:String} ORDER BY spec_tier, rank`,
    { t: tenant },
  );
  expect(routes).toEqual(expectedRouting(cards, plan, 0.5, 1.959963984540054).sort((x, y) => (x.spec_tier < y.spec_tier ? -1 : x.spec_tier > y.spec_tier ? 1 : x.rank - y.rank)));
}

describe('end to end through Kafka', () => {
  it('over 2,000 attempts, all three views equal the hand computation', async () => {
    const plan = await send('e2e-baseline', 100, 1);
    expect(plan.length).toBeGreaterThanOrEqual(2000);
    await assertViewsExact('e2e-baseline', plan);
  }, 600_000);

  it('every OTLP export sent twice changes nothing', async () => {
    // an exporter retry that the first delivery already succeeded: a proxy posts every request twice
    const proxy = await duplicatingProxy(collectorUrl);
    try {
      const plan = await send('e2e-twice', 20, 2, proxy.url);
      await assertViewsExact('e2e-twice', plan);
      expect(proxy.forwarded()).toBeGreaterThan(0);
    } finally {
      proxy.server.close();
    }
  }, 300_000);

  it('a consumer killed with SIGKILL mid-batch and restarted changes nothing', async () => {
    const tenant = 'e2e-sigkill';
    const sending = send(tenant, 20, 3, collectorUrl, 10);
    await until(async () => (await attemptsOf(tenant)) > 50);
    await consumers.get('c2')!.kill('SIGKILL');
    await consumer('c2').waitFor(/consumer: group/);
    await assertViewsExact(tenant, await sending);
  }, 300_000);

  it('a consumer joining and leaving during the run (rebalances) changes nothing', async () => {
    const tenant = 'e2e-rebalance';
    const sending = send(tenant, 20, 4, collectorUrl, 10);
    await until(async () => (await attemptsOf(tenant)) > 30);
    await consumer('c3').waitFor(/consumer: group/);
    await until(async () => (await attemptsOf(tenant)) > 200);
    await consumers.get('c3')!.kill('SIGTERM');
    consumers.delete('c3');
    await assertViewsExact(tenant, await sending);
  }, 300_000);

  it('the broker stopped and restarted while traffic flows: 503s, exporter retries, nothing lost', async () => {
    const tenant = 'e2e-outage';
    const sending = send(tenant, 20, 5, collectorUrl, 10);
    await until(async () => (await attemptsOf(tenant)) > 30);
    await broker.stop();
    const during = await fetch(`${collectorUrl}/readyz`);
    expect(during.status).toBe(503);
    await sleep(1_000);
    await broker.start();
    await assertViewsExact(tenant, await sending);
  }, 300_000);

  it('1 % undecodable messages injected into the topic reach the DLQ, nothing else is affected', async () => {
    const tenant = 'e2e-poison';
    const injector = new KafkaPublisher({ brokers: broker.brokers, logLevel: 'nothing' });
    const sending = send(tenant, 20, 6, collectorUrl, 5);
    const plan = await sending;
    const poison = Array.from({ length: Math.ceil(plan.length / 100) }, (_, i) => ({ key: `poison-${i}`, value: Buffer.from([0x0a, 0xff, 0xff, i & 0xff]) }));
    for (const p of poison) await injector.publish(TOPIC, [p]);
    await injector.close();
    await assertViewsExact(tenant, plan);
    const dead = await readTopic(DLQ, (m) => m.key.startsWith('poison-'), poison.length);
    expect(new Set(dead.map((m) => m.key))).toEqual(new Set(poison.map((p) => p.key)));
    for (const m of dead) expect(m.headers?.['perpass-error']).toMatch(/invalid OTLP protobuf/);
  }, 300_000);
});

async function until(fn: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(200);
  }
}

/** Reads `topic` from the start until `count` matching messages were seen. */
async function readTopic(topic: string, match: (m: ConsumedMessage) => boolean, count: number): Promise<ConsumedMessage[]> {
  const seen: ConsumedMessage[] = [];
  const sub = new KafkaSubscriber({ brokers: broker.brokers, groupId: uniqueName('dlq-reader'), topic, logLevel: 'nothing' });
  await sub.start({ onAssign: () => {}, onBatch: async (b) => void seen.push(...b.messages.filter(match)) });
  try {
    await until(async () => new Set(seen.map((m) => m.key)).size >= count, 60_000);
  } finally {
    await sub.stop();
  }
  return seen;
}

/** An HTTP proxy that forwards every request to `target` twice and answers with the second response. */
async function duplicatingProxy(target: string): Promise<{ server: Server; url: string; forwarded: () => number }> {
  let forwarded = 0;
  const forward = (path: string, headers: Record<string, string>, body: Buffer) =>
    new Promise<{ status: number; headers: Record<string, string>; body: Buffer }>((resolve, reject) => {
      const req = request(`${target}${path}`, { method: 'POST', headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 500, headers: res.headers as Record<string, string>, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end(body);
    });
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const headers = { 'content-type': req.headers['content-type'] ?? '', ...(req.headers['content-encoding'] && { 'content-encoding': req.headers['content-encoding'] }) };
      try {
        await forward(req.url ?? '/', headers, body);
        const second = await forward(req.url ?? '/', headers, body);
        forwarded++;
        res.writeHead(second.status, { 'content-type': second.headers['content-type'] ?? 'application/x-protobuf' }).end(second.body);
      } catch (err) {
        res.writeHead(502).end(String(err));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, forwarded: () => forwarded };
}
