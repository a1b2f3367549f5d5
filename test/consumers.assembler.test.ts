import { describe, expect, it } from 'vitest';
import type { AttrValue, SpanRecord } from '../otlp/codec.ts';
import { buildCatalog } from '../pricing/catalog.ts';
import { Assembler, DEFAULT_LIMITS, type AssemblerOptions, type Output } from '../consumers/assembler.ts';
import { REPRICE_SLOTS } from '../consumers/rollup.ts';
import { OffsetTracker } from '../consumers/offsets.ts';
import { decideSampling, traceHashUnit } from '../consumers/sampling.ts';

const catalog = buildCatalog({
  cards: [{ provider: 'anthropic', model: 'claude-sonnet-4-6', periods: [{ from: '2025-01-01', input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 }] }],
});
const T = 'a'.repeat(32);
const S = (n: number) => n.toString(16).padStart(16, '0');
const START = 1_780_000_000_000_000_000n; // 2026-05-28

function span(id: number, parent: number | null, attrs: Record<string, AttrValue>, opts: { end?: bigint; traceId?: string; name?: string } = {}): SpanRecord {
  return {
    traceId: opts.traceId ?? T,
    spanId: S(id),
    parentSpanId: parent === null ? '' : S(parent),
    traceState: '',
    name: opts.name ?? `span ${id}`,
    kind: 1,
    startTimeUnixNano: START + BigInt(id) * 1_000_000n,
    endTimeUnixNano: opts.end ?? START + 60_000_000_000n,
    attributes: attrs,
    resource: { 'fleet.tenant': 'acme' },
    scope: { name: 'test', version: '1' },
    status: { code: 0, message: '' },
    events: [],
  };
}
const attempt = (id: number, outcome: string | undefined, extra: Record<string, AttrValue> = {}, opts: { end?: bigint; traceId?: string } = {}) =>
  span(id, null, { 'fleet.spec.id': 'spec-1', 'fleet.spec.tier': 'tier-3', 'fleet.attempt.number': 1, ...(outcome && { 'fleet.attempt.outcome': outcome }), ...extra }, opts);
const chat = (id: number, parent: number, input: number, output: number, opts: { traceId?: string } = {}) =>
  span(id, parent, { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'anthropic', 'gen_ai.request.model': 'claude-sonnet-4-6', 'gen_ai.usage.input_tokens': input, 'gen_ai.usage.output_tokens': output }, opts);
const tool = (id: number, parent: number) => span(id, parent, { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'edit' });

function harness(overrides: Partial<AssemblerOptions> = {}) {
  let now = 0;
  const events: string[] = [];
  const offsets = new OffsetTracker('otlp_spans');
  const a = new Assembler({
    catalog,
    sampling: { passRate: 0.05, costOutlierUsd: null, durationOutlierMs: null },
    decisionWaitMs: 500,
    traceTimeoutMs: 10_000,
    settleMs: 2_000,
    limits: DEFAULT_LIMITS,
    now: () => now,
    observer: { decided: (d, s) => events.push(`decided:${d}:${s.reason}`), lateSpan: () => events.push('late'), duplicateSpan: () => events.push('duplicate'), invalidSpan: (m) => events.push(`invalid:${m}`) },
    ...overrides,
  });
  let offset = 0n;
  const all: Output = { attempts: [], llmCalls: [], spans: [], forward: [], refs: [] };
  const collect = (o: Output) => {
    all.attempts.push(...o.attempts);
    all.llmCalls.push(...o.llmCalls);
    all.spans.push(...o.spans);
    all.refs.push(...o.refs);
    return o;
  };
  return {
    a,
    events,
    all,
    offsets,
    add: (s: SpanRecord) => {
      const ref = offsets.ref(0, offset++);
      offsets.received(ref, 1);
      return collect(a.add(s, ref, 100));
    },
    advance: (ms: number) => {
      now += ms;
      return collect(a.tick());
    },
  };
}

