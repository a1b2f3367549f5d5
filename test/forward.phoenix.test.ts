/**
 * perpass in front of a real trace backend: Arize Phoenix from PyPI (in a
 * virtualenv the test setup installs), on loopback ports with its data in a
 * temporary directory and no requests to the internet. `fleet start
 * --forward-otlp` forwards to it; what Phoenix's own REST API shows must be
 * exactly the traces perpass kept, each with all its spans and the sampling
 * decision, and no passing trace the sampler dropped. Then Phoenix is
 * stopped for a while and started again: every trace kept meanwhile arrives
 * once it is back, none twice, and ingestion did not slow down while it was
 * away.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postFleet } from './support/otlp-fleet.ts';
import { freePort } from './support/polling.ts';
import { startFleet, type Child } from './support/processes.ts';
import { endpointRows, scrapedSum } from './support/readings.ts';
import { tempDir } from './support/store.ts';
import { pythonVenv } from './support/toolchains.ts';

const PHOENIX = 'arize-phoenix==20.26.1';

/** Phoenix's `serve` on loopback, its SQLite database and everything else in `workDir`; telemetry and external resources off. */
class Phoenix {
  private proc: ChildProcess | undefined;
  private output = '';
  readonly url: string;
  private readonly python: string;
  private readonly port: number;
  private readonly grpcPort: number;
  private readonly workDir: string;

