/** `fleet prices reprice`: the re-pricing (storage/reprice.ts) with a progress bar on stderr and a summary on stdout. */
import cliProgress from 'cli-progress';
import type { Catalog } from '../pricing/catalog.ts';
import { reprice, type RepriceSummary } from '../storage/reprice.ts';
import type { Store } from '../storage/store.ts';

export async function repriceWithProgress(store: Store, catalog: Catalog, since: string | undefined): Promise<RepriceSummary> {
  const bar = new cliProgress.SingleBar({ format: '  LLM calls {bar} {value}/{total}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
  let started = false;
  try {
    return await reprice(store, catalog, {
      ...(since !== undefined && { since }),
      onProgress: (done, total) => {
        if (!started) bar.start(total, 0);
        started = true;
        bar.update(done);
      },
    });
  } finally {
    bar.stop();
  }
}

export function formatRepriceSummary(s: RepriceSummary): string {
  const lines = [
    `${s.repriced} of ${s.calls} LLM calls repriced (${s.unpricedBefore} of them unpriced before); ${s.attempts} attempts rewritten with the sum of their calls`,
    `cost of the repriced calls: $${s.beforeUsd} before → $${s.afterUsd} after (priced calls only)`,
  ];
  const unpriced = s.stillUnpriced.reduce((n, u) => n + u.calls, 0);
  if (unpriced === 0) lines.push('every LLM call in scope is priced');
  else {
    lines.push(`${unpriced} LLM calls still unpriced:`);
    for (const u of s.stillUnpriced) lines.push(`  ${u.calls} × ${u.reason}`);
  }
  return `${lines.join('\n')}\n`;
}
