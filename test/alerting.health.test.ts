/**
 * Pipeline-health sources: the Prometheus text parser on the format's
 * corner cases and on what the consumers' real prom-client metrics print,
 * a scrape over HTTP, the in-process registry and a Subscriber's lag.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { healthFromSamples, registryHealthSource, scrapeHealthSource, subscriberHealthSource } from '../alerting/health.ts';
import { parsePrometheusText, PromParseError } from '../alerting/prom-text.ts';
import { MemoryBus } from '../bus/memory.ts';
import { createConsumerMetrics } from '../consumers/metrics.ts';

const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) await new Promise<void>((resolve) => s.close(() => resolve()));
});

async function serve(handler: () => { status: number; body: string }): Promise<string> {
  const server = createServer((_req, res) => {
    const { status, body } = handler();
    res.writeHead(status, { 'content-type': 'text/plain; version=0.0.4' }).end(body);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A registry with the consumers' real metrics, lag and dead letters as given. */
function consumerRegistry(lag: { topic: string; partition: number; lag: number }[], deadLetters: number) {
  const registry = new Registry();
  const metrics = createConsumerMetrics(registry, {
    buffered: () => ({ traces: 0, spans: 0, bytes: 0, decidedAttempts: 0, orphanSpans: 0 }),
    pendingRows: () => 0,
    lag: async () => lag,
  });
  metrics.messages.inc({ result: 'ok' }, 1000);
  if (deadLetters) metrics.messages.inc({ result: 'dead_letter' }, deadLetters);
  return registry;
}

describe('Prometheus text parser', () => {
  it('reads names, labels with escapes, special values, timestamps, comments and families', () => {
    const text = [
      '# HELP fleet_consumer_lag_messages Messages between the committed offset and the end.',
      '# TYPE fleet_consumer_lag_messages gauge',
      'fleet_consumer_lag_messages{topic="otlp_spans",partition="0"} 12',
      'fleet_consumer_lag_messages{topic="otlp_spans",partition="1",} 3.5e2 1716200000000',
      'weird{path="C:\\\\dir\\"x\\"\\nnext",empty=""} -Inf',
      'nan_metric NaN',
      'prom_client_nan Nan',
      'spelled_out -Infinity',
      'up 1',
      '# a comment line',
      '',
      'spaced_out\t{ a = "1" ,b="2"}   +Inf',
    ].join('\n');
    const { samples, families } = parsePrometheusText(text);
    expect(samples).toEqual([
      { name: 'fleet_consumer_lag_messages', labels: { topic: 'otlp_spans', partition: '0' }, value: 12 },
      { name: 'fleet_consumer_lag_messages', labels: { topic: 'otlp_spans', partition: '1' }, value: 350, timestampMs: 1716200000000 },
      { name: 'weird', labels: { path: 'C:\\dir"x"\nnext', empty: '' }, value: -Infinity },
      { name: 'nan_metric', labels: {}, value: NaN },
      { name: 'prom_client_nan', labels: {}, value: NaN },
      { name: 'spelled_out', labels: {}, value: -Infinity },
      { name: 'up', labels: {}, value: 1 },
      { name: 'spaced_out', labels: { a: '1', b: '2' }, value: Infinity },
    ]);
    expect(families).toEqual(new Map([['fleet_consumer_lag_messages', 'gauge']]));
  });

  it('reads OpenMetrics (exemplars, # EOF, second timestamps) and Prometheus 3 quoted names', () => {
    const text = [
      '# TYPE fleet_consumer_messages counter',
      'fleet_consumer_messages_total{result="dead_letter"} 4 1716200000.5 # {trace_id="abc"} 1',
      '{"fleet.odd.name", result="ok"} 7',
      '# EOF',
    ].join('\n');
    const { samples, families } = parsePrometheusText(text);
    expect(samples).toEqual([
      { name: 'fleet_consumer_messages_total', labels: { result: 'dead_letter' }, value: 4, timestampMs: 1716200000500 },
      { name: 'fleet.odd.name', labels: { result: 'ok' }, value: 7 },
    ]);
    expect(families.get('fleet_consumer_messages')).toBe('counter');
  });

  it('reports malformed lines with their number', () => {
    for (const [text, message] of [
      ['ok 1\nbroken{a="1" 2', /line 2: expected , or \}/],
      ['x{a=1} 2', /line 1: expected "\\"" at column 5/],
      ['x{a="1"}', /line 1: sample x has no value/],
      ['x abc', /line 1: not a number: "abc"/],
      ['x -nan', /line 1: not a number: "-nan"/],
      ['x{a="unterminated} 1', /line 1: unterminated quoted string/],
      ['x 1 2 3', /line 1: unexpected "3" after the value/],
    ] as const) {
      expect(() => parsePrometheusText(text)).toThrow(PromParseError);
      expect(() => parsePrometheusText(text)).toThrow(message);
    }
  });

  it("reads what the consumers' real metrics print", async () => {
    const registry = consumerRegistry(
      [
        { topic: 'otlp_spans', partition: 0, lag: 120 },
        { topic: 'otlp_spans', partition: 1, lag: 30 },
        { topic: 'other', partition: 0, lag: 5 },
      ],
      3,
    );
    expect(healthFromSamples('t', parsePrometheusText(await registry.metrics()))).toEqual({ target: 't', lagByTopic: { otlp_spans: 150, other: 5 }, deadLetters: 3 });
    // a labelled counter never incremented prints only HELP/TYPE: zero dead letters, not unknown
    const quiet = new Registry();
    createConsumerMetrics(quiet, { buffered: () => ({ traces: 0, spans: 0, bytes: 0, decidedAttempts: 0, orphanSpans: 0 }), pendingRows: () => 0, lag: async () => [] });
    expect(healthFromSamples('q', parsePrometheusText(await quiet.metrics()))).toEqual({ target: 'q', lagByTopic: {}, deadLetters: 0 });
    // a process without consumer metrics: unknown
    expect(healthFromSamples('none', parsePrometheusText('up 1\n'))).toEqual({ target: 'none' });
  });
});

