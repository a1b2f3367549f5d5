/**
 * perpass as the observability stack sees it, every process real: `fleet
 * collector` and `fleet consumer` started together on Kafka (they race to
 * create the topics), `fleet start` with alert rules and a `fleet alerts`
 * writing through it. Every /metrics passes Prometheus' own `promtool check
 * metrics` (Debian's `prometheus` package); consumer lag returns to 0
 * within 5 s after a burst; no process prints the topic-creation race or
 * kafkajs's TimeoutNegativeWarning.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricValue } from './collector.fixtures.ts';
import { kafkaBrokers, uniqueName } from './support/kafka.ts';
import { startFleet, startNode, type Child } from './support/processes.ts';
import { tempDir } from './support/store.ts';
import { until } from './support/polling.ts';
import { aptInstall } from './support/toolchains.ts';

const WRITE_TOKEN = 'observability-write-token';
const TOPIC = uniqueName('obs_spans');
const DLQ = `${TOPIC}_dlq`;

let collector: Child;
let consumer: Child;
let owner: Child;
let alerts: Child;
const urls: Record<string, string> = {};

/** `promtool check metrics` on an exposition: its exit code and what it printed. */
function promtool(exposition: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}`.trim() }),
    );
    child.stdin!.end(exposition);
  });
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return res.text();
}

/** Sum of the consumer's lag over the topic's partitions; undefined until the gauge has every partition. */
async function consumerLag(): Promise<number | undefined> {
  const text = await scrape(urls.consumer!);
  const values = [0, 1, 2].map((p) => metricValue(text, `fleet_consumer_lag_messages{topic="${TOPIC}",partition="${p}"}`));
  return values.some((v) => v === undefined) ? undefined : values.reduce((a, b) => a! + b!, 0)!;
}


const sendFleet = (endpoint: string, tenant: string, specsPerCell: number, seed: number): Promise<unknown> =>
  startNode('test/support/send-fleet.ts', [endpoint, tenant, String(specsPerCell), String(seed)]).waitFor(/sent \d+/, 180_000);

beforeAll(async () => {
  const installed = aptInstall(['prometheus']);
  const brokers = kafkaBrokers().join(',');
  const kafka = ['--kafka-brokers', brokers, '--topic', TOPIC, '--dead-letter-topic', DLQ, '--topic-partitions', '3'];
  // Started together on purpose: both create the topics at start.
  collector = startFleet(['collector', ...kafka, '--collector-host', '127.0.0.1', '--collector-port', '0']);
  consumer = startFleet([
    'consumer', ...kafka, '--group-id', uniqueName('obs_group'), '--data-dir', tempDir('obs-consumer'), '--metrics-port', '0',
    '--decision-wait-ms', '300', '--trace-timeout-ms', '60000',
  ]);
  const rules = path.join(tempDir('obs-rules'), 'alerts.yaml');
  writeFileSync(rules, 'evaluationInterval: 1s\nrules:\n  - { kind: pass_rate_regression, minAttempts: 1 }\n  - { kind: unpriced_model }\n');
  const dataDir = tempDir('obs-start');
  owner = startFleet(['start', '--data-dir', dataDir, '--collector-port', '0', '--query-port', '0', '--query-write-token', WRITE_TOKEN, '--alert-rules', rules, '--decision-wait-ms', '100']);
  urls.collector = `${(await collector.waitFor(/collector: (http:\/\/\S+?)\/v1\/traces/))[1]!}`;
  urls.consumer = `http://127.0.0.1:${(await consumer.waitFor(/consumer: group .*metrics :(\d+)\/metrics/))[1]!}/metrics`;
  const started = await owner.waitFor(/OTLP\/HTTP (http:\/\/\S+?)\/v1\/traces · query (http:\/\/\S+) .* OTLP\/gRPC port (\d+)/);
  urls.start = started[1]!;
  urls.query = started[2]!;
  urls.startGrpc = `http://127.0.0.1:${started[3]!}`;
  alerts = startFleet(['alerts', '--data-dir', dataDir, '--query-write-token', WRITE_TOKEN, '--alert-rules', rules, '--metrics-port', '0']);
  urls.alerts = `http://127.0.0.1:${(await alerts.waitFor(/alerts: evaluating every .* metrics :(\d+)\/metrics/))[1]!}/metrics`;
  await installed;
}, 600_000);

