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
