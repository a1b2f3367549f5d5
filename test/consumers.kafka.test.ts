/**
 * The consumers on the real Kafka broker and real chDB: two members of one
 * group share the partitions, one dies mid-run and a new one takes over,
 * every message is delivered twice, a poison message goes to the DLQ — and
 * every number equals the hand computation: v_cost_per_pass, every row of
 * attempts and llm_calls field by field, and the spans tail sampling kept.
 * Also: traces in each external attribute dialect are priced correctly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaPublisher, KafkaSubscriber } from '../bus/kafka.ts';
import type { BusMessage, ConsumedMessage, Subscriber } from '../bus/types.ts';
import { ConsumerPipeline } from '../consumers/pipeline.ts';
import { planFleet, prng, type PlannedAttempt } from '../demo/plan.ts';
import { encodeTraceRequest, type KeyValue, type OtlpSpan } from '../otlp/codec.ts';
import { buildCatalog, loadDefaultCatalog, type Catalog } from '../pricing/catalog.ts';
import type { Store } from '../storage/store.ts';
import {
  expectedAttemptRows,
  expectedCallRows,
  expectedCostPerPass,
  expectedSampleReason,
  loadCards,
  plannedAttemptId,
  plannedSpanIds,
  type ExpectedSamplingPolicy,
  type SampleReason,
} from './support/ground-truth.ts';
import { createTopic, kafkaBrokers, uniqueName } from './support/kafka.ts';
import { fleetMessages, traceRequest } from './support/otlp-fleet.ts';
import { freshStore } from './support/store.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

let store: Store;
beforeAll(async () => {
  store = await freshStore();
});
afterAll(async () => store?.close());

/**
 * Tail sampling as configured here: a pass rate well above the 5 % default, so
 * the binomial check on the kept fraction has a lower bound above zero.
 */
const SAMPLING: ExpectedSamplingPolicy = { passRate: 0.25, costOutlierUsd: '1', durationOutlierMs: 15 * 60_000 };

const groupMember = (groupId: string, topic: string) => new KafkaSubscriber({ brokers: kafkaBrokers(), groupId, topic, logLevel: 'nothing' });

function member(topic: string, dlq: string, subscriber: Subscriber, catalog: Catalog, target: Store, dlqPublisher: KafkaPublisher) {
  return new ConsumerPipeline({
    topic,
    store: target,
    subscriber,
    catalog,
    deadLetter: { publisher: dlqPublisher, topic: dlq },
    sampling: SAMPLING,
    decisionWaitMs: 200,
    traceTimeoutMs: 5_000,
    log: () => {},
  });
}

/** A real group member that also records which messages it handed over and which positions it committed. */
function recording(inner: Subscriber) {
  const delivered: string[] = []; // `${partition}/${offset}`
  const committed = new Map<number, bigint>();
  const subscriber: Subscriber = {
    start: (handlers) =>
      inner.start({
        ...handlers,
        onBatch: (batch) => {
          for (const m of batch.messages) delivered.push(`${m.partition}/${m.offset}`);
          return handlers.onBatch(batch);
        },
      }),
    commit: async (offsets) => {
      await inner.commit(offsets);
      for (const o of offsets) committed.set(o.partition, BigInt(o.offset));
    },
    lag: () => inner.lag(),
    stop: () => inner.stop(),
  };
  /** Messages handed over at or past the last committed position of their partition: what the next owner reads again. */
  const uncommitted = () =>
    delivered.filter((k) => {
      const [partition, offset] = k.split('/');
      const position = committed.get(Number(partition));
      return position === undefined || BigInt(offset!) >= position;
    });
  return { subscriber, delivered, uncommitted };
}

