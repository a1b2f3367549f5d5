/**
 * A dead-letter "topic" in the store: the embedded mode's stand-in for the
 * Kafka DLQ topic, so an undecodable message is kept (bytes as base64, with
 * its source and the decode error) instead of filling the in-process queue.
 */
import type { Publisher } from '../bus/types.ts';
import type { Store } from './store.ts';

export function deadLetterTable(store: Store): Publisher {
  return {
    async publish(_topic, messages) {
      await store.insert(
        'dead_letters',
        messages.map((m) => ({
          source: m.headers?.['perpass-source'] ?? '',
          key: m.key,
          error: m.headers?.['perpass-error'] ?? '',
          value: Buffer.from(m.value).toString('base64'),
        })),
      );
    },
    isReady: async () => true,
    close: async () => {},
  };
}
