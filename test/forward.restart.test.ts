/**
 * A restart does not lose kept traces: `fleet start --forward-otlp` at a
 * backend that refuses (503) queues what it keeps on disk; stopped (SIGTERM)
 * and started again on the same data directory with the backend back, it
 * sends every kept trace, each span exactly once, and nothing it did not keep.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { flattenSpans } from '../otlp/codec.ts';
import { plannedSpanIds } from './support/ground-truth.ts';
import { Backend } from './support/otlp-backend.ts';
import { postFleet } from './support/otlp-fleet.ts';
import { startFleet, type Child } from './support/processes.ts';
import { endpointRows, scrapedSum } from './support/readings.ts';
import { tempDir } from './support/store.ts';

const backend = new Backend();
let fleet: Child | undefined;

afterAll(async () => {
  await fleet?.kill();
  await backend.close();
});

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; fleet output:\n${fleet?.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function start(dataDir: string, backendUrl: string): Promise<{ otlp: string; query: string; metrics: string }> {
  fleet = startFleet(['start', '--data-dir', dataDir, '--collector-port', '0', '--query-port', '0', '--decision-wait-ms', '200', '--forward-otlp', backendUrl]);
  const m = await fleet.waitFor(/OTLP\/HTTP (http:\/\/\S+?)\/v1\/traces · query (http:\/\/[\d.]+:\d+).*? · metrics (\S+)/);
  return { otlp: m[1]!, query: m[2]!, metrics: m[3]! };
}

const metric = (url: string, name: string) => scrapedSum(url, name);

describe('fleet start --forward-otlp across a restart', () => {
  it('sends after the restart every trace it kept while the backend refused, each span once', async () => {
    const backendUrl = await backend.listen();
    backend.answer = () => ({ status: 503, headers: { 'retry-after': '1' } });
    const dataDir = tempDir('forward-restart');
    const first = await start(dataDir, backendUrl);
    const { plan } = await postFleet(first.otlp, 303, 'restart');
    const sql = <T>(statement: string) => endpointRows<T>(first.query, statement);
    const attempts = () => sql<{ trace_id: string; sampled: boolean }>(`SELECT trace_id, sampled FROM fleet.attempts FINAL WHERE startsWith(spec_id, 'restart')`);
    await until('every attempt stored', async () => (await attempts()).length === plan.length);
    const kept = new Set((await attempts()).filter((a) => a.sampled).map((a) => a.trace_id));
    const keptPlan = plan.filter((a) => kept.has(a.traceId));
    const keptSpans = keptPlan.reduce((n, a) => n + plannedSpanIds(a).length, 0);
    expect(kept.size).toBeGreaterThan(0);
    expect(kept.size).toBeLessThan(plan.length);
    await until('every kept span queued', async () => (await metric(first.metrics, 'fleet_forward_queue_spans')) === keptSpans);
    expect(backend.received.length).toBe(0);

    expect(await fleet!.kill('SIGTERM')).toBe(0);
    expect(fleet!.output()).toMatch(new RegExp(`forward to ${backendUrl}/v1/traces: ${keptSpans} kept spans stay queued on disk`));

    backend.answer = () => ({ status: 200 });
    const second = await start(dataDir, backendUrl);
    await fleet!.waitFor(new RegExp(`${keptSpans} kept spans queued before the restart are sent first`));
    await until('every kept span forwarded', () => backend.spanIds().length >= keptSpans);
    await until('the queue empty', async () => (await metric(second.metrics, 'fleet_forward_queue_spans')) === 0);
    // a moment more: nothing else may follow
    await new Promise((r) => setTimeout(r, 1500));

    const spans = backend.received.flatMap((r) => [...flattenSpans(r.request)]);
    expect(spans.length).toBe(keptSpans);
    expect(new Set(spans.map((s) => s.spanId)).size).toBe(keptSpans);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(kept);
    for (const a of keptPlan) {
      expect(spans.filter((s) => s.traceId === a.traceId).map((s) => s.spanId).sort(), `spans of ${a.traceId}`).toEqual(plannedSpanIds(a).sort());
    }
    expect(await metric(second.metrics, 'fleet_forward_sent_spans_total')).toBe(keptSpans);
  }, 300_000);
});
