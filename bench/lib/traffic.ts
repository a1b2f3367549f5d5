/**
 * Realistic agent traffic for the benchmarks, as an OpenTelemetry SDK in a
 * fleet runner would export it: the planned canary fleet of demo/plan.ts
 * (attempt spans with the fleet.* attributes, GenAI LLM-call spans with
 * inclusive token counts, execute_tool spans; 7–17 spans per attempt), many
 * attempts running at once (a new one every `spacingMs`, each lasting
 * seconds), spans exported in the order they end, `spansPerRequest` per
 * ExportTraceServiceRequest (the BatchSpanProcessor's 512 by default) under
 * an SDK-like resource.
 */
import type { BusMessage } from '../../bus/types.ts';
import { planFleet, type PlannedAttempt } from '../../demo/plan.ts';
import { encodeTraceRequest, type KeyValue, type OtlpSpan, type TraceRequest } from '../../otlp/codec.ts';
import { decodeFrames } from '../../otlp/frames.ts';
import { traceMessages } from '../../otlp/split.ts';
import { attemptSpans } from '../../test/support/otlp-fleet.ts';

const str = (key: string, v: string): KeyValue => ({ key, value: { stringValue: v } });
const int = (key: string, v: number): KeyValue => ({ key, value: { intValue: v } });

/** The resource the OpenTelemetry Node SDK reports (service, SDK, host and process detectors) plus the fleet's. */
export function sdkResource(tenant: string, instance: number): KeyValue[] {
  return [
    str('service.name', 'agent-runner'),
    str('service.version', '1.14.2'),
    str('service.instance.id', `0b6f1c1e-4a57-4c1b-9d7e-${String(instance).padStart(12, '0')}`),
    str('telemetry.sdk.language', 'nodejs'),
    str('telemetry.sdk.name', 'opentelemetry'),
    str('telemetry.sdk.version', '2.1.0'),
    str('host.name', `runner-${instance % 16}`),
    str('host.arch', 'amd64'),
    int('process.pid', 4000 + instance),
    str('process.runtime.name', 'nodejs'),
    str('process.runtime.version', '24.11.0'),
    str('fleet.tenant', tenant),
    str('fleet.pool', 'builder-heavy-fast'),
  ];
}

export interface TrafficOptions {
  /** Attempts to plan (the plan is cut to this many). */
  attempts: number;
  seed?: number;
  tenant?: string;
  /** A new attempt starts every spacingMs (default 150 ms: ~35 attempts run at once). */
  spacingMs?: number;
  /** Spans per export request (default 512). */
  spansPerRequest?: number;
  /** Start of the first attempt (default: 2 days ago, so every span is inside the spans TTL and the views' windows). */
  startNs?: bigint;
}

/** The planned attempts (cut to `attempts`), in start order. */
export function planAttempts(o: TrafficOptions): PlannedAttempt[] {
  // one spec per cell yields ~1.3 attempts (retries until pass); 12 cells
  const specsPerCell = Math.max(1, Math.ceil(o.attempts / 12 / 1.2));
  const plan = planFleet({
    specsPerCell,
    seed: o.seed ?? 7,
    tenant: o.tenant ?? 'bench',
    specPrefix: `${o.tenant ?? 'bench'}-s${o.seed ?? 7}`,
    startNs: o.startNs ?? (BigInt(Date.now()) - 2n * 86_400_000n) * 1_000_000n,
    spacingMs: o.spacingMs ?? 150,
  });
  return plan.slice(0, o.attempts);
}

const endOf = (s: OtlpSpan) => BigInt(String(s.endTimeUnixNano));

/**
 * Export requests in the order an SDK would send them: spans sorted by end
 * time across the attempts running at once, cut into requests of
 * spansPerRequest. Generated lazily, so a large fleet never sits in memory.
 */
export function* exportRequests(plan: readonly PlannedAttempt[], o: Pick<TrafficOptions, 'spansPerRequest' | 'tenant'> = {}): Generator<TraceRequest> {
  const per = o.spansPerRequest ?? 512;
  const tenant = o.tenant ?? plan[0]?.tenant ?? 'bench';
  let pending: OtlpSpan[] = [];
  let out: OtlpSpan[] = [];
  let instance = 0;
  const request = (spans: OtlpSpan[]): TraceRequest => ({
    resourceSpans: [{ resource: { attributes: sdkResource(tenant, instance++ % 64) }, scopeSpans: [{ scope: { name: 'perpass', version: '0.1.0' }, spans }] }],
  });
  for (const a of plan) {
    for (const s of attemptSpans(a)) pending.push(s);
    // nothing that starts later can end before this attempt's start
    pending.sort((x, y) => (endOf(x) < endOf(y) ? -1 : 1));
    let i = 0;
    while (i < pending.length && endOf(pending[i]!) <= a.startNs) out.push(pending[i++]!);
    pending = pending.slice(i);
    while (out.length >= per) {
      yield request(out.slice(0, per));
      out = out.slice(per);
    }
  }
  out.push(...pending);
  for (let i = 0; i < out.length; i += per) yield request(out.slice(i, i + per));
}

export const spanCount = (r: TraceRequest): number =>
  (r.resourceSpans ?? []).reduce((n, rs) => n + (rs.scopeSpans ?? []).reduce((m, ss) => m + (ss.spans?.length ?? 0), 0), 0);

export const encode = (r: TraceRequest): Buffer => Buffer.from(encodeTraceRequest(r));

/** What the collector publishes for one request: one message per trace (otlp/split.ts, the production code). */
export const collectorMessages = (r: TraceRequest): BusMessage[] => traceMessages(decodeFrames(encodeTraceRequest(r)));
