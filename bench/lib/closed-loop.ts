/**
 * One closed-loop measurement of an OTLP/HTTP receiver (a collector): the
 * load generator (bench/procs/loadgen.ts) in a process of its own, and the
 * CPU time of the receiving process over the load generator's measured
 * window (utime + stime of all its threads from /proc/<pid>/stat, so work
 * on a Node thread pool or Go's threads counts too).
 */
import { CpuWindow, round, type BenchOptions } from './common.ts';
import { event, spawnNode } from './child.ts';

export interface ClosedLoopOptions {
  /** OTLP/HTTP traces endpoint. */
  url: string;
  /** The receiving process whose CPU time is measured. */
  pid: number;
  concurrency: number;
  warmupS: number;
  durationS: number;
  /** gzip the request bodies. */
  gzip: boolean;
  seed: number;
}

export interface LoadRequest {
  bodyBytes: number;
  tracesPerRequest: number;
  spansPerRequest: number;
}

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** The load generator's closed-loop `done` event. */
export interface ClosedLoopDone {
  /** Requests of the measured window, and those of them answered 200. */
  requests: number;
  okRequests: number;
  /** Spans answered 200 in the measured window. */
  spans: number;
  seconds: number;
  statuses: Record<string, number>;
  latencyMs: Latency;
  loadgenCpuS: number;
  /** The whole run, warm-up included. */
  run: { requests: number; okRequests: number; spans: number };
}

export interface ClosedLoopResult {
  /** The run's numbers, as a benchmark's `runs` entry. */
  numbers: Record<string, number>;
  done: ClosedLoopDone;
  request: LoadRequest;
}

/**
 * What a collector benchmark's closed loop takes from `--repeats` and `--set`
 * (concurrency, duration, warmup, gzip=1, partitions of the topic,
 * compression of what the collector produces), with its defaults; tiny ones
 * for --smoke.
 */
export function collectorKnobs(o: BenchOptions): { repeats: number; concurrency: number; durationS: number; warmupS: number; gzip: boolean; partitions: number; compression: string } {
  return {
    repeats: o.repeats ?? (o.smoke ? 1 : 3),
    concurrency: Number(o.set.concurrency ?? (o.smoke ? 2 : 8)),
    durationS: Number(o.set.duration ?? (o.smoke ? 1.5 : 15)),
    warmupS: Number(o.set.warmup ?? (o.smoke ? 0.5 : 5)),
    gzip: o.set.gzip === '1',
    partitions: Number(o.set.partitions ?? 6),
    // zstd, gzip or none (default: fleet collector's)
    compression: o.set.compression ?? 'zstd',
  };
}

/** Units of ClosedLoopResult.numbers. */
export const CLOSED_LOOP_UNITS: Record<string, string> = {
  spansPerSecond: 'spans/s',
  requestsPerSecond: 'req/s',
  spansPerCollectorCpuSecond: 'spans/s/core',
  collectorCoresUsed: 'cores',
  loadgenCoresUsed: 'cores',
  machineBusyCores: 'cores',
  latencyP50Ms: 'ms',
  latencyP99Ms: 'ms',
  latencyMaxMs: 'ms',
  non200: 'requests',
};

export async function closedLoop(o: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const { url, concurrency, durationS, warmupS, gzip, seed } = o;
  const load = spawnNode('bench/procs/loadgen.ts', [JSON.stringify({ url, concurrency, durationS, warmupS, gzip, seed })]);
  const request = await event<LoadRequest>(load, 'ready');
  await event(load, 'measuring', 60_000 + warmupS * 1000);
  const cpu = new CpuWindow({ collector: o.pid, loadgen: load.proc.pid! });
  await event(load, 'window-end', 60_000 + durationS * 1000);
  const w = cpu.end();
  const done = await event<ClosedLoopDone>(load, 'done');
  await load.exited;
  const collectorCpuS = w.cpuS.collector!;
  const numbers = {
    spansPerSecond: round(done.spans / done.seconds),
    requestsPerSecond: round(done.okRequests / done.seconds, 1),
    spansPerCollectorCpuSecond: round(done.spans / collectorCpuS),
    collectorCoresUsed: round(collectorCpuS / w.wallS, 2),
    loadgenCoresUsed: round(w.cpuS.loadgen! / w.wallS, 2),
    machineBusyCores: w.machineBusyCores,
    latencyP50Ms: round(done.latencyMs.p50, 2),
    latencyP99Ms: round(done.latencyMs.p99, 2),
    latencyMaxMs: round(done.latencyMs.max, 1),
    non200: done.requests - done.okRequests,
  };
  return { numbers, done, request };
}
