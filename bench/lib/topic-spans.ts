/**
 * What a collector really published: a topic read back to its end, every
 * message decoded as the consumers decode it (an OTLP
 * ExportTraceServiceRequest, otlp/codec.ts), its spans counted, and its key
 * and partition checked against the bus format (bus/types.ts: key = the
 * trace id of all its spans in lowercase hex, partition = murmur2 of the key
 * as Kafka's default partitioner picks it), so a throughput number never
 * stands on spans that were answered 200 but dropped.
 */
import kafkajs from 'kafkajs';
import { bytesToHex, decodeTraceRequest } from '../../otlp/codec.ts';
import { readTopicToEnd } from '../../test/support/topic-reader.ts';

export interface TopicSpans {
  messages: number;
  spans: number;
  /** Messages whose key is not the trace id of every span in them. */
  keyMismatches: number;
  /** Messages on another partition than murmur2 of their key picks. */
  misplaced: number;
}

export async function topicSpans(brokers: string[], topic: string, partitions: number, timeoutMs = 300_000): Promise<TopicSpans> {
  const partitioner = kafkajs.Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }));
  const out: TopicSpans = { messages: 0, spans: 0, keyMismatches: 0, misplaced: 0 };
  // counted as they are read, none kept: a run publishes about a million spans
  await readTopicToEnd(
    brokers,
    topic,
    (m) => {
      out.messages++;
      let keyed = true;
      for (const rs of decodeTraceRequest(m.value).resourceSpans ?? []) {
        for (const ss of rs.scopeSpans ?? []) {
          for (const span of ss.spans ?? []) {
            out.spans++;
            if (bytesToHex(span.traceId) !== m.key) keyed = false;
          }
        }
      }
      if (!keyed) out.keyMismatches++;
      if (partitioner({ topic, partitionMetadata, message: { key: m.key, value: null } }) !== m.partition) out.misplaced++;
      return false;
    },
    timeoutMs,
  );
  return out;
}