describe('health sources', () => {
  it('scrapes /metrics over HTTP and reports unreachable or failing targets as down', async () => {
    const registry = consumerRegistry([{ topic: 'otlp_spans', partition: 0, lag: 42 }], 2);
    const base = await serve(() => ({ status: 503, body: 'not ready' }));
    const live = createServer((_req, res) => {
      registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text));
    });
    servers.push(live);
    await new Promise<void>((resolve) => live.listen(0, '127.0.0.1', resolve));
    const liveUrl = `http://127.0.0.1:${(live.address() as AddressInfo).port}/metrics`;
    const garbage = await serve(() => ({ status: 200, body: 'x{{{ 1' }));
    const source = scrapeHealthSource({ urls: [liveUrl, `${base}/down`, 'http://127.0.0.1:1/metrics', garbage], timeoutMs: 2000 });
    const [ok, http503, refused, bad] = await source.sample();
    expect(ok).toEqual({ target: liveUrl, lagByTopic: { otlp_spans: 42 }, deadLetters: 2 });
    expect(http503).toEqual({ target: `${base}/down`, error: 'HTTP 503 not ready' });
    expect(refused!.error).toMatch(/fetch failed|ECONNREFUSED/);
    expect(bad!.error).toMatch(/line 1/);
  });

  it('reads the in-process registry and a Subscriber', async () => {
    const registry = consumerRegistry([{ topic: 'otlp_spans', partition: 0, lag: 7 }], 1);
    expect(await registryHealthSource(registry).sample()).toEqual([{ target: 'local', lagByTopic: { otlp_spans: 7 }, deadLetters: 1 }]);

    const bus = new MemoryBus({ partitions: 2 });
    await bus.publisher().publish('otlp_spans', [
      { key: 'a', value: new Uint8Array([1]) },
      { key: 'b', value: new Uint8Array([2]) },
      { key: 'c', value: new Uint8Array([3]) },
    ]);
    let dead = 0;
    const source = subscriberHealthSource({ subscriber: bus.subscriber('otlp_spans'), deadLetters: () => dead, target: 'consumer-1' });
    dead = 4;
    expect(await source.sample()).toEqual([{ target: 'consumer-1', lagByTopic: { otlp_spans: 3 }, deadLetters: 4 }]);
    const broken = subscriberHealthSource({ subscriber: { lag: () => Promise.reject(new Error('bus down')) } });
    expect(await broken.sample()).toEqual([{ target: 'local', error: 'bus down' }]);
  });
});
