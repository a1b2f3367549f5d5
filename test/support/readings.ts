/**
 * What a test reads from a running fleet process from outside: rows through
 * its query endpoint, and samples from its /metrics (parsed by the project's
 * own Prometheus text parser).
 */
import { parsePrometheusText } from '../../alerting/prom-text.ts';

/** The rows of `statement` (no FORMAT clause) from a query endpoint, as JSONEachRow. */
export async function endpointRows<T>(queryUrl: string, statement: string): Promise<T[]> {
  const res = await fetch(`${queryUrl}/?query=${encodeURIComponent(`${statement} FORMAT JSONEachRow`)}`);
  if (!res.ok) throw new Error(`query failed: ${await res.text()}`);
  return (await res.text())
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}

/** The sum of a metric's samples at `metricsUrl` whose labels include `labels`. */
export async function scrapedSum(metricsUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { samples } = parsePrometheusText(await (await fetch(metricsUrl)).text());
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}
