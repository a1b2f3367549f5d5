/** Reading a perpass process's Prometheus /metrics. */

/** Sum of every sample of `name` whose labels contain all of `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const m = /^(?:\{(.*)\})?\s+(\S+)/.exec(rest);
    if (!m) continue;
    const ls = m[1] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[2]);
  }
  return sum;
}

/** Every label set of `name` with its value. */
export function metricSeries(text: string, name: string): { labels: string; value: number }[] {
  const out: { labels: string; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const m = /^\S+\{(.*)\}\s+(\S+)/.exec(line);
    if (m) out.push({ labels: m[1]!, value: Number(m[2]) });
  }
  return out;
}

/**
 * GET /metrics. A fresh connection each time (a kept-alive socket the server
 * closes after its idle timeout fails the next request), retried twice.
 */
export async function scrape(url: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(60_000), headers: { connection: 'close' } });
      return await res.text();
    } catch (err) {
      if (attempt >= 3) throw new Error(`scraping ${url} failed: ${(err as Error).message}`, { cause: err });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * The q-quantile of histogram `name` over the interval between two scrapes
 * (bucket counts subtracted), interpolated linearly inside its bucket as
 * Prometheus's histogram_quantile does; NaN when nothing was observed.
 */
export function histogramQuantile(before: string, after: string, name: string, q: number): number {
  const buckets = (text: string) => new Map(metricSeries(text, `${name}_bucket`).map((s) => [/le="([^"]+)"/.exec(s.labels)![1]!, s.value]));
  const b0 = buckets(before);
  const counts = [...buckets(after)].map(([le, n]) => ({ le: Number(le), n: n - (b0.get(le) ?? 0) })).sort((a, b) => a.le - b.le);
  const total = counts.at(-1)?.n ?? 0;
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const { le, n } of counts) {
    if (n >= rank) return le === Infinity ? lower : lower + ((le - lower) * (rank - below)) / Math.max(n - below, 1e-9);
    lower = le;
    below = n;
  }
  return lower;
}
