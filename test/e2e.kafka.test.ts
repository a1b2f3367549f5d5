/**
 * End to end, as deployed: agents (separate processes, real OTel SDK and
 * OTLP exporter) → `fleet collector` → Kafka (3 partitions, a broker of this
 * file's own) → `fleet consumer` × 2 in one group → the store, owned by a
 * `fleet start` process whose ClickHouse-compatible endpoint runs in its
 * token-protected write mode (chDB binds one data directory to one process).
 * Every scenario sends its own tenant's fleet and then requires
 * v_cost_per_pass, v_spec_outcomes and v_routing to equal the independent
 * computation exactly — with faults injected along the way, each shown to
 * have happened (from /metrics of collector and consumers, and from what
 * the topics hold), not merely attempted. The durability scenarios (a 200
 * only after acks=all; collector and consumer SIGKILLed under load; no
 * commit before the rows are in ClickHouse) send with a client that re-sends
 * exactly what was not acknowledged.
 */
import { readFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import kafkajs from 'kafkajs';
import { KafkaPublisher } from '../bus/kafka.ts';
import { prng, type PlannedAttempt } from '../demo/plan.ts';
import { decodeTraceRequest, flattenSpans } from '../otlp/codec.ts';
import { openStore, type Store } from '../storage/store.ts';
import { metricValue } from './collector.fixtures.ts';
import { expectedCostPerPass, expectedRouting, expectedSpecOutcomes, loadCards, plannedSpanIds } from './support/ground-truth.ts';
import { AckingClient, requestsOf } from './support/acking-client.ts';
import { fleetPlan } from './support/fleet-plan.ts';
import { privateBroker, uniqueName, type TestBroker } from './support/kafka.ts';
import { readTopicToEnd, topicOffsets } from './support/topic-reader.ts';
import { startFleet, startNode, type Child } from './support/processes.ts';
import { tempDir } from './support/store.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WRITE_TOKEN = 'e2e-write-token-0123456789';
const TOPIC = 'otlp_spans_e2e';
const DLQ = 'otlp_spans_e2e_dlq';
const GROUP = uniqueName('e2e-consumers');
const cards = loadCards();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let broker: TestBroker;
let owner: Child;
let collector: Child;
/** A `fleet consumer` process and its /metrics. */
interface Member {
  child: Child;
  metricsUrl: string;
}
const consumers = new Map<string, Member>();
let queryUrl: string;
let collectorUrl: string;
let reader: Store;

/** Starts consumer `name` and resolves once it has joined the group. */
async function consumer(name: string, o: { topic?: string; group?: string; clickhouseUrl?: string } = {}): Promise<Member> {
  const child = startFleet(
    [
      'consumer',
      '--kafka-brokers', broker.brokers.join(','),
      '--topic', o.topic ?? TOPIC,
      '--dead-letter-topic', o.topic ? `${o.topic}-dlq` : DLQ,
      '--topic-partitions', '3',
      '--group-id', o.group ?? GROUP,
      '--clickhouse-url', o.clickhouseUrl ?? queryUrl,
      '--clickhouse-user', 'perpass_writer',
      '--clickhouse-password', WRITE_TOKEN,
      '--metrics-port', '0',
      '--decision-wait-ms', '300',
      '--trace-timeout-ms', '5000',
    ],
  );
  const member: Member = { child, metricsUrl: '' };
  consumers.set(name, member); // before waiting, so afterAll stops it whatever happens
  const [, port] = await child.waitFor(/consumer: group .*metrics :(\d+)\/metrics/);
  member.metricsUrl = `http://127.0.0.1:${port}/metrics`;
  return member;
}

const member = (name: string): Member => {
  const m = consumers.get(name);
  if (!m) throw new Error(`no consumer ${name} is running`);
  return m;
};

beforeAll(async () => {
  broker = await privateBroker('e2e');
  owner = startFleet(['start', '--data-dir', tempDir('e2e-store'), '--collector-port', '0', '--query-port', '0', '--query-write-token', WRITE_TOKEN]);
  queryUrl = (await owner.waitFor(/query (http:\/\/[\d.]+:\d+)/))[1]!;
  collector = startFleet(['collector', '--kafka-brokers', broker.brokers.join(','), '--topic', TOPIC, '--dead-letter-topic', DLQ, '--topic-partitions', '3', '--collector-port', '0']);
  collectorUrl = (await collector.waitFor(/collector: (http:\/\/\S+?)\/v1\/traces/))[1]!;
  await Promise.all([consumer('c1'), consumer('c2')]);
  reader = openStore({ url: queryUrl, database: 'fleet' });
}, 240_000);

afterAll(async () => {
  await reader?.close();
  await Promise.all([...consumers.values()].map((c) => c.child.kill()));
  await collector?.kill();
  await owner?.kill();
  await broker?.destroy();
}, 120_000);

/** Starts sending a tenant's fleet from a separate agent process; `sent` resolves with its plan once every span is exported. */
function startSending(tenant: string, specsPerCell: number, seed: number, endpoint = collectorUrl, paceMs = 0): { agent: Child; sent: Promise<PlannedAttempt[]> } {
  // the exporter's retries (honouring Retry-After) must outlast a broker restart: give it 30 s, not the default 10
  const agent = startNode('test/support/send-fleet.ts', [endpoint, tenant, String(specsPerCell), String(seed), String(paceMs)], { OTEL_EXPORTER_OTLP_TIMEOUT: '30000' });
  return { agent, sent: agent.waitFor(/sent \d+/, 300_000).then(() => fleetPlan(tenant, specsPerCell, seed)) };
}

const send = (...args: Parameters<typeof startSending>): Promise<PlannedAttempt[]> => startSending(...args).sent;

const stillSending = (agent: Child): boolean => agent.proc.exitCode === null && agent.proc.signalCode === null;

/** Spans the fleet's agent exports (once each, without retries). */
const plannedSpans = (plan: PlannedAttempt[]): number => plan.reduce((n, a) => n + plannedSpanIds(a).length, 0);

/** One /metrics scrape. A labelled counter has no series until first incremented, so `count` reads a missing one as 0. */
interface Scrape {
  value(series: string): number | undefined;
  count(series: string): number;
}

async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  const text = await res.text();
  return { value: (series) => metricValue(text, series), count: (series) => metricValue(text, series) ?? 0 };
}

