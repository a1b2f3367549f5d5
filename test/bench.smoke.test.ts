/**
 * Keeps the benchmark suite (bench/) from rotting: every benchmark runs in
 * its minimal configuration (`npm run bench -- --smoke <name>`, against the
 * test run's shared Kafka broker where it can) and must produce a result of
 * the documented shape with sane numbers. The numbers themselves mean
 * nothing here; `npm run bench` measures.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { BenchResult } from '../bench/lib/common.ts';
import { kafkaBrokers } from './support/kafka.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = mkdtempSync(path.join(os.tmpdir(), 'perpass-bench-smoke-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function smoke(name: string, kafka: boolean): Promise<BenchResult> {
  const file = path.join(out, `${name}.json`);
  const args = ['bench/run.ts', '--smoke', name, '--out', file, ...(kafka ? ['--kafka', kafkaBrokers().join(',')] : [])];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd: ROOT, timeout: 240_000, maxBuffer: 64 << 20, env: { ...process.env, NODE_ENV: 'production' } }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`npm run bench -- --smoke ${name} failed: ${err.message}\n${stderr.slice(-4000)}`));
      const results = (JSON.parse(readFileSync(file, 'utf8')) as { results: Record<string, BenchResult> }).results;
      const result = results[name]!;
      // the JSON line on stdout is the same result
      const line = stdout.split('\n').find((l) => l.startsWith('{"benchmark"'));
      expect(line && (JSON.parse(line) as BenchResult).benchmark).toBe(name);
      resolve(result);
    });
  });
}

function expectShape(r: BenchResult, name: string): void {
  expect(r.benchmark).toBe(name);
  expect(r.smoke).toBe(true);
  expect(r.machine.cores).toBeGreaterThanOrEqual(1);
  expect(r.machine.cpuModel).toEqual(expect.any(String));
  expect(r.command).toContain(`npm run bench -- ${name} --smoke`);
  expect(Object.keys(r.metrics).length).toBeGreaterThan(0);
  for (const [k, v] of Object.entries(r.metrics)) expect(Number.isFinite(v), `${name}.${k} = ${v}`).toBe(true);
  for (const t of r.targets) {
    expect(t).toEqual({ metric: expect.any(String), op: expect.stringMatching(/^(>=|<)$/), target: expect.any(Number), unit: expect.any(String), value: expect.any(Number), met: expect.any(Boolean) });
    expect(r.metrics).toHaveProperty(t.metric);
  }
}

const positive = (r: BenchResult, ...keys: string[]) => {
  for (const k of keys) expect(r.metrics[k], k).toBeGreaterThan(0);
};

describe('benchmark suite (smoke)', () => {
  it('collector: OTLP/HTTP → collector → Kafka, load from another process', async () => {
    const r = await smoke('collector', true);
    expectShape(r, 'collector');
    positive(r, 'spansPerSecond', 'spansPerCollectorCpuSecond', 'latencyP50Ms', 'latencyP99Ms', 'collectorCoresUsed');
    expect(r.metrics.non200).toBe(0);
  }, 240_000);

  it('consumers: drains a pre-filled topic into chDB', async () => {
    const r = await smoke('consumers', true);
    expectShape(r, 'consumers');
    positive(r, 'spansPerSecond', 'attemptsPerSecond', 'drainSpansPerSecond', 'rowsWrittenLlmCalls');
    expect(r.metrics.overflowDecisions).toBe(0);
  }, 240_000);

  it('freshness: attempt end → visible in v_cost_per_pass, embedded and Kafka', async () => {
    const r = await smoke('freshness', true);
    expectShape(r, 'freshness');
    positive(r, 'embeddedP50Ms', 'embeddedP99Ms', 'kafkaP50Ms', 'kafkaP99Ms');
    expect(r.details).toMatchObject({ embedded: { missing: 0 }, kafka: { missing: 0 } });
  }, 240_000);

  it('query: the views over generated attempts, fresh and merged', async () => {
    const r = await smoke('query', false);
    expectShape(r, 'query');
    positive(r, 'fresh_v_cost_per_pass_p50Ms', 'merged_v_cost_per_pass_p50Ms', 'merged_v_routing_p50Ms', 'merged_v_spec_outcomes_all_p50Ms', 'fresh_v_cost_per_pass_rows');
    expect(r.metrics.distinctAttempts).toBe(30_000);
    expect(r.metrics.rowsInserted).toBeGreaterThan(30_000);
    expect(r.metrics.mergedParts).toBeLessThan(r.metrics.freshParts!);
  }, 240_000);

  it('sdk: perpass instrumentation vs the plain OpenTelemetry SDK', async () => {
    const r = await smoke('sdk', false);
    expectShape(r, 'sdk');
    positive(r, 'plainAttemptUs', 'perpassAttemptUs', 'plainLlmCallUs', 'perpassRecordLlmCallUs', 'perpassLlmCallAsyncUs');
    expect(r.details.exportedSpans).toBeGreaterThan(0);
  }, 240_000);

  it('memory: RSS of collector and consumer through load, overload and outages', async () => {
    const r = await smoke('memory', false);
    expectShape(r, 'memory');
    positive(r, 'collectorMaxMiB', 'consumerMaxMiB', 'collector_sustained_maxMiB', 'consumer_kafkaDown_maxMiB', 'consumer_storeDown_maxMiB');
    // the abuse suite's overloads against a fleet start with a memory budget: peak RSS per attack, under the budget
    positive(r, 'abusePeakMiB', 'abuse_giants_maxMiB', 'abuse_tenantFlood_maxMiB', 'abuse_connectionFlood_maxMiB');
    expect(r.targets.find((t) => t.metric === 'abusePeakMiB')).toMatchObject({ target: 1280, met: true });
  }, 240_000);

  it('embedded: fleet start at 80 % of its max sustained rate, event-loop delay and probe latencies', async () => {
    const r = await smoke('embedded', false);
    expectShape(r, 'embedded');
    positive(r, 'maxSustainedSpansPerSecond', 'offeredSpansPerSecond', 'acceptedSpansPerSecond', 'writtenSpansPerSecond', 'eventLoopDelayP99Ms', 'eventLoopDelayMaxMs', 'healthzP50Ms', 'healthzP99Ms', 'otlpP50Ms', 'otlpP99Ms', 'metricsScrapeMaxMs', 'cpuCoresUsed');
    expect(r.metrics.healthzFailures).toBe(0);
    expect(r.metrics.failedRequests).toBe(0);
    expect(r.metrics.lostSpans).toBe(0);
    expect(r.details.steady_run1).toMatchObject({ takenTotalSpans: expect.any(Number), healthzProbes: expect.any(Number) });
    expect((r.details.steady_run1 as { takenTotalSpans: number }).takenTotalSpans).toBeGreaterThan(0);
  }, 240_000);

  it('kafka-client: kafkajs and @platformatic/kafka on the same messages', async () => {
    const r = await smoke('kafka-client', true);
    expectShape(r, 'kafka-client');
    positive(r, 'kafkajs_gzip_produceMsgPerS', 'kafkajs_gzip_consumeMsgPerS', 'platformatic_gzip_produceMsgPerS', 'platformatic_gzip_consumeMsgPerS');
  }, 240_000);
});