  constructor(python: string, port: number, grpcPort: number, workDir: string) {
    this.python = python;
    this.port = port;
    this.grpcPort = grpcPort;
    this.workDir = workDir;
    this.url = `http://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    this.proc = spawn(this.python, ['-m', 'phoenix.server.main', 'serve'], {
      cwd: this.workDir,
      env: {
        ...process.env,
        PHOENIX_HOST: '127.0.0.1',
        PHOENIX_PORT: String(this.port),
        PHOENIX_GRPC_PORT: String(this.grpcPort),
        PHOENIX_WORKING_DIR: this.workDir,
        PHOENIX_TELEMETRY_ENABLED: 'false',
        PHOENIX_ALLOW_EXTERNAL_RESOURCES: 'false',
        HOME: this.workDir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (c: Buffer) => (this.output = (this.output + c.toString()).slice(-20_000));
    this.proc.stdout!.on('data', keep);
    this.proc.stderr!.on('data', keep);
    const deadline = Date.now() + 300_000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`phoenix exited (${this.proc.exitCode}):\n${this.output}`);
      const ok = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
      if (ok) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`phoenix not healthy within 300 s:\n${this.output}`);
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }

  /** Every span of the default project, through Phoenix's REST API (paged). */
  async spans(): Promise<PhoenixSpan[]> {
    const out: PhoenixSpan[] = [];
    let cursor: string | null = null;
    do {
      const url = new URL(`${this.url}/v1/projects/default/spans`);
      url.searchParams.set('limit', '1000');
      if (cursor) url.searchParams.set('cursor', cursor);
      const res = await fetch(url);
      if (res.status === 404) return out; // no project until the first span arrives
      if (!res.ok) throw new Error(`phoenix ${url}: HTTP ${res.status} ${await res.text()}`);
      const page = (await res.json()) as { data: PhoenixSpan[]; next_cursor: string | null };
      out.push(...page.data);
      cursor = page.next_cursor;
    } while (cursor);
    return out;
  }
}

interface PhoenixSpan {
  context: { trace_id: string; span_id: string };
  attributes: Record<string, unknown>;
}

let phoenix: Phoenix;
let fleet: Child;
let query: string;
let otlp: string;
let metricsUrl: string;

const sql = <T>(statement: string) => endpointRows<T>(query, statement);
/** A Prometheus sample of the running fleet start, summed over label sets containing `labels`. */
const metric = (name: string, labels: Record<string, string> = {}) => scrapedSum(metricsUrl, name, labels);

async function until<T>(what: string, read: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

interface KeptTrace {
  trace_id: string;
  spans: string[];
  reason: string;
  rate: number;
}

/** What the store says perpass kept, per trace (the spans table), for attempts whose spec ids start with `prefix`. */
async function keptInStore(prefix: string): Promise<Map<string, KeptTrace>> {
  const rows = await sql<KeptTrace>(
    `SELECT trace_id, groupArray(span_id) AS spans, any(sample_reason) AS reason, any(sampling_rate) AS rate FROM fleet.spans FINAL
     WHERE trace_id IN (SELECT trace_id FROM fleet.attempts FINAL WHERE startsWith(spec_id, '${prefix}')) GROUP BY trace_id`,
  );
  return new Map(rows.map((r) => [r.trace_id, r]));
}

async function attemptsInStore(prefix: string): Promise<{ trace_id: string; sampled: boolean; outcome: string }[]> {
  return sql(`SELECT trace_id, sampled, outcome FROM fleet.attempts FINAL WHERE startsWith(spec_id, '${prefix}')`);
}

/** Phoenix's spans grouped by trace id. */
function byTrace(spans: PhoenixSpan[]): Map<string, PhoenixSpan[]> {
  const out = new Map<string, PhoenixSpan[]>();
  for (const s of spans) {
    const list = out.get(s.context.trace_id);
    if (list) list.push(s);
    else out.set(s.context.trace_id, [s]);
  }
  return out;
}

/** Phoenix's spans of `runTraces` by trace, once it holds at least `keptSpans` of them (it ingests in the background). */
function phoenixTraces(runTraces: Set<string>, keptSpans: number): Promise<Map<string, PhoenixSpan[]>> {
  return until(
    `Phoenix to hold ${keptSpans} kept spans`,
    async () => byTrace((await phoenix.spans()).filter((s) => runTraces.has(s.context.trace_id))),
    (m) => [...m.values()].reduce((n, s) => n + s.length, 0) >= keptSpans,
    120_000,
  );
}

/** Phoenix holds exactly the kept traces of the run: same traces, same span ids, each span with its decision; no dropped trace. */
function expectExactlyKept(inPhoenix: Map<string, PhoenixSpan[]>, kept: Map<string, KeptTrace>, runTraces: Set<string>): void {
  const forwardedOfRun = [...inPhoenix.keys()].filter((t) => runTraces.has(t)).sort();
  expect(forwardedOfRun).toEqual([...kept.keys()].sort());
  for (const [traceId, k] of kept) {
    const spans = inPhoenix.get(traceId)!;
    expect(spans.map((s) => s.context.span_id).sort(), `spans of trace ${traceId}`).toEqual([...k.spans].sort());
    for (const s of spans) {
      expect(s.attributes['fleet.sampling.reason']).toBe(k.reason);
      expect(s.attributes['fleet.sampling.adjusted_count']).toBeCloseTo(1 / k.rate, 9);
    }
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

beforeAll(async () => {
  const python = await pythonVenv('phoenix', [PHOENIX]);
  const work = tempDir('phoenix');
  mkdirSync(path.join(work, 'home'), { recursive: true });
  phoenix = new Phoenix(python, await freePort(), await freePort(), work);
  await phoenix.start();
  fleet = startFleet([
    'start',
    '--data-dir',
    tempDir('forward-fleet'),
    '--collector-port',
    '0',
    '--query-port',
    '0',
    // the base URL: perpass adds /v1/traces, Phoenix's OTLP/HTTP path
    '--forward-otlp',
    phoenix.url,
    // the ingestion test keeps its decision windows short
    '--decision-wait-ms',
    '200',
  ]);
  const m = await fleet.waitFor(/OTLP\/HTTP (http:\/\/\S+?)\/v1\/traces · query (http:\/\/[\d.]+:\d+).*? · metrics (\S+)/);
  otlp = m[1]!;
  query = m[2]!;
  metricsUrl = m[3]!;
}, 900_000);

afterAll(async () => {
  await fleet?.kill();
  await phoenix?.stop();
});

describe('fleet start --forward-otlp → Arize Phoenix', () => {
  it('Phoenix shows exactly the traces perpass kept of the demo fleet, each whole, and no passing trace it sampled out', async () => {
    const demo = startFleet(['demo', '--endpoint', otlp, '--query-port', new URL(query).port]);
    const run = (await demo.waitFor(/of run (demo-[0-9a-f]+)/))[1]!;
    await demo.waitFor(/all \d+ attempts visible/, 300_000);
    expect(await demo.exited).toBe(0);

    const attempts = await attemptsInStore(run);
    const kept = await keptInStore(run);
    const dropped = attempts.filter((a) => !a.sampled);
    // the sampler made both decisions, so the check below means something
    expect(kept.size).toBeGreaterThan(0);
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped.every((a) => a.outcome === 'pass')).toBe(true);
    expect(new Set(attempts.filter((a) => a.sampled).map((a) => a.trace_id))).toEqual(new Set(kept.keys()));

    const keptSpans = [...kept.values()].reduce((n, k) => n + k.spans.length, 0);
    const runTraces = new Set(attempts.map((a) => a.trace_id));
    const inPhoenix = await phoenixTraces(runTraces, keptSpans);
    expectExactlyKept(inPhoenix, kept, runTraces);
    for (const a of dropped) expect(inPhoenix.has(a.trace_id), `sampled-out passing trace ${a.trace_id}`).toBe(false);

    // every attempt's spans: itself, its LLM calls and its tool calls
    const [received] = await sql<{ spans: string }>(`SELECT sum(1 + llm_calls + tool_calls) AS spans FROM fleet.attempts FINAL WHERE startsWith(spec_id, '${run}')`);
    console.log(
      `demo fleet: ${attempts.length} traces (${received!.spans} spans) received, ${kept.size} traces (${keptSpans} spans) forwarded: ` +
        `${((1 - kept.size / attempts.length) * 100).toFixed(1)} % fewer traces, ${((1 - keptSpans / Number(received!.spans)) * 100).toFixed(1)} % fewer spans`,
    );
    expect(await metric('fleet_forward_sent_spans_total')).toBe(keptSpans);
    expect(await metric('fleet_forward_dropped_spans_total')).toBe(0);
  }, 600_000);

  it('Phoenix stopped for a while and restarted: every trace kept meanwhile arrives once, and ingestion did not slow down', async () => {
    const sentBefore = await metric('fleet_forward_sent_spans_total');
    const up = await postFleet(otlp, 101, 'fault-up');
    await until('the first fleet forwarded', () => metric('fleet_forward_queue_spans'), (n) => n === 0, 60_000);
    await until('the first fleet stored', async () => (await attemptsInStore('fault-up')).length, (n) => n === up.attempts, 60_000);

    await phoenix.stop();
    const storedBefore = Date.now();
    const down = await postFleet(otlp, 202, 'fault-down');
    // the store is not held up by the backend: the whole fleet is there, decided
    await until('the second fleet stored', async () => (await attemptsInStore('fault-down')).length, (n) => n === down.attempts, 60_000);
    const storeMs = Date.now() - storedBefore;
    await fleet.waitFor(/forward to http:\/\/127\.0\.0\.1:\d+\/v1\/traces: backend unavailable/, 30_000);
    expect(await metric('fleet_forward_up')).toBe(0);
    const waiting = await until('kept spans waiting for the backend', () => metric('fleet_forward_queue_spans'), (n) => n > 0, 30_000);
    // a while longer down: retries go on with backoff
    await new Promise((r) => setTimeout(r, 5_000));
    expect(await metric('fleet_forward_retries_total', { reason: 'network' })).toBeGreaterThan(0);

    await phoenix.start();
    await fleet.waitFor(/backend back after \d+ s/, 60_000);
    await until('the queue to drain', () => metric('fleet_forward_queue_spans'), (n) => n === 0, 120_000);

    const downAttempts = await attemptsInStore('fault-down');
    const kept = await keptInStore('fault-down');
    expect(kept.size).toBeGreaterThan(0);
    const keptSpans = [...kept.values()].reduce((n, k) => n + k.spans.length, 0);
    expect(waiting).toBeLessThanOrEqual(keptSpans);
    const runTraces = new Set(downAttempts.map((a) => a.trace_id));
    const inPhoenix = await phoenixTraces(runTraces, keptSpans);
    expectExactlyKept(inPhoenix, kept, runTraces);

    // none twice: Phoenix keeps one row per span id whatever it is sent, so count what the backend acknowledged
    const upKept = [...(await keptInStore('fault-up')).values()].reduce((n, k) => n + k.spans.length, 0);
    expect((await metric('fleet_forward_sent_spans_total')) - sentBefore).toBe(upKept + keptSpans);
    expect(await metric('fleet_forward_dropped_spans_total')).toBe(0);

    // ingestion while the backend was down answered as fast as while it was up: waiting on the backend would
    // cost backoff delays or request timeouts (0.5 s to 10 s); the slack is for a shared, loaded machine
    const [upMs, downMs] = [median(up.latencies), median(down.latencies)];
    console.log(`OTLP request latency, median of ${up.latencies.length}: ${upMs.toFixed(1)} ms with Phoenix up, ${downMs.toFixed(1)} ms with it down; fleet stored in ${storeMs} ms while down`);
    expect(downMs).toBeLessThanOrEqual(upMs * 3 + 100);
  }, 600_000);
});
