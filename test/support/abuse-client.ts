/**
 * The well-behaved client of the abuse suite, in a process of its own so
 * the attacks' work never delays its measurements: it sends one attempt
 * every `everyMs` (its own tenant's token), probes /healthz every
 * `healthEveryMs`, and polls v_cost_per_pass for its attempts every second;
 * after `durationMs` it keeps polling until its acknowledged attempts are
 * all visible (or `freshnessMs` more passed), then prints one line
 * `RESULT {json}` and exits.
 *
 *   node test/support/abuse-client.ts '{"otlp":"http://127.0.0.1:4318","query":"http://127.0.0.1:8123","token":"…","canary":"…","everyMs":200,"durationMs":10000,"healthEveryMs":100,"freshnessMs":5000}'
 */
import { attemptRequest } from './abuse.ts';

interface Args {
  otlp: string;
  query: string;
  token?: string;
  canary: string;
  everyMs: number;
  durationMs: number;
  healthEveryMs: number;
  freshnessMs: number;
}

const a = JSON.parse(process.argv[2]!) as Args;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const started = Date.now();
const postLatencies: number[] = [];
const postFailures: string[] = [];
const acks: number[] = [];
const health: number[] = [];
const healthFailures: string[] = [];
/** (time, attempts visible in v_cost_per_pass) per poll. */
const polls: [number, number][] = [];
let sending = true;

async function post(i: number): Promise<void> {
  const body = attemptRequest(a.canary, `${a.canary}-${i}`);
  const t0 = performance.now();
  try {
    const res = await fetch(`${a.otlp}/v1/traces`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-protobuf', ...(a.token && { Authorization: `Bearer ${a.token}` }) },
      body,
      signal: AbortSignal.timeout(10_000),
    });
    await res.arrayBuffer();
    postLatencies.push(performance.now() - t0);
    if (res.status === 200) acks.push(Date.now());
    else postFailures.push(`#${i}: HTTP ${res.status} ${res.headers.get('retry-after') ?? ''}`);
  } catch (err) {
    postLatencies.push(performance.now() - t0);
    postFailures.push(`#${i}: ${(err as Error).message} ${String((err as { cause?: Error }).cause?.message ?? '')}`);
  }
}

async function sendLoop(): Promise<void> {
  const posts: Promise<void>[] = [];
  for (let i = 0; Date.now() - started < a.durationMs; i++) {
    posts.push(post(i));
    await sleep(a.everyMs);
  }
  await Promise.all(posts);
  sending = false;
}

async function healthLoop(): Promise<void> {
  while (sending) {
    const t0 = performance.now();
    try {
      const res = await fetch(`${a.otlp}/healthz`, { signal: AbortSignal.timeout(5_000) });
      await res.text();
      health.push(performance.now() - t0);
      if (res.status !== 200) healthFailures.push(`HTTP ${res.status}`);
    } catch (err) {
      health.push(performance.now() - t0);
      healthFailures.push((err as Error).message);
    }
    await sleep(a.healthEveryMs);
  }
}

async function visible(): Promise<number> {
  const sql = `SELECT toUInt64(sum(attempts)) FROM fleet.v_cost_per_pass WHERE canary = '${a.canary}' FORMAT TSV`;
  const res = await fetch(`${a.query}/?query=${encodeURIComponent(sql)}`, { signal: AbortSignal.timeout(5_000) });
  const text = (await res.text()).trim();
  if (res.status !== 200) throw new Error(`query endpoint HTTP ${res.status}: ${text}`);
  return Number(text);
}

async function pollLoop(): Promise<void> {
  for (;;) {
    try {
      polls.push([Date.now(), await visible()]);
    } catch (err) {
      healthFailures.push(`query: ${(err as Error).message}`);
    }
    const done = !sending && polls.length > 0 && polls.at(-1)![1] >= acks.length;
    if (done || (!sending && Date.now() - started > a.durationMs + a.freshnessMs + 5_000)) return;
    await sleep(1_000);
  }
}

await Promise.all([sendLoop(), healthLoop(), pollLoop()]);

// Freshness: at every poll, every attempt acknowledged freshnessMs or more before it must be visible.
const stale: string[] = [];
for (const [t, n] of polls) {
  const due = acks.filter((ack) => ack <= t - a.freshnessMs).length;
  if (n < due) stale.push(`at +${t - started} ms: ${n} visible, ${due} acknowledged more than ${a.freshnessMs} ms before`);
}
const sorted = [...postLatencies].sort((x, y) => x - y);
const p99 = sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]! : 0;
const result = {
  posts: postLatencies.length,
  acked: acks.length,
  postFailures,
  p99Ms: Math.round(p99),
  healthProbes: health.length,
  healthMaxMs: Math.round(Math.max(0, ...health)),
  healthOver250: health.filter((h) => h >= 250).length,
  healthFailures,
  visibleAtEnd: polls.at(-1)?.[1] ?? 0,
  stale,
};
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
process.exit(0);
