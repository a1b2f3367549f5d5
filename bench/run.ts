/**
 * The benchmark suite (not part of `npm test`):
 *
 *   npm run bench                         # every benchmark
 *   npm run bench -- collector consumers  # some of them
 *   npm run bench -- --smoke query        # minimal configuration (what test/bench.smoke.test.ts runs)
 *
 * Options: --repeats N, --set key=value (per-benchmark knobs, see each
 * file), --kafka host:port (use that broker instead of starting one; also
 * KAFKA_BROKERS), --quiet-wait S (wait up to S seconds for the 1-minute load
 * average to fall below 0.5 before each benchmark; default 60, 0 with
 * --smoke), --out FILE (default bench/runs/<today, UTC>/results.json: one
 * dated file per day of runs, under version control, so the figures the
 * README and docs/performance.md cite come with the clone).
 *
 * Each benchmark runs in a child process of its own (clean heap, its own
 * chDB, no timers of another benchmark), prints its result as one JSON line
 * and a table, and the results are merged into --out (one entry per
 * benchmark: running one benchmark keeps the others' last results of that
 * day). --smoke runs write to bench/results/smoke.json (git-ignored).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { checkTargets, formatTable, machine, waitForQuiet, type BenchResult, type Benchmark } from './lib/common.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Each benchmark's module, imported only when it runs. */
const MODULES: Record<string, () => Promise<Benchmark>> = {
  collector: async () => (await import('./collector.ts')).collectorBenchmark,
  consumers: async () => (await import('./consumers.ts')).consumersBenchmark,
  freshness: async () => (await import('./freshness.ts')).freshnessBenchmark,
  query: async () => (await import('./query.ts')).queryBenchmark,
  sdk: async () => (await import('./sdk.ts')).sdkBenchmark,
  memory: async () => (await import('./memory.ts')).memoryBenchmark,
  'kafka-client': async () => (await import('./kafka-client.ts')).kafkaClientBenchmark,
  embedded: async () => (await import('./embedded.ts')).embeddedBenchmark,
  otelcol: async () => (await import('./otelcol.ts')).otelcolBenchmark,
};

export const BENCHMARKS = Object.keys(MODULES);

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    smoke: { type: 'boolean', default: false },
    repeats: { type: 'string' },
    set: { type: 'string', multiple: true, default: [] },
    kafka: { type: 'string' },
    'quiet-wait': { type: 'string' },
    out: { type: 'string' },
    // internal: run one benchmark in this process and write its result here
    'result-file': { type: 'string' },
  },
});

const log = (m: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

function commandLine(name: string): string {
  const parts = ['npm run bench --', name];
  if (flags.smoke) parts.push('--smoke');
  if (flags.repeats) parts.push('--repeats', flags.repeats);
  for (const s of flags.set ?? []) parts.push('--set', s);
  return parts.join(' ');
}

async function runHere(name: string, resultFile: string): Promise<void> {
  const module = MODULES[name];
  if (!module) throw new Error(`unknown benchmark ${name}; known: ${BENCHMARKS.join(', ')}`);
  const bench = await module();
  const set = Object.fromEntries((flags.set ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const kafka = (flags.kafka ?? process.env.KAFKA_BROKERS)?.split(',').map((s) => s.trim()).filter(Boolean);
  const quietWait = Number(flags['quiet-wait'] ?? (flags.smoke ? 0 : 60));
  await waitForQuiet(log, 0.5, quietWait);
  const m = machine();
  const started = performance.now();
  log(`${name}: ${bench.description}`);
  const r = await bench.run({ smoke: flags.smoke!, ...(flags.repeats && { repeats: Number(flags.repeats) }), ...(kafka?.length && { kafkaBrokers: kafka }), set, log });
  const result: BenchResult = {
    benchmark: name,
    smoke: flags.smoke!,
    startedAt: new Date(Date.now() - (performance.now() - started)).toISOString(),
    durationS: Math.round((performance.now() - started) / 100) / 10,
    machine: m,
    command: commandLine(name),
    config: r.config,
    metrics: r.metrics,
    units: r.units,
    targets: checkTargets(r.targets ?? [], r.metrics),
    runs: r.runs,
    details: r.details,
    notes: r.notes,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.stdout.write(`${formatTable(result)}\n`);
  writeFileSync(resultFile, JSON.stringify(result));
}

/** Runs one benchmark in a child process; resolves with its result (undefined when it failed). */
function runChild(name: string): Promise<BenchResult | undefined> {
  const dir = path.join(os.tmpdir(), `perpass-bench-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const resultFile = path.join(dir, `${name}.json`);
  rmSync(resultFile, { force: true });
  const args = [fileURLToPath(import.meta.url), name, '--result-file', resultFile];
  if (flags.smoke) args.push('--smoke');
  if (flags.repeats) args.push('--repeats', flags.repeats);
  for (const s of flags.set ?? []) args.push('--set', s);
  if (flags.kafka) args.push('--kafka', flags.kafka);
  if (flags['quiet-wait']) args.push('--quiet-wait', flags['quiet-wait']);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--disable-warning=TimeoutNegativeWarning', ...args], { cwd: ROOT, stdio: 'inherit', env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' } });
    child.once('exit', (code, signal) => {
      if (code === 0 && existsSync(resultFile)) resolve(JSON.parse(readFileSync(resultFile, 'utf8')) as BenchResult);
      else {
        log(`${name} failed (${code ?? signal})`);
        resolve(undefined);
      }
    });
  });
}

if (flags['result-file']) {
  const [name] = positionals;
  await runHere(name!, flags['result-file']);
  // a client library's leftover timers (kafkajs reconnects, chDB) must not keep the benchmark alive
  process.exit(0);
} else {
  const names = positionals.length ? positionals : BENCHMARKS;
  const unknown = names.filter((n) => !BENCHMARKS.includes(n));
  if (unknown.length) {
    log(`unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.join(', ')}`);
    process.exit(2);
  }
  const out = path.resolve(flags.out ?? (flags.smoke ? path.join(ROOT, 'bench/results/smoke.json') : path.join(ROOT, 'bench/runs', new Date().toISOString().slice(0, 10), 'results.json')));
  mkdirSync(path.dirname(out), { recursive: true });
  let failed = 0;
  for (const name of names) {
    const result = await runChild(name);
    if (!result) {
      failed++;
      continue;
    }
    const previous = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as { results?: Record<string, BenchResult> }) : {};
    const merged = { updatedAt: new Date().toISOString(), machine: machine(), results: { ...previous.results, [name]: result } };
    writeFileSync(out, `${JSON.stringify(merged, null, 2)}\n`);
  }
  log(`results: ${path.relative(process.cwd(), out)}${failed ? ` (${failed} benchmark(s) failed)` : ''}`);
  process.exit(failed ? 1 : 0);
}
