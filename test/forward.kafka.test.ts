/**
 * Forwarding in the Kafka mode: a `fleet consumer --forward-otlp` process
 * reads a fleet from the shared broker, decides, writes to the store (a
 * `fleet start` in write mode owns it) and forwards to an OTLP/HTTP backend
 * exactly the traces whose attempts it kept, each with all its planned
 * spans and the decision the store recorded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaPublisher } from '../bus/kafka.ts';
import { planFleet, prng } from '../demo/plan.ts';
import { flattenSpans } from '../otlp/codec.ts';
import { plannedSpanIds } from './support/ground-truth.ts';
import { createTopic, kafkaBrokers, uniqueName } from './support/kafka.ts';
import { Backend } from './support/otlp-backend.ts';
import { fleetMessages } from './support/otlp-fleet.ts';
import { startFleet, type Child } from './support/processes.ts';
import { endpointRows } from './support/readings.ts';
import { tempDir } from './support/store.ts';

const WRITE_TOKEN = 'forward-write-token-0123456789';
let owner: Child;
let consumer: Child;
let queryUrl: string;
const backend = new Backend();

const sql = <T>(statement: string) => endpointRows<T>(queryUrl, statement);

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  owner = startFleet(['start', '--data-dir', tempDir('forward-kafka'), '--collector-port', '0', '--query-port', '0', '--query-write-token', WRITE_TOKEN]);
  queryUrl = (await owner.waitFor(/query (http:\/\/[\d.]+:\d+)/))[1]!;
}, 180_000);

afterAll(async () => {
  await consumer?.kill();
  await owner?.kill();
  await backend.close();
});

describe('fleet consumer --forward-otlp', () => {
  it('forwards exactly the kept traces, whole, with the stored decision, as OTLP/JSON', async () => {
    const backendUrl = await backend.listen();
    const brokers = kafkaBrokers();
    const topic = await createTopic('forward', 3);
    const plan = planFleet({ specsPerCell: 3, seed: 5, startNs: BigInt(Date.now()) * 1_000_000n, spacingMs: 1, specPrefix: 'fwd-kafka', tenant: 'kafka-team' });
    const publisher = new KafkaPublisher({ brokers, topic });
    try {
      await publisher.publish(topic, fleetMessages(plan, prng(11)));
    } finally {
      await publisher.close();
    }
    consumer = startFleet([
      'consumer',
      '--kafka-brokers', brokers.join(','),
      '--topic', topic,
      '--dead-letter-topic', `${topic}_dlq`,
      '--group-id', uniqueName('forward'),
      '--clickhouse-url', queryUrl,
      '--clickhouse-user', 'perpass_writer',
      '--clickhouse-password', WRITE_TOKEN,
      '--metrics-port', '0',
      '--decision-wait-ms', '200',
      '--sampling-pass-rate', '0.3',
      '--forward-otlp', `${backendUrl}/v1/traces`,
      '--forward-protocol', 'http/json',
      '--forward-header', 'x-api-key=team-key',
    ]);
    await consumer.waitFor(/forwarding kept traces over OTLP\/HTTP \(http\/json, gzip\) to http:\/\/127\.0\.0\.1:\d+\/v1\/traces/);

    const attempts = () => sql<{ trace_id: string; sampled: boolean; outcome: string }>(`SELECT trace_id, sampled, outcome FROM fleet.attempts FINAL WHERE startsWith(spec_id, 'fwd-kafka')`);
    await until('every attempt stored', async () => (await attempts()).length === plan.length);
    const stored = await attempts();
    const kept = new Set(stored.filter((a) => a.sampled).map((a) => a.trace_id));
    expect(kept.size).toBeGreaterThan(0);
    expect(kept.size).toBeLessThan(plan.length);
    const keptSpans = plan.filter((a) => kept.has(a.traceId)).reduce((n, a) => n + plannedSpanIds(a).length, 0);
    await until('every kept span forwarded', async () => backend.spanIds().length >= keptSpans, 60_000);
    // a moment more: nothing else may follow
    await new Promise((r) => setTimeout(r, 1000));

    const forwarded = new Map<string, { spanIds: string[]; reasons: Set<unknown> }>();
    for (const r of backend.received) {
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['x-api-key']).toBe('team-key');
      for (const s of flattenSpans(r.request)) {
        const t = forwarded.get(s.traceId) ?? { spanIds: [], reasons: new Set() };
        t.spanIds.push(s.spanId);
        t.reasons.add(s.attributes['fleet.sampling.reason']);
        forwarded.set(s.traceId, t);
        expect(s.resource['fleet.tenant']).toBe('kafka-team');
      }
    }
    expect(new Set(forwarded.keys())).toEqual(kept);
    const reasons = new Map(
      (await sql<{ trace_id: string; reason: string }>(`SELECT trace_id, any(sample_reason) AS reason FROM fleet.spans FINAL WHERE tenant = 'kafka-team' GROUP BY trace_id`)).map((r) => [r.trace_id, r.reason]),
    );
    for (const a of plan.filter((p) => kept.has(p.traceId))) {
      const f = forwarded.get(a.traceId)!;
      expect(f.spanIds.sort(), `spans of ${a.traceId}`).toEqual(plannedSpanIds(a).sort());
      expect([...f.reasons]).toEqual([reasons.get(a.traceId)]);
    }
  }, 300_000);
});
