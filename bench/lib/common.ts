/**
 * What every benchmark shares: the machine description, the result shape
 * (one JSON line + a human table), statistics, and CPU / RSS readings of
 * processes from /proc.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import Table from 'cli-table3';

export interface MachineInfo {
  /** os.availableParallelism(): the cores this process may use. */
  cores: number;
  cpuModel: string;
  cpuMHz: number;
  totalMemGiB: number;
  node: string;
  platform: string;
  kernel: string;
  /** 1/5/15-minute load averages when the benchmark started. */
  loadAtStart: number[];
}

export function machine(): MachineInfo {
  const cpus = os.cpus();
  return {
    cores: os.availableParallelism(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuMHz: cpus[0]?.speed ?? 0,
    totalMemGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    loadAtStart: os.loadavg().map((l) => round(l, 2)),
  };
}

export interface Target {
  metric: string;
  op: '>=' | '<';
  target: number;
  unit: string;
}

export interface TargetCheck extends Target {
  value: number;
  met: boolean;
}

/** What one benchmark prints as its JSON line and bench/run.ts stores in latest.json. */
export interface BenchResult {
  benchmark: string;
  /** Minimal configuration (the smoke test's): numbers are not meaningful. */
  smoke: boolean;
  startedAt: string;
  durationS: number;
  machine: MachineInfo;
  /** The command line that reproduces it. */
  command: string;
  config: Record<string, unknown>;
  /** Headline numbers (medians over the repeats where there are repeats). */
  metrics: Record<string, number>;
  /** Units of `metrics`. */
  units: Record<string, string>;
  targets: TargetCheck[];
  /** Every repeat's numbers, so the spread is visible. */
  runs: Record<string, number>[];
  /** Anything else worth keeping (time series summaries, profiles, part counts). */
  details: Record<string, unknown>;
  notes: string[];
}

export interface BenchOptions {
  smoke: boolean;
  /** Repeats of the measured part (benchmarks choose their default). */
  repeats?: number;
  /** Kafka bootstrap servers to use instead of starting a broker (KAFKA_BROKERS). */
  kafkaBrokers?: string[];
  /** Free-form per-benchmark overrides from `--set key=value`. */
  set: Record<string, string>;
  log(message: string): void;
}

export interface Benchmark {
  name: string;
  description: string;
  run(options: BenchOptions): Promise<Omit<BenchResult, 'benchmark' | 'smoke' | 'startedAt' | 'durationS' | 'machine' | 'command' | 'targets'> & { targets?: Target[] }>;
}

export const round = (x: number, digits = 0): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Percentile (0–100) with linear interpolation between closest ranks. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

export const median = (values: readonly number[]): number => percentile(values, 50);

/** Median of each metric over repeats, plus `<metric>_min` / `<metric>_max` for the spread. */
export function summarizeRuns(runs: Record<string, number>[], keys: string[] = Object.keys(runs[0] ?? {})): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) {
    const vs = runs.map((r) => r[k]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    if (vs.length === 0) continue;
    out[k] = median(vs);
    if (runs.length > 1) {
      out[`${k}_min`] = Math.min(...vs);
      out[`${k}_max`] = Math.max(...vs);
    }
  }
  return out;
}

export function checkTargets(targets: Target[], metrics: Record<string, number>): TargetCheck[] {
  return targets.map((t) => {
    const value = metrics[t.metric] ?? Number.NaN;
    const met = t.op === '>=' ? value >= t.target : value < t.target;
    return { ...t, value, met };
  });
}

