/**
 * Fills a topic with what the collector would have published for a planned
 * fleet: realistic export requests (bench/lib/traffic.ts) split by trace
 * with the collector's own code, produced through KafkaPublisher (kafkajs,
 * idempotent, acks=all, gzip) as `fleet collector` does.
 */
import { KafkaPublisher } from '../../bus/kafka.ts';
import { collectorMessages, exportRequests, planAttempts, spanCount } from './traffic.ts';

export interface Prefilled {
  attempts: number;
  spans: number;
  messages: number;
  bytes: number;
  seconds: number;
}

export async function prefill(brokers: string[], topic: string, o: { attempts: number; spansPerRequest?: number; seed?: number; tenant?: string }, log: (m: string) => void): Promise<Prefilled> {
  const plan = planAttempts({ attempts: o.attempts, seed: o.seed ?? 5, tenant: o.tenant ?? 'bench-consumers' });
  const publisher = new KafkaPublisher({ brokers, logLevel: 'nothing', publishTimeoutMs: 60_000 });
  const started = performance.now();
  let spans = 0;
  let messages = 0;
  let bytes = 0;
  const inflight = new Set<Promise<void>>();
  let lastLog = started;
  try {
    for (const r of exportRequests(plan, { ...(o.spansPerRequest && { spansPerRequest: o.spansPerRequest }) })) {
      const ms = collectorMessages(r);
      spans += spanCount(r);
      messages += ms.length;
      for (const m of ms) bytes += m.value.byteLength;
      const p = publisher.publish(topic, ms).finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= 16) await Promise.race(inflight);
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        log(`prefill: ${spans} spans, ${messages} messages so far`);
      }
    }
    await Promise.all(inflight);
  } finally {
    await publisher.close();
  }
  return { attempts: plan.length, spans, messages, bytes, seconds: (performance.now() - started) / 1000 };
}
