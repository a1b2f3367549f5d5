/**
 * The memory benchmark's overloads: the abuse suite's attacks
 * (test/support/abuse.ts) against one `fleet start` with auth on and a
 * configured memory budget, RSS sampled every 250 ms; reports each
 * attack's peak RSS against the budget, and what the attacks were answered.
 */
import { RssSampler, round } from './lib/common.ts';
import { spawnFleet, stop, tempDir, type Child } from './lib/child.ts';
import { batchRequest, connectionFlood, minimalSpansRequest, nestedJsonRequest, nestedProtobufRequest, rawPost, slowBodies, slowHeaders, type Target } from '../test/support/abuse.ts';

export const ABUSE_PHASES = ['slow-bodies', 'slow-headers', 'giants', 'connection-flood', 'tenant-flood', 'nested'] as const;
type AbusePhase = (typeof ABUSE_PHASES)[number];
export const isAbusePhase = (p: string): p is AbusePhase => (ABUSE_PHASES as readonly string[]).includes(p);

const MiB = 2 ** 20;
const NOISY = 'bench-noisy-token-0123';
const GOOD = 'bench-good-token-01234';
const MAX_CONNECTIONS = 200;

interface Options {
  phases: AbusePhase[];
  phaseS: number;
  smoke: boolean;
  budgetMiB: number;
  log: (m: string) => void;
}

const tally = (codes: (number | undefined)[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const c of codes) out[c ?? 'closed'] = (out[c ?? 'closed'] ?? 0) + 1;
  return out;
};

async function attack(phase: AbusePhase, t: Target, otlp: string, o: Options): Promise<unknown> {
  const ms = o.phaseS * 1000;
  switch (phase) {
    case 'slow-bodies':
      return slowBodies(t, { connections: 5, declaredBytes: 64 * MiB, everyMs: 5_000, durationMs: ms, token: NOISY });
    case 'slow-headers':
      return slowHeaders(t, { connections: 20, everyMs: 100, durationMs: ms });
    case 'giants': {
      const giant = minimalSpansRequest(1_000_000);
      const out: (number | undefined)[] = [];
      for (let i = 0; i < (o.smoke ? 2 : 20); i++) out.push(await rawPost(t, giant, { token: NOISY }));
      return tally(out);
    }
    case 'connection-flood':
      return connectionFlood(t, { connections: MAX_CONNECTIONS, durationMs: ms });
    case 'tenant-flood': {
      const bodies = Array.from({ length: 20 }, (_, i) => batchRequest('bench-flood', `flood-${i}`, 100, 4));
      const codes: (number | undefined)[] = [];
      const inFlight: Promise<void>[] = [];
      for (let i = 0, until = Date.now() + ms; Date.now() < until; i++) {
        const token = i % 11 === 0 ? GOOD : NOISY; // the other tenant at a tenth of the flood's rate
        inFlight.push(
          fetch(`${otlp}/v1/traces`, { method: 'POST', headers: { 'Content-Type': 'application/x-protobuf', Authorization: `Bearer ${token}` }, body: bodies[i % bodies.length]! }).then(
            async (r) => {
              await r.arrayBuffer();
              codes.push(r.status);
            },
            () => {
              codes.push(undefined);
            },
          ),
        );
        await new Promise((r) => setTimeout(r, 20));
      }
      await Promise.all(inFlight);
      return tally(codes);
    }
    case 'nested': {
      const codes: (number | undefined)[] = [];
      for (let i = 0, until = Date.now() + ms; Date.now() < until; i++) {
        codes.push(await rawPost(t, nestedJsonRequest(20_000), { token: NOISY, contentType: 'application/json' }));
        codes.push(await rawPost(t, nestedProtobufRequest(20_000), { token: NOISY }));
      }
      return tally(codes);
    }
  }
}

export async function runAbusePhases(o: Options): Promise<{ metrics: Record<string, number>; details: Record<string, unknown> }> {
  const data = tempDir('memory-abuse');
  let fleet: Child | undefined;
  let sampler: RssSampler | undefined;
  const outcomes: Record<string, unknown> = {};
  const times: Record<string, { from: number; to: number }> = {};
  try {
    fleet = spawnFleet([
      'start', '--data-dir', data.dir, '--collector-port', '0', '--query-port', '0',
      '--auth-tokens', `${GOOD}=good,${NOISY}=noisy`,
      '--memory-budget-bytes', String(o.budgetMiB * MiB),
      '--max-connections', String(MAX_CONNECTIONS), '--headers-timeout-ms', '2000',
    ]);
    const m = await fleet.waitFor(/OTLP\/HTTP (http:\/\/127\.0\.0\.1:(\d+))\/v1\/traces/, 120_000);
    const otlp = m[1]!;
    const target = { host: '127.0.0.1', port: Number(m[2]) };
    sampler = new RssSampler({ fleet: fleet.proc.pid! }, 250);
    const t0 = performance.now();
    for (const phase of o.phases) {
      o.log(`abuse phase ${phase}`);
      const from = (performance.now() - t0) / 1000;
      sampler.mark(phase);
      outcomes[phase] = await attack(phase, target, otlp, o);
      times[phase] = { from, to: (performance.now() - t0) / 1000 };
    }
  } finally {
    sampler?.stop();
    await stop(fleet);
    data.remove();
  }
  const metrics: Record<string, number> = { abuseBudgetMiB: o.budgetMiB };
  let peak = 0;
  for (const [phase, { from, to }] of Object.entries(times)) {
    const s = sampler!.summary('fleet', from, to);
    metrics[`abuse_${phase.replace(/-(\w)/g, (_, c: string) => c.toUpperCase())}_maxMiB`] = s.maxMiB;
    peak = Math.max(peak, s.maxMiB);
  }
  metrics.abusePeakMiB = round(peak, 1);
  return { metrics, details: { abuse: { outcomes, phases: times, budgetMiB: o.budgetMiB } } };
}