const collectorMetrics = () => scrape(`${collectorUrl}/metrics`);

/** Bus messages a consumer has read (decoded or dead-lettered). */
const messagesRead = (m: Scrape): number =>
  m.count('fleet_consumer_messages_total{result="ok"}') + m.count('fleet_consumer_messages_total{result="dead_letter"}');

/** Waits until the group has committed every message of the topic, so counters read afterwards cover what came before and nothing else. */
async function caughtUp(): Promise<void> {
  await until('the group to commit the whole topic', async () => {
    const m = await scrape(member('c1').metricsUrl);
    return [0, 1, 2].every((p) => m.value(`fleet_consumer_lag_messages{topic="${TOPIC}",partition="${p}"}`) === 0);
  });
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
    // both members owned partitions: each read messages and wrote attempt rows
    for (const name of ['c1', 'c2']) {
      const m = await scrape(member(name).metricsUrl);
      expect(m.count('fleet_consumer_messages_total{result="ok"}'), name).toBeGreaterThan(0);
      expect(m.count('fleet_consumer_rows_written_total{table="attempts"}'), name).toBeGreaterThan(0);
    }
  }, 600_000);

  it('every OTLP export sent twice changes nothing', async () => {
    // an exporter retry that the first delivery already succeeded: a proxy posts every request twice
    const before = await collectorMetrics();
    const proxy = await duplicatingProxy(collectorUrl);
    try {
      const plan = await send('e2e-twice', 20, 2, proxy.url);
      await assertViewsExact('e2e-twice', plan);
      const after = await collectorMetrics();
      const delta = (series: string) => after.count(series) - before.count(series);
      expect(proxy.spans()).toBe(plannedSpans(plan));
      // the collector really took every request, and so every span, twice
      expect(delta('fleet_collector_requests_total{code="200"}')).toBe(2 * proxy.requests());
      expect(delta('fleet_collector_spans_received_total')).toBe(2 * proxy.spans());
      expect(delta('fleet_collector_spans_accepted_total')).toBe(2 * proxy.spans());
    } finally {
      proxy.server.close();
    }
  }, 300_000);

  it('a consumer killed with SIGKILL mid-batch and restarted changes nothing', async () => {
    const tenant = 'e2e-sigkill';
    await caughtUp();
    const published = (await collectorMetrics()).count('fleet_collector_messages_published_total');
    const c1Before = messagesRead(await scrape(member('c1').metricsUrl));
    const c2Before = messagesRead(await scrape(member('c2').metricsUrl));
    const { sent } = startSending(tenant, 20, 3, collectorUrl, 10);
    await until('50 attempts written', async () => (await attemptsOf(tenant)) > 50);
    // kill it while it holds spans it has not decided or rows it has not written: their messages are uncommitted
    const unfinished = (m: Scrape) => m.count('fleet_consumer_buffered_spans') + m.count('fleet_consumer_pending_rows');
    let dying!: Scrape;
    await until('c2 to hold undecided spans or unwritten rows', async () => unfinished((dying = await scrape(member('c2').metricsUrl))) > 0, 30_000);
    await member('c2').child.kill('SIGKILL');
    expect(unfinished(dying)).toBeGreaterThan(0);
    const restarted = await consumer('c2');
    await assertViewsExact(tenant, await sent);
    // What the killed member had read but not committed was delivered again: the members read more
    // messages than were produced (the killed one counted up to its last scrape; counts only grow).
    const produced = (await collectorMetrics()).count('fleet_collector_messages_published_total') - published;
    let read = 0;
    await until(`more messages read than the ${produced} produced`, async () => {
      read = messagesRead(await scrape(member('c1').metricsUrl)) - c1Before + (messagesRead(dying) - c2Before) + messagesRead(await scrape(restarted.metricsUrl));
      return read > produced;
    }, 30_000);
    expect(read).toBeGreaterThan(produced);
  }, 300_000);

  it('a consumer joining and leaving during the run (rebalances) changes nothing', async () => {
    const tenant = 'e2e-rebalance';
    // paced so that the run outlasts c3's start, the rebalance it causes and its first rows
    const { agent, sent } = startSending(tenant, 20, 4, collectorUrl, 25);
    await until('the first attempts written', async () => (await attemptsOf(tenant)) > 0);
    const c3 = await consumer('c3');
    // it took partitions over: it wrote attempt rows of its own
    await until('c3 to write attempts', async () => (await scrape(c3.metricsUrl)).count('fleet_consumer_rows_written_total{table="attempts"}') > 0);
    expect(stillSending(agent)).toBe(true); // it leaves while traffic still flows
    await c3.child.kill('SIGTERM');
    consumers.delete('c3');
    await assertViewsExact(tenant, await sent);
  }, 300_000);

  it('the broker stopped and restarted while traffic flows: 503s, exporter retries, nothing lost', async () => {
    const tenant = 'e2e-outage';
    const before = await collectorMetrics();
    const refused = 'fleet_collector_requests_total{code="503"}';
    const { agent, sent } = startSending(tenant, 20, 5, collectorUrl, 10);
    await until('30 attempts written', async () => (await attemptsOf(tenant)) > 30);
    const down = Date.now();
    await broker.stop();
    const during = await fetch(`${collectorUrl}/readyz`);
    expect(during.status).toBe(503);
    // The agent's exports must be refused while the broker is down: the export in flight when it died
    // fails within the collector's 5 s publish bound, later ones at once. The restart (a JVM starting)
    // takes seconds itself, so it begins at the first refusal or after 2 s, whichever comes first; the
    // refusals are asserted below. Not longer: past ~10 s down, the consumers' kafkajs gives up and
    // rejoins under new member ids, and the group then waits a session timeout (30 s) for the old ones.
    const restartAt = Date.now() + 2_000;
    while ((await collectorMetrics()).count(refused) === before.count(refused) && Date.now() < restartAt) await sleep(200);
    expect(stillSending(agent)).toBe(true);
    await broker.start();
    const outageMs = Date.now() - down;
    const plan = await sent;
    await assertViewsExact(tenant, plan);
    const after = await collectorMetrics();
    const delta = (series: string) => after.count(series) - before.count(series);
    expect(delta(refused), `exports refused during the ${outageMs} ms outage`).toBeGreaterThan(0);
    expect(delta('fleet_collector_requests_total{code="500"}')).toBe(0); // a 500 is not retried: its spans would be lost
    const rejected = delta('fleet_collector_spans_rejected_total{reason="unavailable"}');
    expect(rejected).toBeGreaterThan(0);
    // the exporter sent every refused span again: beyond the fleet's own spans, the collector received at least as many
    expect(delta('fleet_collector_spans_received_total') - plannedSpans(plan)).toBeGreaterThanOrEqual(rejected);
    expect(delta('fleet_collector_spans_accepted_total')).toBeGreaterThanOrEqual(plannedSpans(plan));
  }, 300_000);

  it('1 % undecodable messages injected into the topic while traffic flows reach the DLQ, nothing else is affected', async () => {
    const tenant = 'e2e-poison';
    const planned = fleetPlan(tenant, 20, 6);
    const poison = Array.from({ length: Math.ceil(planned.length / 100) }, (_, i) => ({ key: `poison-${i}`, value: Buffer.from([0x0a, 0xff, 0xff, i & 0xff]) }));
    const injector = new KafkaPublisher({ brokers: broker.brokers, logLevel: 'nothing' });
    const accepted = 'fleet_collector_spans_accepted_total';
    const acceptedBefore = (await collectorMetrics()).count(accepted);
    // the SDK picks its own trace ids: the fleet's messages are those the topic receives from here on, but the poison
    const firstOffsets = await topicOffsets(broker.brokers, TOPIC);
    const { agent, sent } = startSending(tenant, 20, 6, collectorUrl, 10);
    try {
      // spread over the run: the i-th once the collector has published the (i+1)-th share of the fleet's spans, the last with two shares to come
      for (const [i, p] of poison.entries()) {
        const share = Math.ceil(((i + 1) * plannedSpans(planned)) / (poison.length + 2));
        await until(`${share} spans published`, async () => (await collectorMetrics()).count(accepted) - acceptedBefore >= share);
        await injector.publish(TOPIC, [p]);
      }
      expect(stillSending(agent)).toBe(true);
    } finally {
      await injector.close();
    }
    const plan = await sent;
    await assertViewsExact(tenant, plan);

    // each landed between messages of the fleet on its partition: injected into flowing traffic
    const isPoison = (m: { key: string }) => m.key.startsWith('poison-');
    const onTopic = await readTopicToEnd(broker.brokers, TOPIC, (m) => BigInt(m.offset) >= (firstOffsets.get(m.partition)?.end ?? 0n));
    const injected = onTopic.filter(isPoison);
    expect(injected.map((m) => m.key).sort()).toEqual(poison.map((p) => p.key).sort());
    for (const m of injected) {
      const fleet = onTopic.filter((o) => o.partition === m.partition && !isPoison(o)).map((o) => BigInt(o.offset));
      expect(fleet.some((o) => o < BigInt(m.offset)) && fleet.some((o) => o > BigInt(m.offset)), `${m.key} at ${m.partition}/${m.offset}`).toBe(true);
    }
    // the DLQ holds exactly these messages, once each, naming where each came from and why
    const dead = await readTopicToEnd(broker.brokers, DLQ);
    const letter = (key: string, source: string | undefined, value: Uint8Array) => ({ key, source, value: Buffer.from(value).toString('hex') });
    const byKey = (x: { key: string }, y: { key: string }) => (x.key < y.key ? -1 : 1);
    expect(dead.map((m) => letter(m.key, m.headers?.['perpass-source'], m.value)).sort(byKey)).toEqual(
      injected.map((m) => letter(m.key, `${TOPIC}/${m.partition}/${m.offset}`, m.value)).sort(byKey),
    );
    for (const m of dead) expect(m.headers?.['perpass-error']).toMatch(/invalid OTLP protobuf/);
  }, 300_000);
});

