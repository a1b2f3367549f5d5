/**
 * The batch writer against real chDB: a backlog goes out in inserts of at
 * most maxRows rows, calls before attempts, and the batch's message
 * references are released only once every row of it is written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatInstant, type AttemptRow, type LlmCallRow } from '../contract/rows.ts';
import { emptyOutput } from '../consumers/assembler.ts';
import type { MessageRef } from '../consumers/offsets.ts';
import { BatchWriter } from '../consumers/writer.ts';
import type { Store } from '../storage/store.ts';
import { freshStore } from './support/store.ts';

let store: Store;
beforeAll(async () => {
  store = await freshStore('writer');
});
afterAll(() => store.close());

const started = BigInt(Date.now()) * 1_000_000n;

function attempt(i: number): AttemptRow {
  return {
    attempt_id: `a-${i}`, tenant: 'default', spec_id: `spec-${i % 7}`, spec_tier: 'tier-2', canary: '', variant: '', pool: '',
    model: 'deepseek-v4-flash', attempt_number: 1, outcome: i % 3 === 0 ? 'fail' : 'pass', reason: '',
    started_at: formatInstant(started + BigInt(i)), ended_at: formatInstant(started + BigInt(i) + 1_000_000n), duration_ms: 1,
    llm_calls: 1, tool_calls: 0, input_tokens: 10, cache_read_tokens: 0, cache_write_tokens: 0, output_tokens: 5, reasoning_tokens: 0,
    cost_usd: '0.000001', reported_cost_usd: null, unpriced_calls: 0, trace_id: `t-${i}`, span_id: `s-${i}`,
    sampled: false, sampling_rate: 0.05, decision: 'ended', version: 2,
  };
}

function call(i: number): LlmCallRow {
  return {
    tenant: 'default', attempt_id: `a-${i}`, trace_id: `t-${i}`, span_id: `c-${i}`,
    started_at: formatInstant(started + BigInt(i)), ended_at: formatInstant(started + BigInt(i) + 1_000n),
    provider: 'deepseek', model: 'deepseek-v4-flash', request_model: 'deepseek-v4-flash', provider_source: 'instrumentation', instrumented_provider: 'deepseek', server_address: '',
    service_tier: 'standard',
    input_tokens: 10, cache_read_tokens: 0, cache_write_tokens: 0, output_tokens: 5, reasoning_tokens: 0, cache_write_1h_tokens: 0,
    cost_usd: '0.000001', reported_cost_usd: null, price_provider: 'deepseek', price_model: 'deepseek-v4-flash',
    price_from: '2026-01-01 00:00:00.000000000', unpriced_reason: '', dialect: 'gen_ai', version: 2, is_deleted: 0,
  };
}

describe('batch writer', () => {
  it('writes a backlog in inserts of at most maxRows, calls before attempts, and releases references after the last', async () => {
    const inserts: { table: string; rows: number; released: number }[] = [];
    let released: MessageRef[] = [];
    const rowCount = async (table: string) => (await store.query<{ n: number }>(`SELECT count() AS n FROM ${store.database}.${table}`))[0]!.n;
    const recording: Store = { ...store, insertRowBinary: async (table, columns, chunks) => {
      const before = await rowCount(table);
      const releasedBefore = released.length;
      await store.insertRowBinary(table, columns, chunks);
      inserts.push({ table, rows: (await rowCount(table)) - before, released: releasedBefore });
    } };
    const writer = new BatchWriter(recording, { maxRows: 100, maxDelayMs: 0, retryDelayMs: 10 }, (refs) => (released = refs));
    await writer.prepare();
    const out = emptyOutput();
    for (let i = 0; i < 250; i++) {
      out.attempts.push(attempt(i));
      out.llmCalls.push(call(i));
      out.refs.push({ partition: 0, offset: BigInt(i), epoch: 1 });
    }
    writer.add(out);
    expect(writer.pendingRows).toBe(500);
    await writer.flush();

    expect(inserts.map((x) => `${x.table}:${x.rows}`)).toEqual(['llm_calls:100', 'llm_calls:100', 'llm_calls:50', 'attempts:100', 'attempts:100', 'attempts:50']);
    expect(inserts.every((x) => x.released === 0)).toBe(true);
    expect(released).toHaveLength(250);
    expect(writer.pendingRows).toBe(0);
    const [counts] = await store.query<{ attempts: number; calls: number }>(
      `SELECT (SELECT count() FROM ${store.database}.attempts FINAL) AS attempts, (SELECT count() FROM ${store.database}.llm_calls FINAL) AS calls`,
    );
    expect(counts).toEqual({ attempts: 250, calls: 250 });
  });
});
