/**
 * Where the pipeline-health rule reads consumer lag and dead letters. The
 * source is pluggable: a Prometheus scrape of the consumers' /metrics
 * (`fleet_consumer_lag_messages`, `fleet_consumer_messages_total{result=
 * "dead_letter"}`), the same metrics read from an in-process prom-client
 * Registry (the all-in-one process), or a consumer's Subscriber.lag() with
 * a dead-letter counter of the caller's choosing.
 */
import type { Registry } from 'prom-client';
import type { PartitionLag } from '../bus/types.ts';
import { parsePrometheusText, type PromExposition, type PromSample } from './prom-text.ts';

export const LAG_METRIC = 'fleet_consumer_lag_messages';
export const MESSAGES_METRIC = 'fleet_consumer_messages_total';

/** One target's health at one moment. */
export interface HealthSample {
  /** Which process or URL (series are kept per target so counter restarts are seen per process). */
  target: string;
  /** Set when the target could not be read: it is down, and the rule says so. */
  error?: string;
  /** Messages between the committed offsets and the end of each topic (summed over partitions). */
  lagByTopic?: Record<string, number>;
  /** Messages dead-lettered since the process started (a counter). */
  deadLetters?: number;
}

export interface PipelineHealthSource {
  /** Reads every target now; a target that fails is reported with `error`, never thrown. */
  sample(): Promise<HealthSample[]>;
}

/** Lag per topic and the dead-letter counter from parsed samples (absent metric = unknown). */
export function healthFromSamples(target: string, exposition: PromExposition): HealthSample {
  const lag = exposition.samples.filter((s) => s.name === LAG_METRIC);
  const messages = exposition.samples.filter((s) => s.name === MESSAGES_METRIC);
  const sample: HealthSample = { target };
  if (lag.length || exposition.families.has(LAG_METRIC)) {
    sample.lagByTopic = {};
    for (const s of lag) if (Number.isFinite(s.value)) sample.lagByTopic[s.labels.topic ?? ''] = (sample.lagByTopic[s.labels.topic ?? ''] ?? 0) + s.value;
  }
  // prom-client prints only HELP/TYPE for a labelled counter never incremented: that is 0, not unknown
  const family = exposition.families.has(MESSAGES_METRIC) || exposition.families.has(MESSAGES_METRIC.replace(/_total$/, ''));
  if (messages.length || family) sample.deadLetters = messages.filter((s) => s.labels.result === 'dead_letter').reduce((n, s) => n + s.value, 0);
  return sample;
}

export interface ScrapeOptions {
  urls: readonly string[];
  timeoutMs?: number;
  /** Extra request headers (e.g. authorization). */
  headers?: Record<string, string>;
}

/** Scrapes each URL's Prometheus text; an unreachable or unparsable target is reported down. */
export function scrapeHealthSource(options: ScrapeOptions): PipelineHealthSource {
  const timeoutMs = options.timeoutMs ?? 5_000;
  return {
    async sample() {
      return Promise.all(
        options.urls.map(async (url): Promise<HealthSample> => {
          try {
            const res = await fetch(url, {
              headers: { accept: 'text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1', ...options.headers },
              signal: AbortSignal.timeout(timeoutMs),
            });
            const text = await res.text();
            if (!res.ok) return { target: url, error: `HTTP ${res.status} ${text.slice(0, 200).trim()}` };
            return healthFromSamples(url, parsePrometheusText(text));
          } catch (err) {
            const e = err as Error;
            return { target: url, error: e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : `${e.message}${e.cause instanceof Error ? `: ${e.cause.message}` : ''}` };
          }
        }),
      );
    },
  };
}

/** Reads the consumers' metrics from a prom-client Registry in this process (the all-in-one). */
export function registryHealthSource(registry: Registry, target = 'local'): PipelineHealthSource {
  return {
    async sample() {
      try {
        const samples: PromSample[] = [];
        const families = new Map<string, string>();
        for (const name of [LAG_METRIC, MESSAGES_METRIC]) {
          const metric = registry.getSingleMetric(name);
          if (!metric) continue;
          const data = await metric.get();
          families.set(name, String(data.type));
          for (const v of data.values) samples.push({ name, labels: Object.fromEntries(Object.entries(v.labels).map(([k, x]) => [k, String(x)])), value: v.value });
        }
        return [healthFromSamples(target, { samples, families })];
      } catch (err) {
        return [{ target, error: (err as Error).message }];
      }
    },
  };
}

export interface SubscriberHealthOptions {
  /** A consumer-group member; its lag() reads the group's committed offsets. */
  subscriber: { lag(): Promise<PartitionLag[]> };
  /** Dead letters since start (e.g. the consumer metrics' counter); unset = not monitored. */
  deadLetters?: () => number | Promise<number>;
  target?: string;
}

/** Lag straight from a Subscriber (bus/types.ts), for the lead's consumers. */
export function subscriberHealthSource(options: SubscriberHealthOptions): PipelineHealthSource {
  const target = options.target ?? 'local';
  return {
    async sample() {
      try {
        const lagByTopic: Record<string, number> = {};
        for (const l of await options.subscriber.lag()) lagByTopic[l.topic] = (lagByTopic[l.topic] ?? 0) + l.lag;
        const sample: HealthSample = { target, lagByTopic };
        if (options.deadLetters) sample.deadLetters = await options.deadLetters();
        return [sample];
      } catch (err) {
        return [{ target, error: (err as Error).message }];
      }
    },
  };
}
