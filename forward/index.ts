/**
 * The forward stage: kept traces, as received, to the OTLP backends a team
 * already runs. The consumers hand over each decision's kept spans
 * (KeptSpanSink.add, synchronous); they are encoded once per trace and
 * route (the tenant's own destinations from `forwardTenants`, else the
 * default `--forward-otlp` ones) and queued on every destination of it.
 * Each destination's exporter sends on its own, so one slow or down
 * backend delays no other and never the consumers or the store.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Registry } from 'prom-client';
import type { Config } from '../config/settings.ts';
import { DurableForwardQueue } from './durable-queue.ts';
import { encodeKept } from './encode.ts';
import { OtlpExporter, redactedUrl, tracesEndpoint, type Destination, type ExporterTiming } from './exporter.ts';
import { createForwardMetrics } from './metrics.ts';
import { MemoryForwardQueue, type ForwardQueue } from './queue.ts';
import type { KeptSpan, KeptSpanSink } from './types.ts';

export type { KeptSpan, KeptSpanSink, SpanSource } from './types.ts';
export { SAMPLING_ADJUSTED_COUNT, SAMPLING_REASON } from './encode.ts';

export interface ForwardRoutes {
  /** Where every tenant without a route of its own goes (may be empty: those tenants are not forwarded). */
  defaults: Destination[];
  /** A tenant's own destinations, instead of the defaults. */
  tenants: Record<string, Destination[]>;
}

export interface ForwarderOptions {
  routes: ForwardRoutes;
  /** Bound of each destination's queue, in encoded bytes. */
  queueBytes: number;
  /** Where each destination's queue is kept on disk (a directory per destination); unset: in memory. */
  queueDir?: string;
  registry: Registry;
  log: (message: string) => void;
  timing?: Partial<ExporterTiming>;
}

/** The routes the settings describe, or undefined when nothing is to be forwarded. */
export function forwardRoutes(config: Pick<Config, 'forwardOtlp' | 'forwardHeader' | 'forwardProtocol' | 'forwardCompression' | 'forwardTenants'>): ForwardRoutes | undefined {
  const destination = (url: string, headers: Record<string, string>, over: { protocol?: Destination['protocol'] | undefined; compression?: Destination['compression'] | undefined } = {}): Destination => ({
    url: tracesEndpoint(url),
    headers,
    protocol: over.protocol ?? config.forwardProtocol,
    compression: over.compression ?? config.forwardCompression,
  });
  const defaults = (config.forwardOtlp ?? []).map((url) => destination(url, config.forwardHeader ?? {}));
  // a tenant's route takes only its own headers: the defaults' credentials never go to another backend
  const tenants = Object.fromEntries(
    Object.entries(config.forwardTenants ?? {}).map(([tenant, route]) => [tenant, route.otlp.map((url) => destination(url, route.headers ?? {}, route))]),
  );
  return defaults.length === 0 && Object.keys(tenants).length === 0 ? undefined : { defaults, tenants };
}

/** Queues on disk of destinations no longer configured (another URL, headers or encoding) hold kept traces nobody sends: say so. */
async function noteStaleQueues(queueDir: string, current: Set<string>, log: (message: string) => void): Promise<void> {
  for (const entry of await readdir(queueDir, { withFileTypes: true })) {
    if (!entry.isDirectory() || current.has(entry.name)) continue;
    const label = (await readFile(path.join(queueDir, entry.name, 'destination'), 'utf8').catch(() => 'unknown destination')).trim();
    log(`forward queue ${path.join(queueDir, entry.name)} belongs to ${label}, which is no longer configured: what it holds is not sent (configure that destination again, or delete the directory)`);
  }
}

/** One exporter per (route, destination): a URL with other headers or encoding is another exporter. */
const exporterKey = (route: string, d: Destination) => JSON.stringify([route, d.url, Object.entries(d.headers).sort(), d.protocol, d.compression]);

export class Forwarder implements KeptSpanSink {
  private readonly defaults: OtlpExporter[];
  private readonly tenants = new Map<string, OtlpExporter[]>();
  private readonly exporters: OtlpExporter[] = [];

  /** Opens each destination's queue (loading what a durable one holds from before) and starts its exporter. */
  static async open(options: ForwarderOptions): Promise<Forwarder> {
    const queues = new Map<string, ForwardQueue>();
    const dirs = new Set<string>();
    const all: [string, Destination][] = [...options.routes.defaults.map((d): [string, Destination] => ['default', d]), ...Object.entries(options.routes.tenants).flatMap(([t, ds]) => ds.map((d): [string, Destination] => [t, d]))];
    for (const [route, d] of all) {
      const key = exporterKey(route, d);
      if (queues.has(key)) continue;
      // named by a hash: the key holds the headers, API keys among them
      const dir = options.queueDir && path.join(options.queueDir, createHash('sha256').update(key).digest('hex').slice(0, 16));
      if (dir) dirs.add(path.basename(dir));
      queues.set(key, dir ? await DurableForwardQueue.open(dir, options.queueBytes, `${redactedUrl(d.url)} (route ${route})`, options.log) : new MemoryForwardQueue(options.queueBytes));
    }
    if (options.queueDir) await noteStaleQueues(options.queueDir, dirs, options.log);
    return new Forwarder(options, queues);
  }

  private constructor(options: ForwarderOptions, queues: Map<string, ForwardQueue>) {
    const metrics = createForwardMetrics(options.registry, () => this.exporters.map((e) => e.reading()));
    const byKey = new Map<string, OtlpExporter>();
    const exportersOf = (destinations: Destination[], route: string) =>
      destinations.map((d) => {
        const key = exporterKey(route, d);
        let e = byKey.get(key);
        if (!e) {
          e = new OtlpExporter({ destination: d, route, queue: queues.get(key)!, metrics, log: options.log, ...(options.timing && { timing: options.timing }) });
          byKey.set(key, e);
          this.exporters.push(e);
        }
        return e;
      });
    this.defaults = exportersOf(options.routes.defaults, 'default');
    for (const [tenant, destinations] of Object.entries(options.routes.tenants)) this.tenants.set(tenant, exportersOf(destinations, tenant));
  }

  /** Where each destination sends, for the start-up log line. */
  describe(): string {
    return this.exporters.map((e) => (e.labels.route === 'default' ? e.labels.destination : `${e.labels.destination} (tenant ${e.labels.route})`)).join(', ');
  }

  add(spans: readonly KeptSpan[]): void {
    if (spans.length === 0) return;
    // one request per (tenant, trace): what a backend shows as one trace arrives together
    const groups = new Map<string, KeptSpan[]>();
    for (const s of spans) {
      const key = `${s.tenant}\u0000${s.traceId}`;
      const group = groups.get(key);
      if (group) group.push(s);
      else groups.set(key, [s]);
    }
    for (const group of groups.values()) {
      const exporters = this.tenants.get(group[0]!.tenant) ?? this.defaults;
      if (exporters.length === 0) continue;
      const item = { spans: group.length, body: encodeKept(group) };
      for (const e of exporters) e.enqueue(item);
    }
  }

  /** Sends what is queued for up to `timeoutMs` (default 10 s), then stops every exporter. */
  async close(timeoutMs = 10_000): Promise<void> {
    await Promise.all(this.exporters.map((e) => e.close(timeoutMs)));
  }
}