describe('consumer group on Kafka', () => {
  it('gives exact numbers through a rebalance, a dead member, double delivery and a poison message', async () => {
    const brokers = kafkaBrokers();
    const topic = await createTopic('spans', 3);
    const dlq = await createTopic('spans-dlq', 1);
    const groupId = uniqueName('group');
    const catalog = loadDefaultCatalog();
    const plan = planFleet({ specsPerCell: 25, seed: 11, startNs: (BigInt(Date.now()) - 3_600_000n) * 1_000_000n, spacingMs: 20 });
    expect(plan.length).toBeGreaterThanOrEqual(500);
    const once = fleetMessages(plan, prng(5));
    const poison: BusMessage = { key: 'ab'.repeat(16), value: Buffer.from([0x0a, 0xff, 0xff, 0xff]) };
    const messages = [...once, ...once.slice().reverse()];
    messages.splice(200, 0, poison);

    const producer = new KafkaPublisher({ brokers, logLevel: 'nothing' });
    const dlqPublisher = new KafkaPublisher({ brokers, logLevel: 'nothing' });
    const publish = async (ms: BusMessage[]) => {
      for (let i = 0; i < ms.length; i += 200) await producer.publish(topic, ms.slice(i, i + 200));
    };
    const ra = recording(groupMember(groupId, topic));
    const rb = recording(groupMember(groupId, topic));
    const a = member(topic, dlq, ra.subscriber, catalog, store, dlqPublisher);
    const b = member(topic, dlq, rb.subscriber, catalog, store, dlqPublisher);
    await a.start();
    await b.start(); // the group rebalances across both
    const third = Math.floor(messages.length / 3);
    await publish(messages.slice(0, third));
    await until('the members to take the first third in', async () => a.stats().spans + b.stats().spans + (await attemptsWritten()) > 0);
    await sleep(1_500);
    const dying = b.stats();
    await b.abort(); // dies with buffered and unwritten state: its partitions go back to the group
    // it really died mid-run: spans undecided or rows unwritten, and messages it had read but not committed
    expect(dying.spans + dying.pendingRows).toBeGreaterThan(0);
    expect(dying.pendingMessages).toBeGreaterThan(0);
    const leftUncommitted = rb.uncommitted();
    expect(leftUncommitted.length).toBeGreaterThan(0);
    const aReadBeforeAbort = ra.delivered.length;
    const rc = recording(groupMember(groupId, topic));
    const c = member(topic, dlq, rc.subscriber, catalog, store, dlqPublisher);
    await c.start();
    await publish(messages.slice(third));
    await until('every attempt to be written', async () => (await attemptsWritten()) === plan.length);
    await Promise.all([a.settle(), c.settle()]);
    // whatever the dead member left uncommitted was read again by a survivor
    const readAgain = new Set([...ra.delivered.slice(aReadBeforeAbort), ...rc.delivered]);
    expect(leftUncommitted.filter((m) => !readAgain.has(m))).toEqual([]);

    const cards = loadCards();
    const rows = await store.query<Record<string, unknown>>(
      "SELECT tenant, model, spec_tier, canary, variant, attempts, passes, unpriced_attempts, cost_usd, cost_per_pass FROM fleet.v_cost_per_pass_window(since = '2000-01-01 00:00:00', until = '2200-01-01 00:00:00') ORDER BY tenant, model, spec_tier, canary, variant",
    );
    const key = (r: { tenant: unknown; model: unknown; spec_tier: unknown; canary: unknown; variant: unknown }) => [r.tenant, r.model, r.spec_tier, r.canary, r.variant].join("|");
    expect(rows).toEqual(expectedCostPerPass(cards, plan).sort((x, y) => (key(x) < key(y) ? -1 : 1)));
    await assertRowsExact(cards, plan);

    // the poison message is on the DLQ with its reason, and nothing else is (a member that died
    // before committing past it sends it again: the DLQ is at-least-once, one source offset)
    const dead: ConsumedMessage[] = [];
    const reader = new KafkaSubscriber({ brokers, groupId: uniqueName('dlq-reader'), topic: dlq, logLevel: 'nothing' });
    await reader.start({ onAssign: () => {}, onBatch: async (batch) => void dead.push(...batch.messages) });
    await until('the dead letter', async () => dead.length > 0, 30_000);
    await sleep(500);
    await reader.stop();
    expect(new Set(dead.map((m) => m.headers?.['perpass-source'])).size).toBe(1);
    expect(new Set(dead.map((m) => m.key))).toEqual(new Set([poison.key]));
    expect(dead[0]!.headers?.['perpass-error']).toMatch(/invalid OTLP protobuf/);

    await Promise.all([a.stop(), c.stop()]);
    await producer.close();
    await dlqPublisher.close();
  });
});

async function attemptsWritten(): Promise<number> {
  const [r] = await store.query<{ n: number }>('SELECT count() AS n FROM fleet.attempts FINAL');
  return r!.n;
}

