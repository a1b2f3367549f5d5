/**
 * Nothing acknowledged is ever lost, tried on the real process: `fleet
 * start` as a child, a client that re-sends whatever was not answered 200
 * (as an OTLP exporter does), and
 *
 * - SIGKILL at seeded random instants, some of them aimed from outside at
 *   an fsync of the durable queue or a chDB part being written (and checked
 *   to have landed there), restarting on the same data directory each time;
 * - SIGTERM while a large backlog replays: exit within --shutdown-timeout;
 *   a second signal: exit at once;
 * - a queue at --queue-max-bytes: 503 + Retry-After until there is room;
 * - a queue whose last record is torn and one with a corrupt record in the
 *   middle, written by the test.
 *
 * Each ends with v_cost_per_pass equal to the hand computation over what was
 * acknowledged, to the last decimal, nothing counted twice.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeMessage } from '../bus/durable.ts';
import { MemoryBus } from '../bus/memory.ts';
import type { BusMessage } from '../bus/types.ts';
import { prng, type PlannedAttempt } from '../demo/plan.ts';
import { QUEUE_PARTITIONS, queueDir } from '../embedded/all-in-one.ts';
import { encodeTraceRequest } from '../otlp/codec.ts';
import { expectedCostPerPass, loadCards } from './support/ground-truth.ts';
import { fleetPlan } from './support/fleet-plan.ts';
import { AckingClient, requestsOf } from './support/acking-client.ts';
import { attemptSpans, fleetMessages, traceRequest } from './support/otlp-fleet.ts';
import { startFleet, startNode, type Child } from './support/processes.ts';
import { tempDir } from './support/store.ts';

const cards = loadCards();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children: Child[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) await c.kill('SIGKILL');
});

interface Running {
  child: Child;
  otlp: string;
  query: string;
}

async function boot(dataDir: string, extra: string[] = []): Promise<Running> {
  const child = startFleet(['start', '--data-dir', dataDir, '--collector-port', '0', '--query-port', '0', '--decision-wait-ms', '200', ...extra]);
  children.push(child);
  const m = await child.waitFor(/OTLP\/HTTP (http:\/\/\S+?\/v1\/traces) · query (http:\/\/[\d.]+:\d+)/, 120_000);
  // the line after which its signal handlers are installed
  await child.waitFor(/try: fleet demo/);
  return { child, otlp: m[1]!, query: m[2]! };
}

async function storeClient(query: string): Promise<ClickHouseClient> {
  // counts as JSON numbers (the endpoint quotes 64-bit integers by default, as a server does)
  return createClient({ url: query, log: { level: ClickHouseLogLevel.OFF }, clickhouse_settings: { output_format_json_quote_64bit_integers: 0 } });
}

/** Waits until the tenant's attempts are all in v_cost_per_pass, then returns its rows. */
async function costPerPass(ch: ClickHouseClient, tenant: string, attempts: number): Promise<unknown[]> {
  const read = async () =>
    (await ch.query({
      query: 'SELECT tenant, model, spec_tier, canary, variant, attempts, passes, unpriced_attempts, cost_usd, cost_per_pass FROM fleet.v_cost_per_pass WHERE tenant = {t:String}',
      query_params: { t: tenant },
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_decimals: 1 },
    }).then((r) => r.json<{ attempts: number }>()));
  const deadline = Date.now() + 90_000;
  let rows = await read();
  while (rows.reduce((n, r) => n + Number(r.attempts), 0) < attempts && Date.now() < deadline) {
    await sleep(250);
    rows = await read();
  }
  return rows;
}

/** Waits for `plan`'s attempts in v_cost_per_pass, then checks every row against the hand computation. */
async function expectExact(ch: ClickHouseClient, tenant: string, plan: PlannedAttempt[]): Promise<void> {
  const got = (await costPerPass(ch, tenant, plan.length)) as { model: string; spec_tier: string }[];
  expect(got.sort(byCell)).toEqual(expectedCostPerPass(cards, plan).sort(byCell));
}