describe('end to end through Kafka: nothing acknowledged is lost', () => {
  it('answers 200 only once the broker acknowledged: with the broker frozen (SIGSTOP) a request gets 503, never 200; thawed, 200 and the record is on the topic', async () => {
    const tenant = 'e2e-acks';
    const topic = uniqueName('e2e-acks');
    const c = startFleet(['collector', '--kafka-brokers', broker.brokers.join(','), '--topic', topic, '--dead-letter-topic', `${topic}-dlq`, '--topic-partitions', '1', '--collector-port', '0']);
    const brokerPid = Number(readFileSync(path.join(process.env.PERPASS_KAFKA_DIR ?? path.join(ROOT, '.kafka'), broker.instance, 'pid'), 'utf8').trim());
    const [body] = requestsOf(fleetPlan(tenant, 1, 9).slice(0, 5), tenant);
    try {
      const url = (await c.waitFor(/collector: (http:\/\/\S+?\/v1\/traces)/))[1]!;
      const post = () => fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: body!, signal: AbortSignal.timeout(30_000) });
      expect((await post()).status).toBe(200); // connected, topic ready
      const before = [...(await topicOffsets(broker.brokers, topic)).values()][0]!.end;
      // The broker takes the connection's bytes but answers nothing: acks=0 would answer 200 now.
      process.kill(brokerPid, 'SIGSTOP');
      let refused: Response;
      try {
        refused = await post();
      } finally {
        process.kill(brokerPid, 'SIGCONT');
      }
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
      let ok = await post();
      for (let i = 0; ok.status !== 200 && i < 30; i++) {
        await sleep(500);
        ok = await post();
      }
      expect(ok.status).toBe(200);
      // the 200 came after the record was on the broker: it is readable at once
      expect([...(await topicOffsets(broker.brokers, topic)).values()][0]!.end).toBeGreaterThan(before);
    } finally {
      await c.kill();
    }
  }, 120_000);

  it('the collector SIGKILLed three times under load, a consumer SIGKILLed while ClickHouse refuses its inserts: nothing committed before it is written, every acknowledged attempt exact', async () => {
    const tenant = 'e2e-durable';
    const topic = uniqueName('e2e-durable');
    const group = uniqueName('e2e-durable');
    const rand = prng(8);
    // paced to flow through every phase below (~170 requests, ~15 s)
    const plan = fleetPlan(tenant, 40, 8);
    const client = new AckingClient(requestsOf(plan, tenant), 2, 150);
    const proxy = await pausableProxy(queryUrl);
    let col: Child | undefined;
    const startCollector = async () => {
      col = startFleet(['collector', '--kafka-brokers', broker.brokers.join(','), '--topic', topic, '--dead-letter-topic', `${topic}-dlq`, '--topic-partitions', '3', '--collector-port', '0']);
      client.url = (await col.waitFor(/collector: (http:\/\/\S+?\/v1\/traces)/))[1]!;
    };
    const killCollector = async () => {
      await sleep(500 + Math.floor(rand() * 1500));
      client.url = undefined;
      await col!.kill('SIGKILL');
      await startCollector();
    };
    try {
      await startCollector();
      const d1 = await consumer('d1', { topic, group, clickhouseUrl: proxy.url });
      await killCollector();
      await until('d1 to write attempts', async () => (await scrape(d1.metricsUrl)).count('fleet_consumer_rows_written_total{table="attempts"}') > 0);

      // ClickHouse refuses the consumer's inserts from now on: what it reads may not be committed
      proxy.pause();
      await sleep(2500); // commits of rows written before the pause land
      const before = await committedOffsets(group, topic);
      const read = messagesRead(await scrape(d1.metricsUrl));
      await killCollector();
      await until('d1 to read more while ClickHouse refuses', async () => messagesRead(await scrape(d1.metricsUrl)) > read + 10, 60_000);
      await sleep(2500); // more than the commit interval
      const dying = await scrape(d1.metricsUrl);
      expect(dying.count('fleet_consumer_insert_errors_total')).toBeGreaterThan(0);
      expect(await committedOffsets(group, topic)).toEqual(before);
      expect(proxy.refused()).toBeGreaterThan(0);
      await d1.child.kill('SIGKILL');
      consumers.delete('d1');
      proxy.resume();
      await consumer('d1', { topic, group, clickhouseUrl: proxy.url });
      await killCollector();
      await client.done;
      expect(client.acked.size).toBe(Math.ceil(plan.length / 5));
      await assertViewsExact(tenant, plan);
    } finally {
      client.url = undefined;
      await col?.kill();
      proxy.server.close();
    }
  }, 300_000);
});

