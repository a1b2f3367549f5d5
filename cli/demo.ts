/**
 * `fleet demo`: the seed canary fleet through the real OTLP exporter into a
 * running perpass, then its $/pass table next to each model's per-token
 * price — the ranking inversion of per-token price vs $/pass, from live data.
 */
import { randomBytes } from 'node:crypto';
import cliProgress from 'cli-progress';
import { planFleet } from '../demo/plan.ts';
import { sendFleet } from '../demo/send.ts';
import type { Store } from '../storage/store.ts';
import { formatReport, queryReport } from './report.ts';

export interface DemoOptions {
  endpoint: string;
  specsPerCell: number;
  seed: number;
  token?: string;
  /** Opens the store the report reads (the running perpass's query endpoint). */
  openReader: () => Promise<Store>;
  /** How long to wait for the pipeline to show every attempt (default 60 s). */
  waitMs?: number;
}

/** `fleet demo`'s traffic plan unless --specs / --seed say otherwise. */
export const DEMO_DEFAULTS = { specsPerCell: 12, seed: 42 } as const;

export async function runDemo(o: DemoOptions): Promise<void> {
  const run = `demo-${randomBytes(3).toString('hex')}`;
  const startMs = Date.now();
  const plan = planFleet({ specsPerCell: o.specsPerCell, seed: o.seed, startNs: BigInt(startMs) * 1_000_000n, specPrefix: run });
  const calls = plan.reduce((n, a) => n + a.calls.length, 0);
  process.stderr.write(`sending ${plan.length} attempts (${calls} LLM calls) of run ${run} to ${o.endpoint}\n`);
  const bar = new cliProgress.SingleBar({ format: '  attempts {bar} {value}/{total}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
  bar.start(plan.length, 0);
  try {
    await sendFleet(plan, { endpoint: o.endpoint, ...(o.token && { headers: { authorization: `Bearer ${o.token}` } }), onAttempt: (done) => bar.update(done) });
  } finally {
    bar.stop();
  }

  const store = await o.openReader();
  try {
    const deadline = Date.now() + (o.waitMs ?? 60_000);
    let seen = 0;
    while (Date.now() < deadline) {
      [{ seen = 0 } = {}] = await store.query<{ seen: number }>(
        `SELECT count() AS seen FROM ${store.database}.attempts FINAL WHERE startsWith(spec_id, {run:String})`,
        { run },
      );
      if (seen >= plan.length) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    if (seen < plan.length) throw new Error(`only ${seen} of ${plan.length} attempts became visible within ${(o.waitMs ?? 60_000) / 1000} s — is fleet start running and reachable?`);
    // This run's window only: an earlier demo run would otherwise double every N.
    const since = new Date(startMs).toISOString();
    process.stderr.write(
      `all ${plan.length} attempts visible; $/pass of the attempts started since ${since} (this run; fleet report cost-per-pass shows the last 30 days), $/M = the input · output price per million tokens of the card in force now:\n`,
    );
    process.stdout.write(formatReport('cost-per-pass', await queryReport(store, 'cost-per-pass', { since }), 'table'));
    process.stderr.write('\nrouting: per tier, models whose pass rate is at least 70 % (Wilson 95 % lower bound), cheapest $/pass first:\n');
    process.stdout.write(formatReport('routing', await queryReport(store, 'routing', { since, minPassRate: 0.7 }), 'table'));
  } finally {
    await store.close();
  }
}
