/**
 * perpass → a real Prometheus Alertmanager (Debian's prometheus-alertmanager)
 * → a webhook receiver, through an Alertmanager outage several times longer
 * than the keep-alive's validity: the alert fires in perpass the whole time,
 * so the receiver must never be told it resolved, and once Alertmanager is
 * back its API must show the alert active with endsAt in the future.
 * The alert is a pipeline_health one on a real prom-client registry whose
 * consumer lag gauge stays far above maxLag.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Gauge, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAlertRules, registryHealthSource, startAlerts, type AlertsService } from '../alerting/index.ts';
import type { Store } from '../storage/store.ts';
import { freshStore, tempDir } from './support/store.ts';
import { freePort, until } from './support/polling.ts';
import { aptInstall } from './support/toolchains.ts';

const RESEND_MS = 2_000;

interface AmAlert {
  labels: Record<string, string>;
  status: { state: string };
  endsAt: string;
}
interface WebhookCall {
  status: 'firing' | 'resolved';
  alerts: { status: string; labels: Record<string, string> }[];
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


let hook: Server;
const calls: WebhookCall[] = [];
let amPort: number;
let amDir: string;
let am: ChildProcess | undefined;
let amOutput = '';
let store: Store;
let alerts: AlertsService | undefined;

/** Starts Alertmanager on amPort with its storage in amDir (notification log kept across restarts, as in production). */
async function startAlertmanager(): Promise<void> {
  am = spawn('prometheus-alertmanager', [
    `--config.file=${path.join(amDir, 'alertmanager.yml')}`,
    `--storage.path=${amDir}`,
    `--web.listen-address=127.0.0.1:${amPort}`,
    '--cluster.listen-address=',
  ]);
  am.stdout!.on('data', (d: Buffer) => (amOutput += d.toString()));
  am.stderr!.on('data', (d: Buffer) => (amOutput += d.toString()));
  await until('Alertmanager ready', async () => (await fetch(`http://127.0.0.1:${amPort}/-/ready`)).ok, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${amOutput.slice(-2000)}`);
  });
}

async function stopAlertmanager(): Promise<void> {
  const proc = am;
  am = undefined;
  if (!proc || proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

const amAlerts = async (): Promise<AmAlert[]> => (await fetch(`http://127.0.0.1:${amPort}/api/v2/alerts`)).json() as Promise<AmAlert[]>;

beforeAll(async () => {
  await aptInstall(['prometheus-alertmanager']);
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      calls.push(JSON.parse(body) as WebhookCall);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  amPort = await freePort();
  amDir = tempDir('alertmanager');
  writeFileSync(
    path.join(amDir, 'alertmanager.yml'),
    [
      'route:',
      '  receiver: hook',
      '  group_wait: 500ms',
      '  group_interval: 1s',
      '  repeat_interval: 1h',
      'receivers:',
      '  - name: hook',
      '    webhook_configs:',
      `      - url: http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`,
      '        send_resolved: true',
      '',
    ].join('\n'),
  );
  await startAlertmanager();
  store = await freshStore('alerts_am');
}, 600_000);

afterAll(async () => {
  await alerts?.stop();
  await stopAlertmanager();
  await store?.close();
  await new Promise((r) => hook?.close(r));
}, 60_000);

describe('perpass → real Alertmanager', () => {
  it('keeps an alert firing through an outage of several resend intervals: no resolve reaches the receiver, and Alertmanager shows it active afterwards', async () => {
    const registry = new Registry();
    const lag = new Gauge({ name: 'fleet_consumer_lag_messages', help: 'lag', labelNames: ['topic', 'partition'] as const, registers: [registry] });
    lag.set({ topic: 'otlp_spans', partition: '0' }, 50_000);
    const rules = parseAlertRules({
      evaluationInterval: '1s',
      rules: [{ kind: 'pipeline_health', maxLag: 1000, lagFor: '0s' }],
      sinks: [{ type: 'alertmanager', url: `http://127.0.0.1:${amPort}`, resendInterval: `${RESEND_MS}ms` }],
      // retries outlast the outage, as a long-running `fleet alerts` would
      delivery: { initialBackoff: '200ms', maxBackoff: '500ms', maxAttempts: 1000 },
    });
    const metrics = new Registry();
    alerts = await startAlerts({ store, rules, registry: metrics, healthSource: registryHealthSource(registry), log: () => {} });

    await until('the firing notification at the receiver', async () => calls.some((c) => c.status === 'firing'), 30_000);
    const before = await amAlerts();
    expect(before.map((a) => [a.labels.alertname, a.status.state])).toEqual([['pipeline_health', 'active']]);

    // Outage: 6 resend intervals, three times the 4-interval validity of a post (Prometheus' rule).
    await stopAlertmanager();
    await sleep(6 * RESEND_MS);
    await startAlertmanager();
    // Let the queued post go out and Alertmanager run several group intervals.
    await until('the alert back in Alertmanager', async () => (await amAlerts()).length === 1, 30_000);
    await sleep(4_000);

    const after = await amAlerts();
    expect(after.map((a) => [a.labels.alertname, a.status.state])).toEqual([['pipeline_health', 'active']]);
    expect(Date.parse(after[0]!.endsAt)).toBeGreaterThan(Date.now());
    // the receiver was never told it resolved
    expect(calls.filter((c) => c.status === 'resolved' || c.alerts.some((a) => a.status === 'resolved'))).toEqual([]);
    expect(alerts.firing().map((a) => a.rule)).toEqual(['pipeline_health']);

    // keep-alives are counted apart from notifications; only the newest one waited out the outage
    const text = await metrics.metrics();
    expect(text).toMatch(/^fleet_alert_notifications_total\{sink="alertmanager",result="sent"\} 1$/m);
    const keepalives = Number(/^fleet_alert_keepalives_total\{sink="alertmanager",result="sent"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    expect(keepalives).toBeGreaterThan(0);
  }, 180_000);
});
