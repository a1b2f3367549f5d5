/**
 * Ingest under abuse: each attack runs against a child `fleet start` (auth
 * on, two tenants, a configured memory budget) while a well-behaved client
 * of the other tenant sends one attempt every 200 ms from its own process,
 * and for each attack: its posts keep succeeding (p99 < 1 s), its attempts
 * are in v_cost_per_pass within 5 s, /healthz answers within 250 ms
 * throughout, the server's RSS stays under its memory budget, and the
 * server is alive afterwards. Traffic to 127.0.0.1 only.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  batchRequest,
  connectionFlood,
  minimalSpansRequest,
  nestedJsonRequest,
  nestedProtobufRequest,
  rawPost,
  slowBodies,
  slowHeaders,
  type Target,
} from './support/abuse.ts';
import { startFleet, startNode, type Child } from './support/processes.ts';

const MiB = 1024 * 1024;
const BUDGET = 1280 * MiB;
const MAX_CONNECTIONS = 200;
const GOOD = { token: 'good-token-0123456789', tenant: 'good' };
const NOISY = { token: 'noisy-token-0123456789', tenant: 'noisy' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ClientResult {
  posts: number;
  acked: number;
  postFailures: string[];
  p99Ms: number;
  healthProbes: number;
  healthMaxMs: number;
  healthOver250: number;
  healthFailures: string[];
  visibleAtEnd: number;
  stale: string[];
}

let fleet: Child;
let dir: string;
let target: Target;
let otlp: string;
let query: string;
let rssPeak = 0;
let rssTimer: NodeJS.Timeout;

const rssOf = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
};

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'perpass-abuse-'));
  fleet = startFleet([
    'start',
    '--data-dir', path.join(dir, 'data'),
    '--collector-port', '0',
    '--query-port', '0',
    '--auth-tokens', `${GOOD.token}=${GOOD.tenant},${NOISY.token}=${NOISY.tenant}`,
    '--memory-budget-bytes', String(BUDGET),
    // Small enough that a flood queued ahead of the good tenant drains in well under the 5 s freshness target.
    '--queue-bytes', String(2 * MiB),
    '--max-connections', String(MAX_CONNECTIONS),
    '--headers-timeout-ms', '2000',
    '--body-timeout-ms', '20000',
  ]);
  const m = await fleet.waitFor(/OTLP\/HTTP (http:\/\/127\.0\.0\.1:(\d+))\/v1\/traces · query (http:\/\/127\.0\.0\.1:\d+)/, 120_000);
  otlp = m[1]!;
  target = { host: '127.0.0.1', port: Number(m[2]) };
  query = m[3]!;
  const pid = fleet.proc.pid!;
  rssTimer = setInterval(() => {
    try {
      rssPeak = Math.max(rssPeak, rssOf(pid));
    } catch {
      // exited: the alive check says so
    }
  }, 100);
}, 180_000);

afterAll(async () => {
  clearInterval(rssTimer);
  await fleet?.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs `attack` while the well-behaved client sends for `durationMs`, then
 * checks everything the issue asks of the good client and the server.
 */
/** The server's own event-loop delay (max, seconds) since the last scrape: prom-client resets it on every scrape. */
const loopLagMax = async (): Promise<number> => {
  const m = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(await (await fetch(`${otlp}/metrics`)).text());
  return m ? Number(m[1]) : Number.NaN;
};

async function underAttack<R>(name: string, durationMs: number, attack: () => Promise<R>): Promise<R> {
  rssPeak = 0;
  await loopLagMax();
  const client = startNode('test/support/abuse-client.ts', [
    JSON.stringify({ otlp, query, token: GOOD.token, canary: `abuse-${name}-${Date.now()}`, everyMs: 200, durationMs, healthEveryMs: 100, freshnessMs: 5_000 }),
  ]);
  await sleep(300);
  const outcome = await attack();
  const line = await client.waitFor(/RESULT (.*)/, durationMs + 60_000);
  const r = JSON.parse(line[1]!) as ClientResult;
  // For the failure message: whether a slow answer was the server's event loop or the machine (uptime's load).
  const diagnostics = { rssPeakMiB: Math.round(rssPeak / MiB), serverLoopLagMaxMs: Math.round((await loopLagMax()) * 1000), load: os.loadavg().map((l) => l.toFixed(1)) };
  const context = `${name}: ${JSON.stringify({ ...r, ...diagnostics, outcome }).slice(0, 2000)}`;
  expect(r.posts, context).toBeGreaterThan(durationMs / 200 / 2);
  expect(r.postFailures, context).toEqual([]);
  expect(r.p99Ms, context).toBeLessThan(1_000);
  expect(r.stale, context).toEqual([]);
  expect(r.visibleAtEnd, context).toBe(r.acked);
  expect(r.healthFailures, context).toEqual([]);
  expect(r.healthMaxMs, context).toBeLessThan(250);
  expect(rssPeak, context).toBeGreaterThan(0);
  expect(rssPeak, context).toBeLessThan(BUDGET);
  // Alive afterwards.
  expect(fleet.proc.exitCode, context).toBeNull();
  expect((await fetch(`${otlp}/healthz`)).status, context).toBe(200);
  return outcome;
}