const ns = (column: string) => `toString(toUnixTimestamp64Nano(${column}))`;
const TOKENS = 'input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens';
const byText = (...keys: string[]) => (x: object, y: object) => {
  const k = (r: object) => keys.map((f) => String((r as Record<string, unknown>)[f])).join('\u0000');
  return k(x) < k(y) ? -1 : k(x) > k(y) ? 1 : 0;
};

/**
 * attempts, llm_calls and spans (all FINAL) against the hand computation, row
 * by row and field by field; which passing attempts keep their spans is the
 * pipeline's hash, so that part is checked as a binomial fraction.
 */
async function assertRowsExact(cards: ReturnType<typeof loadCards>, plan: PlannedAttempt[]): Promise<void> {
  const attempts = await store.query<{ attempt_id: string; sampling_rate: number }>(
    `SELECT attempt_id, tenant, spec_id, spec_tier, canary, variant, pool, model, attempt_number, outcome, reason,
            ${ns('started_at')} AS started_ns, ${ns('ended_at')} AS ended_ns, llm_calls, tool_calls, ${TOKENS},
            cost_usd, reported_cost_usd, unpriced_calls, trace_id, span_id, sampling_rate
     FROM fleet.attempts FINAL ORDER BY attempt_id`,
  );
  // Sampling is decided once the attempt span has ended plus the decision wait; spans arriving later
  // follow that decision (as in the OpenTelemetry Collector's tail sampler). This traffic delivers
  // some LLM calls seconds after their attempt span, so a passing attempt whose full cost makes it a
  // cost outlier may have been decided, correctly, as an ordinary pass on the calls seen by then.
  const p = SAMPLING.passRate;
  const decidedAsPass = new Set(attempts.filter((r) => r.sampling_rate === p).map((r) => r.attempt_id));
  const reasonOf = (a: PlannedAttempt): SampleReason => {
    const reason = expectedSampleReason(cards, a, SAMPLING);
    return reason === 'outlier_cost' && decidedAsPass.has(plannedAttemptId(a)) ? 'pass' : reason;
  };
  expect(attempts).toEqual(expectedAttemptRows(cards, plan, SAMPLING, reasonOf).sort(byText('attempt_id')));

  const calls = await store.query(
    `SELECT tenant, attempt_id, trace_id, span_id, ${ns('started_at')} AS started_ns, ${ns('ended_at')} AS ended_ns,
            provider, model, service_tier, ${TOKENS}, cost_usd
     FROM fleet.llm_calls FINAL ORDER BY attempt_id, span_id`,
  );
  expect(calls).toEqual(expectedCallRows(cards, plan).sort(byText('attempt_id', 'span_id')));

  const spans = await store.query<{ attempt_id: string }>('SELECT attempt_id, trace_id, span_id, sample_reason, sampling_rate FROM fleet.spans FINAL ORDER BY trace_id, span_id');
  const kept = new Set(spans.map((s) => s.attempt_id));
  // every span of every non-passing attempt and passing outlier; a sampled pass keeps all of its spans, a dropped one none
  const expectedSpans = plan.flatMap((a) => {
    const reason = reasonOf(a);
    if (reason === 'pass' && !kept.has(plannedAttemptId(a))) return [];
    return plannedSpanIds(a).map((span_id) => ({
      attempt_id: plannedAttemptId(a),
      trace_id: a.traceId,
      span_id,
      sample_reason: reason === 'pass' ? 'pass_sampled' : reason,
      sampling_rate: reason === 'pass' ? p : 1,
    }));
  });
  expect(spans).toEqual(expectedSpans.sort(byText('trace_id', 'span_id')));
  const sampled = await store.query<{ attempt_id: string }>('SELECT attempt_id FROM fleet.attempts FINAL WHERE sampled ORDER BY attempt_id');
  expect(sampled.map((r) => r.attempt_id)).toEqual([...kept].sort());

  const passes = plan.filter((a) => reasonOf(a) === 'pass');
  const n = passes.length;
  expect(n).toBeGreaterThanOrEqual(100);
  const keptPasses = passes.filter((a) => kept.has(plannedAttemptId(a))).length;
  // 4 standard deviations: the hash makes the draw fixed for this plan, the bound only says "about passRate"
  expect(Math.abs(keptPasses - n * p)).toBeLessThanOrEqual(4 * Math.sqrt(n * p * (1 - p)));
}