/** The group's committed offset per partition of `topic`. */
async function committedOffsets(groupId: string, topic: string): Promise<Record<number, string>> {
  const admin = new kafkajs.Kafka({ brokers: broker.brokers, logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return Object.fromEntries((t?.partitions ?? []).map((p) => [p.partition, p.offset]));
  } finally {
    await admin.disconnect();
  }
}

/** An HTTP proxy to `target` that, while paused, answers every request 503 (ClickHouse unavailable to whoever uses it). */
async function pausableProxy(target: string): Promise<{ server: Server; url: string; pause(): void; resume(): void; refused(): number }> {
  const to = new URL(target);
  let paused = false;
  let refused = 0;
  const server = createServer((req, res) => {
    if (paused) {
      refused++;
      req.resume();
      res.writeHead(503, { 'content-type': 'text/plain' }).end('refused by the test while paused');
      return;
    }
    const up = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', (err) => (res.headersSent ? res.destroy() : res.writeHead(502).end(String(err))));
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    pause: () => void (paused = true),
    resume: () => void (paused = false),
    refused: () => refused,
  };
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * An HTTP proxy that forwards every request to `target` twice and answers with
 * the second response; it counts the requests and the spans in them.
 */
async function duplicatingProxy(target: string): Promise<{ server: Server; url: string; requests: () => number; spans: () => number }> {
  let requests = 0;
  let spans = 0;
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
        if (!headers['content-type'].includes('protobuf')) throw new Error(`the proxy counts spans of OTLP protobuf only, got ${headers['content-type']}`);
        spans += [...flattenSpans(decodeTraceRequest(headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body))].length;
        requests++;
        await forward(req.url ?? '/', headers, body);
        const second = await forward(req.url ?? '/', headers, body);
        res.writeHead(second.status, { 'content-type': second.headers['content-type'] ?? 'application/x-protobuf' }).end(second.body);
      } catch (err) {
        res.writeHead(502).end(String(err));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests, spans: () => spans };
}