export function formatTable(result: BenchResult): string {
  const table = new Table({ head: ['metric', 'value', 'unit', 'target', ''], style: { head: [], border: [] } });
  const targetOf = new Map(result.targets.map((t) => [t.metric, t]));
  for (const [k, v] of Object.entries(result.metrics)) {
    if (/_(min|max)$/.test(k)) continue;
    const t = targetOf.get(k);
    const spread = result.metrics[`${k}_min`] !== undefined ? ` (${fmt(result.metrics[`${k}_min`]!)}–${fmt(result.metrics[`${k}_max`]!)})` : '';
    table.push([k, `${fmt(v)}${spread}`, result.units[k] ?? '', t ? `${t.op} ${fmt(t.target)}` : '', t ? (t.met ? 'met' : 'MISSED') : '']);
  }
  const m = result.machine;
  const head = `${result.benchmark}${result.smoke ? ' (smoke)' : ''} — ${m.cores} cores ${m.cpuModel}, ${m.totalMemGiB} GiB, node ${m.node}, load at start ${m.loadAtStart.join(' ')}`;
  return [head, table.toString(), ...result.notes.map((n) => `  note: ${n}`)].join('\n');
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

// ---------------------------------------------------------------- /proc

let clockTicks: number | undefined;

/** Kernel clock ticks per second (utime/stime unit in /proc/<pid>/stat). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the command name (field 2) may contain spaces: fields after the closing parenthesis
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / clkTck();
}

/** Resident set size of a process in bytes (VmRSS). */
export function processRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Busy and total jiffies of the whole machine (/proc/stat), to tell how busy everything else was. */
export function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** CPU time of a set of processes and of the machine over a window. */
export class CpuWindow {
  private readonly pids: Record<string, number>;
  private start: Record<string, number> = {};
  private machineStart = machineJiffies();
  private t0 = performance.now();

  constructor(pids: Record<string, number>) {
    this.pids = pids;
    this.begin();
  }

  begin(): void {
    this.start = Object.fromEntries(Object.entries(this.pids).map(([k, pid]) => [k, safeCpu(pid)]));
    this.machineStart = machineJiffies();
    this.t0 = performance.now();
  }

  /** CPU seconds per process, wall seconds, and the machine's busy cores (all processes) over the window. */
  end(): { wallS: number; cpuS: Record<string, number>; machineBusyCores: number } {
    const wallS = (performance.now() - this.t0) / 1000;
    const cpuS = Object.fromEntries(Object.entries(this.pids).map(([k, pid]) => [k, round(safeCpu(pid) - this.start[k]!, 3)]));
    const m = machineJiffies();
    const busyS = (m.busy - this.machineStart.busy) / clkTck();
    return { wallS, cpuS, machineBusyCores: round(busyS / wallS, 2) };
  }
}

function safeCpu(pid: number): number {
  try {
    return processCpuSeconds(pid);
  } catch {
    return 0;
  }
}

/** Samples the RSS of processes every `intervalMs` until stopped. */
export class RssSampler {
  readonly samples: { t: number; rss: Record<string, number> }[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly t0 = performance.now();
  private readonly pids: Record<string, number>;
  /** Phase boundaries (seconds since start). */
  readonly marks: { t: number; phase: string }[] = [];

  constructor(pids: Record<string, number>, intervalMs = 250) {
    this.pids = pids;
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  mark(phase: string): void {
    this.marks.push({ t: (performance.now() - this.t0) / 1000, phase });
  }

  private sample(): void {
    const rss: Record<string, number> = {};
    for (const [k, pid] of Object.entries(this.pids)) {
      try {
        rss[k] = processRssBytes(pid);
      } catch {
        // exited
      }
    }
    this.samples.push({ t: (performance.now() - this.t0) / 1000, rss });
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /** start / max / end / p50 RSS (MiB) of one process between two marks (or over everything). */
  summary(name: string, from = 0, to = Number.POSITIVE_INFINITY): { startMiB: number; maxMiB: number; endMiB: number; p50MiB: number; samples: number } {
    const xs = this.samples.filter((s) => s.t >= from && s.t <= to && s.rss[name] !== undefined).map((s) => s.rss[name]! / 2 ** 20);
    return {
      startMiB: round(xs[0] ?? Number.NaN, 1),
      maxMiB: round(Math.max(...xs), 1),
      endMiB: round(xs.at(-1) ?? Number.NaN, 1),
      p50MiB: round(median(xs), 1),
      samples: xs.length,
    };
  }
}

/** Waits (up to `maxWaitS`) for the 1-minute load average to drop below `threshold`; returns the load seen. */
export async function waitForQuiet(log: (m: string) => void, threshold = 0.5, maxWaitS = 0): Promise<number> {
  const deadline = Date.now() + maxWaitS * 1000;
  let load = os.loadavg()[0]!;
  if (load >= threshold && maxWaitS > 0) log(`load ${load.toFixed(2)} ≥ ${threshold}: waiting up to ${maxWaitS} s for a quiet machine`);
  while (load >= threshold && Date.now() < deadline) {
    await sleep(2000);
    load = os.loadavg()[0]!;
  }
  return load;
}