describe('assembler', () => {
  it('decides an attempt once its span ended plus the wait, with its children priced', () => {
    const h = harness();
    h.add(chat(2, 1, 1_000_000, 100_000));
    h.add(tool(3, 1));
    h.add(attempt(1, 'fail', { 'fleet.canary': 'c', 'fleet.variant': 'v' }));
    expect(h.advance(499).attempts).toEqual([]);
    const out = h.advance(1);
    expect(out.attempts).toHaveLength(1);
    expect(out.attempts[0]).toMatchObject({
      attempt_id: `${T}-${S(1)}`,
      tenant: 'acme',
      spec_id: 'spec-1',
      spec_tier: 'tier-3',
      canary: 'c',
      variant: 'v',
      model: 'claude-sonnet-4-6',
      outcome: 'fail',
      llm_calls: 1,
      tool_calls: 1,
      input_tokens: 1_000_000,
      output_tokens: 100_000,
      cost_usd: '4.5',
      unpriced_calls: 0,
      sampled: true,
      sampling_rate: 1,
      decision: 'ended',
      version: 3 * REPRICE_SLOTS,
    });
    expect(out.llmCalls.map((c) => [c.span_id, c.cost_usd, c.price_model])).toEqual([[S(2), '4.5', 'claude-sonnet-4-6']]);
    expect(out.spans).toHaveLength(3); // failures keep every span
    expect(h.a.stats()).toMatchObject({ traces: 0, spans: 0 });
    // its messages stay uncommitted while the attempt settles (2 s quiet), not for the trace timeout (10 s)
    expect(out.refs).toEqual([]);
    expect(h.advance(1_999).refs).toEqual([]);
    expect(h.advance(1).refs).toHaveLength(3);
  });

  it('lets a late span join its decided attempt: higher version, same sampling decision', () => {
    const h = harness();
    h.add(attempt(1, 'error'));
    h.add(chat(2, 1, 10, 10));
    h.advance(500);
    const late = h.add(chat(3, 1, 1_000_000, 0));
    expect(h.events).toContain('late');
    expect(late.attempts).toHaveLength(1);
    expect(late.attempts[0]).toMatchObject({ llm_calls: 2, input_tokens: 1_000_010, version: 3 * REPRICE_SLOTS, decision: 'ended', sampled: true });
    // every call again at the new version, so a changed wrapper status reaches ClickHouse too
    expect(late.llmCalls.map((c) => [c.span_id, c.version, c.is_deleted])).toEqual([
      [S(2), 3 * REPRICE_SLOTS, 0],
      [S(3), 3 * REPRICE_SLOTS, 0],
    ]);
    expect(late.spans).toHaveLength(1);
    // a late grandchild whose parent is late too arrives first, then its parent
    expect(h.add(tool(5, 4)).attempts).toEqual([]);
    const both = h.add(span(4, 1, {}));
    expect(both.attempts[0]).toMatchObject({ tool_calls: 1, version: 5 * REPRICE_SLOTS });
  });

  it('ignores duplicate spans before and after the decision', () => {
    const h = harness();
    h.add(attempt(1, 'pass'));
    h.add(chat(2, 1, 100, 10));
    h.add(chat(2, 1, 100, 10));
    h.advance(500);
    const after = h.add(chat(2, 1, 100, 10));
    expect(after.attempts).toEqual([]);
    expect(h.events.filter((e) => e === 'duplicate')).toHaveLength(2);
    expect(h.all.attempts).toHaveLength(1);
    expect(h.all.attempts[0]!.llm_calls).toBe(1);
  });

  it('records an attempt without a verdict as unknown, and one that never ended as unknown after the trace timeout', () => {
    const h = harness();
    h.add(attempt(1, undefined));
    h.add(attempt(10, 'pass', {}, { end: 0n, traceId: 'b'.repeat(32) }));
    expect(h.advance(500).attempts.map((a) => a.outcome)).toEqual(['unknown']);
    expect(h.advance(9_000).attempts).toEqual([]);
    const timedOut = h.advance(500).attempts;
    expect(timedOut).toHaveLength(1);
    expect(timedOut[0]).toMatchObject({ outcome: 'unknown', decision: 'timeout', reason: 'attempt span never ended', sampled: true });
  });

  it('decides early, marked overflow, when the buffer is full — never drops', () => {
    const h = harness({ limits: { ...DEFAULT_LIMITS, maxTraces: 2 } });
    for (let i = 0; i < 3; i++) {
      const traceId = String(i + 1).repeat(32);
      h.add(attempt(1, 'fail', {}, { end: 0n, traceId }));
      h.add(chat(2, 1, 1, 1, { traceId }));
    }
    expect(h.all.attempts.map((a) => [a.trace_id, a.decision, a.outcome])).toEqual([['1'.repeat(32), 'overflow', 'unknown']]);
    expect(h.a.stats().traces).toBe(2);
  });

  it('keeps spans under no attempt once the trace is idle', () => {
    const h = harness();
    h.add(span(1, null, {}, { name: 'root' }));
    h.add(chat(2, 1, 1, 1));
    const out = h.advance(10_000);
    expect(out.attempts).toEqual([]);
    expect(out.spans.map((s) => (s as { sample_reason: string }).sample_reason)).toEqual(['outside_attempt', 'outside_attempt']);
  });

  it('attributes each span to its nearest attempt and reports a span that breaks the contract', () => {
    const h = harness();
    h.add(span(1, null, {}, { name: 'spec' }));
    h.add({ ...attempt(2, 'fail'), parentSpanId: S(1) });
    h.add({ ...attempt(3, 'pass', { 'fleet.attempt.number': 2 }), parentSpanId: S(1) });
    h.add(chat(4, 2, 10, 0));
    h.add(chat(5, 3, 20, 0));
    h.add(span(6, 1, { 'fleet.spec.id': 'x', 'fleet.attempt.number': 0 }));
    h.advance(500);
    const byNumber = Object.fromEntries(h.all.attempts.map((a) => [a.attempt_number, a.input_tokens]));
    expect(byNumber).toEqual({ 1: 10, 2: 20 });
    expect(h.events.find((e) => e.startsWith('invalid:'))).toMatch(/fleet\.spec\.tier is required; fleet\.attempt\.number must be ≥ 1/);
  });

  it('counts a framework span wrapping the provider call once (the innermost call)', () => {
    const h = harness();
    h.add(attempt(1, 'fail'));
    h.add(chat(2, 1, 1000, 100));
    h.add(chat(3, 2, 1000, 100));
    const out = h.advance(500);
    expect(out.attempts[0]).toMatchObject({ llm_calls: 1, input_tokens: 1000 });
    // the wrapper gets a tombstone at the attempt's version: a partial re-read that bills it loses
    expect(out.llmCalls.map((c) => [c.span_id, c.version, c.is_deleted])).toEqual([
      [S(3), 3 * REPRICE_SLOTS, 0],
      [S(2), 3 * REPRICE_SLOTS, 1],
    ]);
  });

  it('turns a billed call into a tombstoned wrapper when its inner call arrives late', () => {
    const h = harness();
    h.add(attempt(1, 'fail'));
    h.add(chat(2, 1, 1000, 100));
    const first = h.advance(500);
    expect(first.llmCalls.map((c) => [c.span_id, c.version, c.is_deleted])).toEqual([[S(2), 2 * REPRICE_SLOTS, 0]]);
    const late = h.add(chat(3, 2, 1000, 100));
    expect(late.attempts[0]).toMatchObject({ llm_calls: 1, input_tokens: 1000, version: 3 * REPRICE_SLOTS });
    expect(late.llmCalls.map((c) => [c.span_id, c.version, c.is_deleted])).toEqual([
      [S(3), 3 * REPRICE_SLOTS, 0],
      [S(2), 3 * REPRICE_SLOTS, 1],
    ]);
  });

  it('rolls children written before their attempt span (trace evicted on overflow) into the attempt that arrives later', () => {
    const h = harness({ limits: { ...DEFAULT_LIMITS, maxTraces: 1 } });
    const other = 'c'.repeat(32);
    h.add(chat(2, 1, 1_000_000, 0));
    h.add(tool(3, 1));
    h.add(span(4, 3, {}));
    h.add(chat(5, 4, 0, 100_000));
    // another trace evicts the first before its attempt span came: its spans are written outside any attempt
    h.add(attempt(1, 'pass', {}, { traceId: other }));
    expect(h.all.spans.map((s) => (s as { sample_reason: string }).sample_reason)).toEqual(Array(4).fill('outside_attempt'));
    expect(h.a.stats()).toMatchObject({ traces: 1, orphanSpans: 4 });
    const decided = h.add(attempt(1, 'fail'));
    h.advance(500);
    const row = h.all.attempts.find((a) => a.trace_id === T)!;
    expect(decided.attempts).toHaveLength(1); // the other trace, evicted in turn
    expect(row).toMatchObject({ llm_calls: 2, tool_calls: 1, input_tokens: 1_000_000, output_tokens: 100_000, cost_usd: '4.5', version: 5 * REPRICE_SLOTS });
    expect(h.all.llmCalls.filter((c) => c.trace_id === T).map((c) => c.span_id).sort()).toEqual([S(2), S(5)]);
    expect(h.a.stats().orphanSpans).toBe(0);
    // the orphans' messages (offsets 0–3) are held until the attempt that adopted them settles
    const released = () => new Set(h.all.refs.map((r) => r.offset));
    expect([0n, 1n, 2n, 3n].filter((o) => released().has(o))).toEqual([]);
    h.advance(10_000);
    expect([0n, 1n, 2n, 3n].filter((o) => released().has(o))).toEqual([0n, 1n, 2n, 3n]);
  });

  it('drops a span without valid ids, saying so, and releases its message', () => {
    const dropped: string[] = [];
    const h = harness({ observer: { droppedSpan: (m) => dropped.push(m) } });
    const out = h.add({ ...chat(2, 1, 1, 1), spanId: 'xyz' });
    expect(out.refs).toHaveLength(1);
    expect(dropped).toEqual([expect.stringMatching(/span xyz "span 2" of trace a{32}: trace id must be 16 bytes and span id 8 bytes/)]);
  });

  it('a span reusing the id of another span of its trace (an LLM call under its attempt’s id) is dropped saying so, not as a silent duplicate', () => {
    const dropped: string[] = [];
    const duplicates: string[] = [];
    const h = harness({ observer: { droppedSpan: (m) => dropped.push(m), duplicateSpan: () => duplicates.push('duplicate') } });
    h.add(attempt(1, 'pass'));
    const out = h.add({ ...chat(1, 1, 10, 10), parentSpanId: '', name: 'chat claude' });
    expect(out.refs).toHaveLength(1);
    expect(dropped).toEqual([`span ${S(1)} "chat claude" of trace ${T}: its span id is already taken by span "span 1" of the trace; span ids must be unique within a trace`]);
    // A redelivered copy of the same span is still a plain duplicate.
    h.add(attempt(1, 'pass'));
    expect(duplicates).toEqual(['duplicate']);
  });

  it('leaves a call of an unknown model unpriced: attempt cost NULL, counted', () => {
    const h = harness();
    h.add(attempt(1, 'pass', { 'fleet.model': 'routed-model' }));
    h.add(chat(2, 1, 10, 10));
    h.add(span(3, 1, { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'x', 'gen_ai.request.model': 'mystery-1', 'gen_ai.usage.input_tokens': 5, 'gen_ai.usage.output_tokens': 5 }));
    const out = h.advance(500);
    expect(out.attempts[0]).toMatchObject({ model: 'routed-model', cost_usd: null, unpriced_calls: 1, llm_calls: 2 });
    expect(out.llmCalls.find((c) => c.model === 'mystery-1')).toMatchObject({ cost_usd: null, unpriced_reason: 'no price card for model "mystery-1"' });
  });
});