afterAll(async () => {
  await Promise.all([collector, consumer, alerts].map((c) => c?.kill()));
  await owner?.kill();
}, 120_000);

describe('the fleet processes as Prometheus and Kafka operators see them', () => {
  it('consumer lag returns to 0 within 5 s after a burst (committed offsets follow the decisions, not the trace timeout)', async () => {
    await sendFleet(urls.collector!, 'lag-burst', 4, 11);
    const sentAt = Date.now();
    // the burst is on the topic: lag is up until the consumer decided and wrote it
    const zeroAt = await until('consumer lag 0', async () => ((await consumerLag()) === 0 ? Date.now() : undefined), 60_000, 100);
    const took = zeroAt - sentAt;
    console.log(`consumer lag back to 0 ${took} ms after the burst was sent`);
    expect(took).toBeLessThan(5_000);
    // and it stays 0 while nothing is sent (nothing is held for the 60 s trace timeout)
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await consumerLag()).toBe(0);
  }, 240_000);

  it('promtool check metrics is clean on every process’s /metrics, with traffic and alerts flowing', async () => {
    await sendFleet(urls.start!, 'promtool', 2, 12);
    // the alerts process and the in-process rules have evaluated at least once
    await until('an alert evaluation', async () => (metricValue(await scrape(urls.alerts!), 'fleet_alert_evaluations_total{result="ok"}') ?? 0) > 0, 60_000, 250);
    // the in-process rules have evaluated since the fleet was written: its gauges are there
    await until('fleet gauges of the sent fleet', async () => /^fleet_pass_rate_ratio\{tenant="promtool",/m.test(await scrape(`${urls.start!}/metrics`)), 60_000, 250);
    for (const [name, url] of Object.entries({ collector: `${urls.collector!}/metrics`, consumer: urls.consumer!, start: `${urls.start!}/metrics`, alerts: urls.alerts! })) {
      const exposition = await scrape(url);
      expect(exposition, name).toContain('process_cpu_seconds_total');
      expect(await promtool(exposition), `${name} ${url}`).toEqual({ code: 0, output: '' });
    }
    const start = await scrape(`${urls.start!}/metrics`);
    // every enabled rule has a firing series, 0 when it fires nothing
    expect(start).toMatch(/^fleet_alerts_firing\{rule="unpriced_model",severity="warning"\} 0$/m);
    expect(start).toMatch(/^fleet_pass_rate_ratio\{/m);
  }, 240_000);

  it('fleet start takes OTLP/gRPC from the OTel JS SDK exporter: the attempt lands in the store', async () => {
    const exporter = new GrpcExporter({ url: urls.startGrpc!, compression: 'gzip' as never });
    const provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'grpc-agent', 'fleet.tenant': 'grpc-tenant' }),
      spanProcessors: [new SimpleSpanProcessor({ exporter })],
    });
    const tracer = provider.getTracer('observability-test');
    for (let n = 1; n <= 3; n++) {
      tracer.startSpan('attempt', { attributes: { 'fleet.spec.id': 'grpc-spec', 'fleet.spec.tier': 'tier-1', 'fleet.attempt.number': n, 'fleet.attempt.outcome': n === 3 ? 'pass' : 'fail' } }).end();
    }
    await provider.forceFlush();
    await provider.shutdown();
    const query = `SELECT count() AS n, sum(outcome = 'pass') AS passes FROM fleet.attempts FINAL WHERE tenant = 'grpc-tenant' FORMAT JSONEachRow`;
    const row = await until(
      'the gRPC attempts in the store',
      async () => {
        const r = JSON.parse(await (await fetch(`${urls.query!}/?query=${encodeURIComponent(query)}`)).text()) as { n: string | number; passes: string | number };
        return Number(r.n) === 3 ? r : undefined;
      },
      30_000,
      250,
    );
    expect(Number(row.passes)).toBe(1);
  }, 60_000);

  it('prints neither the topic-creation race nor kafkajs TimeoutNegativeWarning', () => {
    for (const child of [collector, consumer]) {
      expect(child.output()).not.toMatch(/Topic creation errors|TimeoutNegativeWarning/);
    }
  });
});
