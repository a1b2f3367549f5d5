/**
 * `fleet collector` publishing to a Kafka topic, for the benchmarks that
 * measure it: the command itself, or, for another Kafka client, the same
 * construction with that client (bench/procs/collector.ts).
 */
import { spawnFleet, spawnNode, type Child } from './child.ts';

export interface FleetCollectorOptions {
  brokers: string[];
  /** Created by the collector with `partitions` partitions (and `<topic>_dlq`). */
  topic: string;
  partitions: number;
  /** Publisher compression (default zstd, as `fleet collector`). */
  compression?: string;
  /** kafkajs (the bus, default) or @platformatic/kafka. */
  client?: string;
  /** Write a V8 CPU profile here when it exits. */
  cpuProfDir?: string;
}

/** Starts it on a free port of 127.0.0.1; resolves once it serves, with its OTLP/HTTP traces URL. */
export async function startFleetCollector(o: FleetCollectorOptions): Promise<{ child: Child; url: string }> {
  const compression = o.compression ?? 'zstd';
  const client = o.client ?? 'kafkajs';
  const args = ['--kafka-brokers', o.brokers.join(','), '--topic', o.topic, '--dead-letter-topic', `${o.topic}_dlq`, '--topic-partitions', String(o.partitions), '--collector-port', '0', '--collector-host', '127.0.0.1'];
  const spawn = { ...(o.cpuProfDir && { cpuProfDir: o.cpuProfDir }) };
  const child =
    client === 'kafkajs'
      ? spawnFleet(['collector', ...args, '--kafka-compression', compression], spawn)
      : spawnNode('bench/procs/collector.ts', [...args, '--compression', compression, '--client', client], spawn);
  const url = (await child.waitFor(/collector: (http:\/\/\S+?\/v1\/traces)/))[1]!;
  return { child, url };
}
