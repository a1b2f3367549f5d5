/**
 * The OpenTelemetry Collector (0.165) as a benchmark runs it: built from
 * bench/otelcol (main.go as its builder would generate it for the OTLP
 * receiver, the batch processor and the contrib kafka exporter, pinned by
 * go.mod / go.sum and fetched from the Go module proxy) into
 * .cache/go-bin by goBuild, and started on a config written here.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { startProcess } from '../../test/support/processes.ts';
import { freePort } from '../../test/support/polling.ts';
import { goBuild } from '../../test/support/toolchains.ts';
import { tempDir, type Child } from './child.ts';

/** Why otelcol cannot be built here (no Go toolchain on PATH), or undefined when it can. */
export async function goMissing(): Promise<string | undefined> {
  try {
    await promisify(execFile)('go', ['version']);
    return undefined;
  } catch (e) {
    return `no Go toolchain (\`go version\`: ${(e as Error).message.split('\n')[0]}); otelcol is built from the Go module proxy with go ≥ 1.26`;
  }
}

/** The collector binary (built on first use, minutes; cached until bench/otelcol changes). */
export const buildOtelcol = (): Promise<string> => goBuild('otelcol-bench', 'bench/otelcol');

export interface OtelcolPipeline {
  brokers: string[];
  topic: string;
  /** The batch processor (default settings) before the exporter. */
  batch: boolean;
  /** The exporter's sending queue (default settings); without it a request is answered once Kafka acknowledged it. */
  sendingQueue: boolean;
  /** Of the record batches: zstd, gzip or none, as `fleet collector --kafka-compression`. */
  compression: string;
}

/**
 * The kafka exporter writing what `fleet collector` writes: one message per
 * trace (key = trace id in hex, value = otlp_proto), the same compression, acks from all
 * in-sync replicas, and the partition murmur2 of the key picks, as kafkajs's
 * default partitioner (and the Java client) do. Without `record_partitioner`
 * the exporter hashes keys as Sarama did (FNV-1a), so the same trace would
 * land on another partition.
 */
export function kafkaExporter(p: OtelcolPipeline): Record<string, unknown> {
  return {
    brokers: p.brokers,
    traces: { topic: p.topic, encoding: 'otlp_proto' },
    partition_traces_by_id: true,
    record_partitioner: { sticky_key: { hasher: 'murmur2' } },
    producer: { compression: p.compression, required_acks: -1 },
    ...(!p.sendingQueue && { sending_queue: { enabled: false } }),
  };
}

function config(p: OtelcolPipeline, port: number): Record<string, unknown> {
  return {
    receivers: { otlp: { protocols: { http: { endpoint: `127.0.0.1:${port}` } } } },
    processors: { batch: {} },
    exporters: { kafka: kafkaExporter(p) },
    service: {
      // no internal metrics endpoint (:8888): nothing to scrape, and no port to collide on
      telemetry: { metrics: { level: 'none' } },
      pipelines: { traces: { receivers: ['otlp'], processors: p.batch ? ['batch'] : [], exporters: ['kafka'] } },
    },
  };
}

/** Starts `binary` with that pipeline on a free port of 127.0.0.1; resolves once it serves, with its OTLP/HTTP traces URL. */
export async function startOtelcol(binary: string, p: OtelcolPipeline): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const dir = tempDir('otelcol');
  const file = path.join(dir.dir, 'otelcol.yaml');
  writeFileSync(file, stringify(config(p, port)));
  const child = startProcess(binary, ['--config', file], {}, 'otelcol');
  void child.exited.then(() => dir.remove());
  await child.waitFor(/Everything is ready/, 60_000);
  return { child, url: `http://127.0.0.1:${port}/v1/traces` };
}