describe('offset tracker', () => {
  it('commits up to the lowest message still pending, per partition', () => {
    const t = new OffsetTracker('x');
    const r = [0n, 1n, 2n].map((o) => t.ref(0, o));
    t.received(r[0]!, 2);
    t.received(r[1]!, 1);
    t.received(r[2]!, 0);
    expect(t.committable()).toEqual([{ topic: 'x', partition: 0, offset: '0' }]);
    t.release(r[1]!);
    t.release(r[0]!);
    expect(t.committable()).toEqual([{ topic: 'x', partition: 0, offset: '0' }]);
    t.release(r[0]!);
    expect(t.committable()).toEqual([{ topic: 'x', partition: 0, offset: '3' }]);
    t.committed([{ topic: 'x', partition: 0, offset: '3' }]);
    expect(t.committable()).toEqual([]);
  });

  it('ignores releases from before a partition was lost and assigned again', () => {
    const t = new OffsetTracker('x');
    const old = t.ref(0, 5n);
    t.received(old, 1);
    t.retainOnly(new Set());
    const again = t.ref(0, 5n);
    t.received(again, 1);
    t.release(old);
    expect(t.committable()).toEqual([{ topic: 'x', partition: 0, offset: '5' }]);
  });
});

describe('sampling', () => {
  it('keeps every non-passing attempt and outliers, and a hash-chosen fraction of passes', () => {
    const policy = { passRate: 0.05, costOutlierUsd: '1', durationOutlierMs: 60_000 };
    expect(decideSampling({ outcome: 'timeout', cost_usd: '0', duration_ms: 1, trace_id: 'x' }, policy)).toEqual({ keep: true, rate: 1, reason: 'failure' });
    expect(decideSampling({ outcome: 'pass', cost_usd: '1.000000000000000001', duration_ms: 1, trace_id: 'x' }, policy).reason).toBe('outlier_cost');
    expect(decideSampling({ outcome: 'pass', cost_usd: null, duration_ms: 60_001, trace_id: 'x' }, policy).reason).toBe('outlier_duration');
    let kept = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const traceId = i.toString(16).padStart(32, '0');
      const d = decideSampling({ outcome: 'pass', cost_usd: '0.01', duration_ms: 1, trace_id: traceId }, policy);
      expect(d.keep).toBe(traceHashUnit(traceId) < 0.05);
      if (d.keep) kept++;
    }
    // binomial(20000, 0.05): sd ≈ 30.8; allow 4 sd
    expect(Math.abs(kept - n * 0.05)).toBeLessThan(4 * Math.sqrt(n * 0.05 * 0.95));
  });
});