const post = (body: Uint8Array, token: string) =>
  fetch(`${otlp}/v1/traces`, { method: 'POST', headers: { 'Content-Type': 'application/x-protobuf', Authorization: `Bearer ${token}` }, body, signal: AbortSignal.timeout(30_000) });

describe('ingest under abuse (child fleet start, auth on, memory budget 1.25 GiB)', () => {
  it('slow bodies: 5 uploads declaring 64 MiB and sending a byte every 5 s are cut with 408, holding only what they sent', async () => {
    const { outcomes } = await underAttack('slow-bodies', 8_000, () =>
      slowBodies(target, { connections: 5, declaredBytes: 64 * MiB, everyMs: 5_000, durationMs: 8_000, token: NOISY.token }),
    );
    expect(outcomes).toEqual({ 408: 5 });
  });

  it('slow headers: 20 requests whose headers trickle in are cut by the headers timeout', async () => {
    const { outcomes } = await underAttack('slow-headers', 8_000, () => slowHeaders(target, { connections: 20, everyMs: 100, durationMs: 7_000 }));
    // Node answers 408 when the headers timeout passes; nothing is left hanging until the attacker gives up.
    expect(outcomes).toEqual({ 408: 20 });
  });

  it('20 giant requests in a row (1 M minimal spans, ~45 MiB each) are refused with 413 naming the span cap, off the event loop', async () => {
    const giant = minimalSpansRequest(1_000_000);
    expect(giant.length).toBeGreaterThan(40 * MiB);
    const statuses = await underAttack('giants', 15_000, async () => {
      const out: (number | undefined)[] = [];
      for (let i = 0; i < 20; i++) out.push(await rawPost(target, giant, { token: NOISY.token }));
      return out;
    });
    expect(statuses).toEqual(Array(20).fill(413));
    // The refusal says why.
    const res = await fetch(`${otlp}/v1/traces`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${NOISY.token}` },
      body: JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: Array(100_001).fill({}) }] }] }),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { message: string }).message).toMatch(/request holds more than 100000 spans, the limit per request/);
  });

  it('a connection flood to the cap: idle connections are evicted for new ones, the good client keeps connecting', async () => {
    const flood = await underAttack('connection-flood', 8_000, () => connectionFlood(target, { connections: MAX_CONNECTIONS, durationMs: 7_000 }));
    expect(flood.opened).toBeGreaterThanOrEqual(MAX_CONNECTIONS);
    // The server closed flood connections (evicted for the good client's, or past the headers timeout) rather than the good client's.
    expect(flood.closedByServer).toBeGreaterThan(0);
    const metrics = await (await fetch(`${otlp}/metrics`)).text();
    expect(metrics).toMatch(/fleet_collector_connections_closed_total\{reason="evicted"\} [1-9]/);
  });

  it('deeply nested AnyValues, in JSON and in protobuf, are rejected with 400 naming the nesting', async () => {
    const results = await underAttack('nested', 6_000, async () => {
      const out: { status: number; message: string }[] = [];
      for (let i = 0; i < 10; i++) {
        for (const [body, contentType] of [
          [nestedJsonRequest(20_000), 'application/json'],
          [nestedProtobufRequest(20_000), 'application/x-protobuf'],
        ] as const) {
          const res = await fetch(`${otlp}/v1/traces`, { method: 'POST', headers: { 'Content-Type': contentType, Authorization: `Bearer ${NOISY.token}` }, body });
          const text = contentType === 'application/json' ? ((await res.json()) as { message: string }).message : Buffer.from(await res.arrayBuffer()).toString('latin1');
          out.push({ status: res.status, message: text });
        }
      }
      return out;
    });
    for (const r of results) {
      expect(r.status, r.message).toBe(400);
      expect(r.message).toMatch(/nested deeper than/);
    }
  });

  it('one tenant flooding at 10× the other’s rate gets 429s; the other keeps getting 200s and fresh results', async () => {
    // Bodies made beforehand and cycled, so making them does not take the CPU the server needs (the consumers deduplicate the repeats).
    const bodies = Array.from({ length: 20 }, (_, i) => batchRequest('abuse-flood', `flood-${i}`, 100, 4));
    const statuses = await underAttack('tenant-flood', 10_000, async () => {
      const out: Record<number, number> = {};
      const until = Date.now() + 9_000;
      const inFlight: Promise<void>[] = [];
      // 10× the good client's 5 requests/s, each of 100 attempts × 5 spans (~75 KiB).
      for (let i = 0; Date.now() < until; i++) {
        inFlight.push(
          post(bodies[i % bodies.length]!, NOISY.token).then(
            async (res) => {
              await res.arrayBuffer();
              out[res.status] = (out[res.status] ?? 0) + 1;
            },
            () => {
              out[0] = (out[0] ?? 0) + 1;
            },
          ),
        );
        await sleep(20);
      }
      await Promise.all(inFlight);
      return out;
    });
    expect(statuses[429], JSON.stringify(statuses)).toBeGreaterThan(0);
  });
});