describe('external attribute dialects', () => {
  const str = (key: string, v: string): KeyValue => ({ key, value: { stringValue: v } });
  const int = (key: string, v: number): KeyValue => ({ key, value: { intValue: v } });
  const dbl = (key: string, v: number): KeyValue => ({ key, value: { doubleValue: v } });
  const hex = (n: number, bytes: number) => Buffer.from(n.toString(16).padStart(bytes * 2, '0'), 'hex');
  const now = BigInt(Date.now()) * 1_000_000n;
  function trace(n: number, children: { id: number; parent: number; name: string; attributes: KeyValue[] }[]): BusMessage {
    const traceId = hex(n, 16);
    const span = (id: number, parent: number | null, name: string, attributes: KeyValue[]): OtlpSpan => ({
      traceId,
      spanId: hex(id, 8),
      ...(parent !== null && { parentSpanId: hex(parent, 8) }),
      name,
      startTimeUnixNano: (now + BigInt(id) * 1_000_000n).toString(),
      endTimeUnixNano: (now + 1_000_000_000n).toString(),
      attributes,
    });
    const attempt = span(1, null, 'attempt', [str('fleet.spec.id', `dialect-${n}`), str('fleet.spec.tier', 'tier-2'), int('fleet.attempt.number', 1), str('fleet.attempt.outcome', 'pass')]);
    return { key: traceId.toString('hex'), value: encodeTraceRequest(traceRequest([attempt, ...children.map((c) => span(c.id, c.parent, c.name, c.attributes))], 'dialects')) };
  }

  it('prices OpenLLMetry, OpenInference and Vercel AI SDK calls like GenAI ones, without double counting', async () => {
    const catalog = buildCatalog({
      cards: [
        { provider: 'openai', model: 'gpt-4o', periods: [{ from: '2025-01-01', input: 2.5, cache_read: 1.25, output: 10 }] },
        { provider: 'openai', model: 'o3-mini', periods: [{ from: '2025-01-01', input: 1.1, cache_read: 0.55, output: 4.4 }] },
        { provider: 'anthropic', model: 'claude-opus-4-1', aliases: ['claude-opus-4-1-20250805'], periods: [{ from: '2025-01-01', input: 15, cache_read: 1.5, cache_write: 18.75, output: 75 }] },
        { provider: 'anthropic', model: 'claude-sonnet-4-5', periods: [{ from: '2025-01-01', input: 3, cache_read: 0.3, cache_write: 3.75, output: 15 }] },
      ],
    });
    const messages = [
      // OpenLLMetry (traceloop opentelemetry-instrumentation-openai): prompt_tokens includes the cached ones
      trace(1, [{ id: 2, parent: 1, name: 'openai.chat', attributes: [str('gen_ai.system', 'openai'), str('llm.request.type', 'chat'), str('gen_ai.request.model', 'gpt-4o'), str('gen_ai.response.model', 'gpt-4o-2024-08-06'), int('llm.usage.total_tokens', 2306), int('gen_ai.usage.prompt_tokens', 2006), int('gen_ai.usage.completion_tokens', 300), int('gen_ai.usage.cache_read_input_tokens', 1920)] }]),
      // OpenInference (openinference-instrumentation-openai): details are sub-counts; reasoning inside completion
      trace(2, [{ id: 2, parent: 1, name: 'ChatCompletion', attributes: [str('openinference.span.kind', 'LLM'), str('llm.provider', 'openai'), str('llm.model_name', 'o3-mini-2025-01-31'), str('llm.invocation_parameters', '{"model": "o3-mini"}'), int('llm.token_count.prompt', 2006), int('llm.token_count.completion', 1300), int('llm.token_count.total', 3306), int('llm.token_count.prompt_details.cache_read', 1920), int('llm.token_count.completion_details.reasoning', 1024), dbl('llm.cost.total', 0.0079002)] }]),
      // Vercel AI SDK 6: the outer ai.streamText span sums its steps and must not count; doStream is the call
      trace(3, [
        { id: 2, parent: 1, name: 'ai.streamText', attributes: [str('ai.operationId', 'ai.streamText'), str('ai.model.id', 'claude-opus-4-1'), str('ai.model.provider', 'anthropic.messages'), str('ai.usage.inputTokens', '650361'), str('ai.usage.outputTokens', '369')] },
        { id: 3, parent: 2, name: 'ai.streamText.doStream', attributes: [str('ai.operationId', 'ai.streamText.doStream'), str('ai.model.id', 'claude-opus-4-1'), str('ai.model.provider', 'anthropic.messages'), str('ai.response.model', 'claude-opus-4-1-20250805'), str('ai.usage.inputTokens', '650361'), str('ai.usage.outputTokens', '369'), str('ai.usage.inputTokenDetails.cacheReadTokens', '649452'), str('ai.usage.inputTokenDetails.cacheWriteTokens', '907'), str('ai.usage.inputTokenDetails.noCacheTokens', '2'), str('ai.usage.totalTokens', '650730'), str('gen_ai.usage.input_tokens', '650361'), str('gen_ai.usage.output_tokens', '369')] },
      ]),
      // OpenTelemetry GenAI (current names, inclusive counts)
      trace(4, [{ id: 2, parent: 1, name: 'chat claude-sonnet-4-5', attributes: [str('gen_ai.operation.name', 'chat'), str('gen_ai.provider.name', 'anthropic'), str('gen_ai.request.model', 'claude-sonnet-4-5'), int('gen_ai.usage.input_tokens', 12034), int('gen_ai.usage.cache_read.input_tokens', 10500), int('gen_ai.usage.cache_write.input_tokens', 1500), int('gen_ai.usage.output_tokens', 800)] }]),
    ];
    const dialectStore = await freshStore('dialects');
    const topic = await createTopic('dialects', 1);
    const producer = new KafkaPublisher({ brokers: kafkaBrokers(), logLevel: 'nothing' });
    const dlqPublisher = new KafkaPublisher({ brokers: kafkaBrokers(), logLevel: 'nothing' });
    await producer.publish(topic, messages);
    const p = member(topic, 'unused-dlq', groupMember(uniqueName('dialects'), topic), catalog, dialectStore, dlqPublisher);
    await p.start();
    await until('the dialect attempts', async () => {
      const [r] = await dialectStore.query<{ n: number }>('SELECT count() AS n FROM dialects.attempts FINAL');
      return r!.n === 4;
    });
    const rows = await dialectStore.query<{ spec_id: string; cost_usd: string; llm_calls: number; input_tokens: number; cache_read_tokens: number; cache_write_tokens: number; output_tokens: number; reasoning_tokens: number; reported_cost_usd: string | null }>(
      'SELECT spec_id, cost_usd, llm_calls, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, reported_cost_usd FROM dialects.attempts FINAL ORDER BY spec_id',
    );
    // hand computation, USD per million tokens × tokens
    expect(rows).toEqual([
      { spec_id: 'dialect-1', llm_calls: 1, input_tokens: 86, cache_read_tokens: 1920, cache_write_tokens: 0, output_tokens: 300, reasoning_tokens: 0, cost_usd: '0.005615', reported_cost_usd: null }, // (86×2.5 + 1920×1.25 + 300×10) / 1e6
      { spec_id: 'dialect-2', llm_calls: 1, input_tokens: 86, cache_read_tokens: 1920, cache_write_tokens: 0, output_tokens: 276, reasoning_tokens: 1024, cost_usd: '0.0068706', reported_cost_usd: '0.0079002' }, // (86×1.1 + 1920×0.55 + 1300×4.4) / 1e6
      { spec_id: 'dialect-3', llm_calls: 1, input_tokens: 2, cache_read_tokens: 649452, cache_write_tokens: 907, output_tokens: 369, reasoning_tokens: 0, cost_usd: '1.01888925', reported_cost_usd: null }, // (2×15 + 649452×1.5 + 907×18.75 + 369×75) / 1e6
      { spec_id: 'dialect-4', llm_calls: 1, input_tokens: 34, cache_read_tokens: 10500, cache_write_tokens: 1500, output_tokens: 800, reasoning_tokens: 0, cost_usd: '0.0208770', reported_cost_usd: null }, // (34×3 + 10500×0.3 + 1500×3.75 + 800×15) / 1e6
    ].map((r) => ({ ...r, cost_usd: r.cost_usd.replace(/0+$/, '') })));
    const dialects = await dialectStore.query<{ dialect: string }>('SELECT dialect FROM dialects.llm_calls FINAL ORDER BY trace_id');
    expect(dialects.map((d) => d.dialect)).toEqual(['openllmetry', 'openinference', 'vercel_ai', 'gen_ai']);
    await p.stop();
    await producer.close();
    await dlqPublisher.close();
    await dialectStore.close();
  });
});