/** Writes `plan` into the durable queue of `dataDir` as a fleet start would have acknowledged it (each attempt in two messages, shuffled). */
async function queueBacklog(dataDir: string, plan: PlannedAttempt[], seed: number): Promise<BusMessage[]> {
  const bus = await MemoryBus.open({ dir: queueDir(dataDir), topics: ['otlp_spans'], partitions: QUEUE_PARTITIONS });
  const messages = fleetMessages(plan, prng(seed), 2);
  for (let i = 0; i < messages.length; i += 100) await bus.publisher().publish('otlp_spans', messages.slice(i, i + 100));
  await bus.shutdown();
  return messages;
}

const byCell = (x: { model: string; spec_tier: string }, y: typeof x) => (`${x.model}|${x.spec_tier}` < `${y.model}|${y.spec_tier}` ? -1 : 1);

describe('fleet start: nothing acknowledged is ever lost', () => {
  it('survives 12 SIGKILLs at seeded random instants (some during an fsync of the queue, some during a chDB insert), restarting each time', async () => {
    const seed = 1607;
    const rand = prng(seed);
    const tenant = 'crash-kill';
    const plan = fleetPlan(tenant, 60, seed);
    const requests = requestsOf(plan, tenant);
    const dataDir = tempDir('crash-kill');
    // paced so that traffic flows through at least the aimed kills, however fast the machine (≥ 250 requests × 150 ms ÷ 2)
    const client = new AckingClient(requests, 2, 150);
    // 12 kills: random instants, two aimed at an fsync of the queue and two at a chDB insert (early, while traffic flows).
    const aims = ['fsync', 'random', 'insert', 'random', 'fsync', 'insert', 'random', 'random', 'random', 'random', 'random', 'random'] as const;
    const landed: { kill: number; phase: string; evidence?: string; ackedBefore: number }[] = [];
    for (const [k, aim] of aims.entries()) {
      const { child, otlp } = await boot(dataDir);
      client.url = otlp;
      await sleep(300 + Math.floor(rand() * 1700));
      const pid = child.proc.pid!;
      let phase = 'random';
      let evidence: string | undefined;
      if (aim !== 'random') {
        const target = aim === 'fsync' ? queueDir(dataDir) : path.resolve(dataDir);
        const watcher = startNode('test/support/kill-in-phase.ts', [String(pid), aim, target, '6000']);
        const result = JSON.parse((await watcher.waitFor(/^\{.*\}$/m, 20_000))[0]) as { landed: boolean; evidence?: string };
        if (result.landed) {
          phase = aim;
          evidence = result.evidence;
        }
      }
      await child.kill('SIGKILL');
      client.url = undefined;
      // a chDB part still half written after the process is gone: the kill landed inside the insert
      if (phase === 'insert' && !existsSync(evidence!)) phase = 'random (insert finished first)';
      landed.push({ kill: k + 1, phase, ...(evidence && { evidence }), ackedBefore: client.acked.size });
    }
    expect(landed.filter((l) => l.phase === 'fsync').length, JSON.stringify(landed, null, 1)).toBeGreaterThanOrEqual(1);
    expect(landed.filter((l) => l.phase === 'insert').length, JSON.stringify(landed, null, 1)).toBeGreaterThanOrEqual(1);

    // what a kill inside a binary insert leaves in the store's spool (a file of rows no insert read yet), planted once for certain
    const spool = path.join(dataDir, 'insert-spool');
    const leftover = path.join(spool, 'spans-999999-1.bin');
    writeFileSync(leftover, Buffer.alloc(64));
    const last = await boot(dataDir);
    client.url = last.otlp;
    await client.done;
    expect(client.acked.size).toBe(requests.length);
    // the restart removed what the killed processes left in the spool
    expect(existsSync(leftover)).toBe(false);
    // requests were acknowledged before kills that came after them: they must have survived those
    expect(landed.filter((l) => l.ackedBefore > 0).length).toBeGreaterThanOrEqual(10);

    const ch = await storeClient(last.query);
    try {
      await expectExact(ch, tenant, plan);
      const [dup] = await (await ch.query({ query: 'SELECT count() AS rows, uniqExact(attempt_id) AS ids FROM fleet.attempts FINAL WHERE tenant = {t:String}', query_params: { t: tenant }, format: 'JSONEachRow' })).json<{ rows: string; ids: string }>();
      expect(Number(dup!.rows)).toBe(plan.length);
      expect(Number(dup!.ids)).toBe(plan.length);
    } finally {
      await ch.close();
    }
    console.log(`crash test: ${JSON.stringify(landed)}; client answers ${JSON.stringify(Object.fromEntries(client.statuses))}`);
  }, 420_000);

  it('exits within --shutdown-timeout on SIGTERM while a large backlog replays, answering 503 + Retry-After meanwhile; nothing lost after restart', async () => {
    const seed = 2207;
    const tenant = 'crash-term';
    const backlog = fleetPlan(tenant, 200, seed);
    const live = fleetPlan(`${tenant}-live`, 10, seed + 1);
    const dataDir = tempDir('crash-term');
    // The backlog: acknowledged earlier by a fleet start that died before its consumers got to it.
    const messages = await queueBacklog(dataDir, backlog, seed);

    const first = await boot(dataDir, ['--shutdown-timeout', '2']);
    expect(first.child.output()).toMatch(new RegExp(`durable queue .*: ${messages.length} message\\(s\\) not yet in the store \\(replaying them now\\)`));
    const client = new AckingClient(requestsOf(live, `${tenant}-live`), 2, 30);
    client.url = first.otlp;
    await sleep(800);
    const t0 = performance.now();
    first.child.proc.kill('SIGTERM');
    // while it drains, a new request is refused with 503 + Retry-After (not a connection error)
    let refusal: { status: number; retryAfter: string | null } | undefined;
    while (!refusal && first.child.proc.exitCode === null && first.child.proc.signalCode === null) {
      try {
        const res = await fetch(first.otlp, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"resourceSpans":[]}', signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status !== 200) refusal = { status: res.status, retryAfter: res.headers.get('retry-after') };
      } catch {
        // not answering yet (busy) or gone
      }
      await sleep(50);
    }
    const code = await first.child.exited;
    const took = performance.now() - t0;
    expect(took, first.child.output()).toBeLessThan(2000 + 2000);
    if (code === 0) {
      // a fast machine drained it all in time
      expect(first.child.output()).toMatch(/stopped; everything accepted is written/);
    } else {
      // out of time: ended by SIGTERM's default action (no exit handlers), as a second signal would
      expect(code).toBe('SIGTERM');
      expect(first.child.output()).toMatch(/shutdown timeout: \d+ message\(s\) stay in the durable queue/);
    }
    expect(refusal).toEqual({ status: 503, retryAfter: '1' });
    client.url = undefined;

    const second = await boot(dataDir);
    client.url = second.otlp;
    await client.done;
    const ch = await storeClient(second.query);
    try {
      await expectExact(ch, tenant, backlog);
      await expectExact(ch, `${tenant}-live`, live);
    } finally {
      await ch.close();
    }
    console.log(`SIGTERM with ${messages.length} messages queued: exited in ${Math.round(took)} ms; client answers ${JSON.stringify(Object.fromEntries(client.statuses))}\n${first.child.output()}`);
  }, 300_000);

  it('exits at once on a second signal (SIGTERM, then SIGINT) and still loses nothing', async () => {
    const tenant = 'crash-twice';
    const plan = fleetPlan(tenant, 60, 77);
    const dataDir = tempDir('crash-twice');
    await queueBacklog(dataDir, plan, 77);
    const first = await boot(dataDir);
    first.child.proc.kill('SIGTERM');
    await first.child.waitFor(/SIGTERM: shutting down within 10 s/);
    const t0 = performance.now();
    first.child.proc.kill('SIGINT');
    expect(await first.child.exited).toBe('SIGINT');
    // no exit handlers, no drain: gone within moments, not the 10 s the first signal allowed
    expect(performance.now() - t0).toBeLessThan(2000);
    const second = await boot(dataDir);
    const ch = await storeClient(second.query);
    try {
      await expectExact(ch, tenant, plan);
    } finally {
      await ch.close();
    }
  }, 240_000);

  it('at --queue-max-bytes refuses whole requests with 503 + Retry-After (never a silent drop), and takes them once the consumers made room', async () => {
    const tenant = 'crash-full';
    const backlog = fleetPlan(tenant, 40, 91);
    const late = fleetPlan(`${tenant}-late`, 2, 92);
    const dataDir = tempDir('crash-full');
    await queueBacklog(dataDir, backlog, 91);
    const running = await boot(dataDir, ['--queue-max-bytes', String(1024 * 1024)]);
    const [body] = requestsOf(late, `${tenant}-late`);
    const post = () => fetch(running.otlp, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: body!, signal: AbortSignal.timeout(30_000) });
    // the replayed backlog alone is past the bound
    const full = await post();
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await full.text()).toMatch(/queue full \(\d+ of 1048576 bytes/);
    expect((await fetch(running.otlp.replace('/v1/traces', '/readyz'))).status).toBe(503);
    // as an exporter would: retry until taken
    const client = new AckingClient(requestsOf(late, `${tenant}-late`), 1, 0);
    client.url = running.otlp;
    await client.done;
    expect(client.statuses.get('503')).toBeGreaterThanOrEqual(1);
    const ch = await storeClient(running.query);
    try {
      await expectExact(ch, tenant, backlog);
      await expectExact(ch, `${tenant}-late`, late);
    } finally {
      await ch.close();
    }
  }, 240_000);

  it('starts on a queue with a torn last record and a corrupt record in the middle, naming what it dropped', async () => {
    const tenant = 'crash-torn';
    const plan = fleetPlan(tenant, 2, 31);
    const dataDir = tempDir('crash-torn');
    const dir = queueDir(dataDir);
    const bus = await MemoryBus.open({ dir, topics: ['otlp_spans'], partitions: QUEUE_PARTITIONS });
    // one message per attempt, each attempt's spans whole
    await bus.publisher().publish('otlp_spans', plan.map((a) => ({ key: a.traceId, value: encodeTraceRequest(traceRequest(attemptSpans(a), tenant)) })));
    await bus.shutdown();

    /** The records of a segment file, parsed as the format says: u32 length, u32 crc, u64 offset, payload. */
    const records = (file: string) => {
      const buf = readFileSync(file);
      const out: { at: number; len: number; key: string }[] = [];
      for (let at = 0; at < buf.length; ) {
        const len = buf.readUInt32LE(at);
        out.push({ at, len, key: decodeMessage(buf.subarray(at + 16, at + 16 + len)).key });
        at += 16 + len;
      }
      return { buf, out };
    };
    const segmentOf = (p: number) => {
      const d = path.join(dir, 'otlp_spans', String(p));
      return path.join(d, readdirSync(d).find((n) => n.endsWith('.seg'))!);
    };
    const [torn, corrupt] = [0, 1].map(segmentOf) as [string, string];
    const a = records(torn);
    const lastOfTorn = a.out.at(-1)!;
    writeFileSync(torn, a.buf.subarray(0, a.buf.length - 7)); // the last write cut short
    const b = records(corrupt);
    expect(b.out.length).toBeGreaterThanOrEqual(3);
    const middle = b.out[1]!;
    b.buf[middle.at + 16 + Math.floor(middle.len / 2)]! ^= 0x5a; // one bit pattern flipped inside its payload
    writeFileSync(corrupt, b.buf);

    const running = await boot(dataDir);
    const out = running.child.output();
    expect(out).toMatch(new RegExp(`otlp_spans/0: segment 0+\\.seg: dropped ${lastOfTorn.len + 16 - 7} bytes at byte ${lastOfTorn.at} after offset ${a.out.length - 2}`));
    expect(out).toMatch(new RegExp(`otlp_spans/1: segment 0+\\.seg: skipped ${middle.len + 16} corrupt bytes at byte ${middle.at}: offsets 1\\.\\.1 are lost`));
    const lost = new Set([lastOfTorn.key, middle.key]);
    const kept = plan.filter((p) => !lost.has(p.traceId));
    expect(kept.length).toBe(plan.length - 2);
    const ch = await storeClient(running.query);
    try {
      await expectExact(ch, tenant, kept);
    } finally {
      await ch.close();
    }
  }, 180_000);
});
