/**
 * The consumer pipeline on the in-process queue and real chDB: a generated
 * fleet split across messages and shuffled must give exactly the hand
 * computation, however often it is delivered and wherever a consumer dies.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBus } from '../bus/memory.ts';
import type { BusMessage } from '../bus/types.ts';
import { ConsumerPipeline } from '../consumers/pipeline.ts';
import { planFleet, prng, type PlannedAttempt } from '../demo/plan.ts';
import { loadDefaultCatalog } from '../pricing/catalog.ts';
import type { Store } from '../storage/store.ts';
import { attemptCostAtto, expectedCostPerPass, loadCards } from './support/ground-truth.ts';
import { fleetMessages } from './support/otlp-fleet.ts';
import { freshStore } from './support/store.ts';

const TOPIC = 'otlp_spans';
const catalog = loadDefaultCatalog();
const cards = loadCards();
const plan = planFleet({ specsPerCell: 25, seed: 7, startNs: (BigInt(Date.now()) - 86_400_000n) * 1_000_000n, spacingMs: 50 });

function pipeline(bus: MemoryBus, store: Store, settleMs?: number) {
  return new ConsumerPipeline({
    ...(settleMs !== undefined && { settleMs }),
    topic: TOPIC,
    store,
    subscriber: bus.subscriber(TOPIC),
    catalog,
    deadLetter: { publisher: bus.publisher(), topic: 'otlp_spans_dlq' },
    decisionWaitMs: 0,
    // timers never fire on their own: the test drives decisions, writes and commits
    tickMs: 3_600_000,
    commitIntervalMs: 3_600_000,
    log: () => {},
  });
}

async function publish(bus: MemoryBus, messages: BusMessage[]) {
  for (let i = 0; i < messages.length; i += 100) await bus.publisher().publish(TOPIC, messages.slice(i, i + 100));
}

async function assertExact(store: Store, attempts: PlannedAttempt[]) {
  const rows = await store.query<Record<string, unknown>>(
    `SELECT tenant, model, spec_tier, canary, variant, attempts, passes, unpriced_attempts, cost_usd, cost_per_pass FROM ${store.database}.v_cost_per_pass_window(since = '2000-01-01 00:00:00', until = '2200-01-01 00:00:00') ORDER BY tenant, model, spec_tier, canary, variant`,
  );
  const expected = expectedCostPerPass(cards, attempts).sort((a, b) =>
    [a.tenant, a.model, a.spec_tier, a.canary, a.variant].join('|') < [b.tenant, b.model, b.spec_tier, b.canary, b.variant].join('|') ? -1 : 1,
  );
  expect(rows).toEqual(expected);
  const [counts] = await store.query<{ attempts: number; calls: number }>(
    `SELECT (SELECT count() FROM ${store.database}.attempts FINAL) AS attempts, (SELECT count() FROM ${store.database}.llm_calls FINAL) AS calls`,
  );
  expect(counts).toEqual({ attempts: attempts.length, calls: attempts.reduce((n, a) => n + a.calls.length, 0) });
}

describe('consumer pipeline on the in-process queue', () => {
  let store: Store;
  beforeAll(async () => {
    store = await freshStore();
  });
  afterAll(async () => store?.close());

  it('turns a shuffled, split fleet into exact attempts, llm_calls and $/pass', async () => {
    expect(plan.length).toBeGreaterThanOrEqual(500);
    const bus = new MemoryBus({ partitions: 4 });
    const p = pipeline(bus, store);
    await p.start();
    await publish(bus, fleetMessages(plan, prng(1)));
    await bus.idle();
    await p.settle();
    expect(p.stats()).toMatchObject({ traces: 0, spans: 0, pendingRows: 0 });
    await p.stop();
    await assertExact(store, plan);

    // every span of every failing attempt is kept
    const failing = plan.filter((a) => a.outcome !== 'pass');
    const [kept] = await store.query<{ spans: number }>(
      "SELECT count() AS spans FROM fleet.spans FINAL WHERE sample_reason = 'failure'",
    );
    expect(kept!.spans).toBe(failing.reduce((n, a) => n + 1 + a.calls.length + a.tools.length, 0));
    // passing attempts above the $1 outlier threshold are all kept; the others at ~5 %, chosen by trace id
    const isOutlier = (a: PlannedAttempt) => (attemptCostAtto(cards, a) ?? 0n) > 10n ** 18n;
    const outliers = await store.query<{ trace_id: string }>("SELECT DISTINCT trace_id FROM fleet.spans FINAL WHERE sample_reason = 'outlier_cost'");
    expect(new Set(outliers.map((r) => r.trace_id))).toEqual(new Set(plan.filter((a) => a.outcome === 'pass' && isOutlier(a)).map((a) => a.traceId)));
    const passing = plan.filter((a) => a.outcome === 'pass' && !isOutlier(a));
    const sampled = await store.query<{ trace_id: string }>("SELECT DISTINCT trace_id FROM fleet.spans FINAL WHERE sample_reason = 'pass_sampled'");
    // the hash is the contract (replicas agree): first 4 bytes of sha256(trace id) as a fraction of 2^32
    const hashUnit = (traceId: string) => createHash('sha256').update(traceId).digest().readUInt32BE(0) / 2 ** 32;
    expect(new Set(sampled.map((r) => r.trace_id))).toEqual(new Set(passing.filter((a) => hashUnit(a.traceId) < 0.05).map((a) => a.traceId)));
    const rate = sampled.length / passing.length;
    expect(Math.abs(rate - 0.05)).toBeLessThan(4 * Math.sqrt((0.05 * 0.95) / passing.length));
    const [rates] = await store.query<{ r: number[] }>("SELECT groupUniqArray(sampling_rate) AS r FROM fleet.spans FINAL WHERE sample_reason = 'pass_sampled'");
    expect(rates!.r).toEqual([0.05]);
  });

  it('leaves every number unchanged when every message is delivered twice', async () => {
    const bus = new MemoryBus({ partitions: 4 });
    const p = pipeline(bus, store);
    await p.start();
    const messages = fleetMessages(plan, prng(2));
    await publish(bus, [...messages, ...messages.slice().reverse()]);
    await bus.idle();
    await p.settle();
    await p.stop();
    await assertExact(store, plan);
  });

  it('leaves every number unchanged after a consumer dies mid-batch and another resumes', async () => {
    const crashStore = await freshStore('crash');
    const bus = new MemoryBus({ partitions: 4 });
    const messages = fleetMessages(plan, prng(3));
    const half = Math.floor(messages.length / 2);

    // The plan's late spans cross the crash: decided attempts stay held (settleMs) for as long as the test runs.
    const first = pipeline(bus, crashStore, 60_000);
    const sub = (first as unknown as { options: { subscriber: { stop(): Promise<void> } } }).options.subscriber;
    await first.start();
    await publish(bus, messages.slice(0, half));
    await bus.idle();
    await first.settle(); // decided, written and committed
    await publish(bus, messages.slice(half, half + Math.floor(half / 2)));
    await bus.idle();
    // decided and partly written, nothing more committed — then the process "dies"
    (first as unknown as { emit(o: unknown): void; assembler: { tick(): unknown } }).emit((first as unknown as { assembler: { tick(): unknown } }).assembler.tick());
    await (first as unknown as { flush(): Promise<void> }).flush();
    await sub.stop();

    const second = pipeline(bus, crashStore, 60_000);
    await second.start();
    await publish(bus, messages.slice(half + Math.floor(half / 2)));
    await bus.idle();
    await second.settle();
    await second.stop();
    await assertExact(crashStore, plan);
    // the resumed consumer really re-read what was not committed
    const [dupes] = await crashStore.query<{ n: number }>('SELECT count() - uniqExact(attempt_id) AS n FROM crash.attempts');
    expect(dupes!.n).toBeGreaterThan(0);
    await crashStore.close();
  });

  it('takes a backlog in slices of a few hundred spans, letting other work run between them (the embedded collector shares the event loop)', async () => {
    const bus = new MemoryBus({ partitions: 1 });
    const p = pipeline(bus, store);
    const messages = fleetMessages(plan, prng(3), 1);
    const spans = plan.reduce((n, a) => n + 1 + a.calls.length + a.tools.length, 0);
    // Queued before the consumer starts, so it meets one backlog of 500-message batches.
    await publish(bus, messages);
    let turns = 0;
    let draining = true;
    const ping = async () => {
      while (draining) {
        turns++;
        await new Promise((r) => setImmediate(r));
      }
    };
    const pinging = ping();
    await p.start();
    await bus.idle();
    draining = false;
    await pinging;
    await p.settle();
    await p.stop();
    // Unsliced, other work would get one turn per 500-message batch (a few turns for the whole backlog).
    expect(Math.ceil(messages.length / 500)).toBeLessThan(5);
    expect(turns).toBeGreaterThanOrEqual(Math.floor(spans / 250 / 2));
    await assertExact(store, plan);
  });

  it('sends an undecodable message to the dead-letter topic and keeps the rest flowing', async () => {
    const dlqStore = await freshStore('dlq');
    const bus = new MemoryBus({ partitions: 2 });
    const p = pipeline(bus, dlqStore);
    const dead: BusMessage[] = [];
    await p.start();
    const some = plan.slice(0, 50);
    const messages = fleetMessages(some, prng(4));
    const poison = { key: 'f'.repeat(32), value: Buffer.from('this is not protobuf \u0000\u00ff') };
    await publish(bus, [...messages.slice(0, 10), poison, ...messages.slice(10)]);
    await bus.idle();
    await p.settle();
    await p.stop();
    const [n] = await dlqStore.query<{ n: number }>('SELECT count() AS n FROM dlq.attempts FINAL');
    expect(n!.n).toBe(some.length);
    // read the dead letter back from its topic
    const reader = bus.subscriber('otlp_spans_dlq');
    await reader.start({ onAssign: () => {}, onBatch: async (b) => void dead.push(...b.messages) });
    await new Promise((r) => setTimeout(r, 50));
    await reader.stop();
    expect(dead).toHaveLength(1);
    expect(dead[0]!.key).toBe(poison.key);
    expect(Buffer.from(dead[0]!.value).toString()).toBe(Buffer.from(poison.value).toString());
    expect(dead[0]!.headers?.['perpass-error']).toMatch(/invalid OTLP protobuf/);
    expect(dead[0]!.headers?.['perpass-source']).toMatch(/^otlp_spans\/\d\/\d+$/);
    await dlqStore.close();
  });
});
