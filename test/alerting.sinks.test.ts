/**
 * Sinks against real local receivers (node:http) and the in-process bus, and
 * the delivery queues: retries with backoff, non-retryable answers,
 * Retry-After, bounded queues, abandoning on stop.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { SinkQueue, backoffMs, type DeliveryOutcome } from '../alerting/delivery.ts';
import {
  alertmanagerSink,
  kafkaSink,
  logSink,
  SIGNATURE_HEADER,
  slackPayload,
  slackSink,
  webhookSink,
  type Notification,
} from '../alerting/sinks.ts';
import { MemoryBus } from '../bus/memory.ts';
import type { ConsumedMessage } from '../bus/types.ts';

interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  raw: string;
  body: unknown;
  at: number;
}

const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) await new Promise<void>((resolve) => s.close(() => resolve()));
});

/** A local HTTP receiver recording each request; `answer` picks the status per request (1-based). */
async function receiver(answer: (n: number) => { status: number; headers?: Record<string, string> } = () => ({ status: 200 })) {
  const received: Received[] = [];
  let n = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const a = answer(++n);
      if (a.status < 300) received.push({ path: req.url ?? '', headers: req.headers, raw, body: JSON.parse(raw), at: Date.now() });
      res.writeHead(a.status, { 'content-type': 'text/plain', ...a.headers }).end(a.status < 300 ? 'ok' : 'nope');
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, requests: () => n };
}

const T = Date.parse('2026-05-20T10:00:00Z');
const note = (over: Partial<Notification> = {}): Notification => ({
  id: `0123456789abcdef-${T}`,
  event: 'firing',
  status: 'firing',
  rule: 'pass_rate_regression',
  kind: 'pass_rate_regression',
  severity: 'critical',
  fingerprint: '0123456789abcdef',
  labels: { team: 'agents', tenant: 'default', model: 'kimi-k2.6', spec_tier: 'tier-3', canary: '', alertname: 'pass_rate_regression', severity: 'critical' },
  annotations: { runbook_url: 'https://runbooks.test/pass-rate', summary: 'Pass rate of kimi-k2.6 (tenant=default, spec_tier=tier-3) fell from 90.0% to 50.0%', description: 'Recent: 50.0% (15/30) <b>&</b>' },
  details: { recent_pass_rate: 0.5, baseline_pass_rate: 0.9, p_value: 3.7e-7 },
  startsAt: T,
  endsAt: null,
  at: T,
  generatorURL: 'https://grafana.test/d/perpass',
  ...over,
});

const signal = () => AbortSignal.timeout(5000);
const delivery = { queueSize: 100, maxAttempts: 4, initialBackoffMs: 40, maxBackoffMs: 200, timeoutMs: 2000 };

describe('sinks', () => {
  it('webhook: the documented JSON document, signed with HMAC-SHA256 over the exact body', async () => {
    const r = await receiver();
    await webhookSink({ url: `${r.url}/hook`, secret: 'shared-secret', headers: { authorization: 'Bearer t' } }).send(note(), signal());
    const [got] = r.received;
    expect(got!.path).toBe('/hook');
    expect(got!.headers[SIGNATURE_HEADER.toLowerCase()]).toBe(`sha256=${createHmac('sha256', 'shared-secret').update(got!.raw).digest('hex')}`);
    expect(got!.headers['x-perpass-event']).toBe('firing');
    expect(got!.headers['x-perpass-delivery']).toBe(`0123456789abcdef-${T}`);
    expect(got!.headers.authorization).toBe('Bearer t');
    expect(got!.body).toEqual({
      version: '1',
      id: `0123456789abcdef-${T}`,
      event: 'firing',
      status: 'firing',
      rule: 'pass_rate_regression',
      kind: 'pass_rate_regression',
      severity: 'critical',
      fingerprint: '0123456789abcdef',
      labels: note().labels,
      annotations: note().annotations,
      details: note().details,
      startsAt: '2026-05-20T10:00:00.000Z',
      endsAt: null,
      at: '2026-05-20T10:00:00.000Z',
      generatorURL: 'https://grafana.test/d/perpass',
    });
    // unsigned without a secret
    await webhookSink({ url: r.url }).send(note(), signal());
    expect(r.received[1]!.headers[SIGNATURE_HEADER.toLowerCase()]).toBeUndefined();
  });

  it('slack: text fallback and Block Kit within Slack limits, mrkdwn escaped', async () => {
    const r = await receiver();
    await slackSink({ url: `${r.url}/services/T/B/X` }).send(note(), signal());
    const body = r.received[0]!.body as { text: string; blocks: { type: string; text?: { type: string; text: string }; elements?: { text: string }[] }[] };
    expect(body.text).toBe(':red_circle: FIRING: Pass rate of kimi-k2.6 (tenant=default, spec_tier=tier-3) fell from 90.0% to 50.0%');
    expect(body.blocks.map((b) => b.type)).toEqual(['header', 'section', 'context']);
    expect(body.blocks[0]!.text).toEqual({ type: 'plain_text', text: 'FIRING: Pass rate of kimi-k2.6 (tenant=default, spec_tier=tier-3) fell from 90.0% to 50.0%', emoji: true });
    expect(body.blocks[1]!.text).toEqual({ type: 'mrkdwn', text: 'Recent: 50.0% (15/30) &lt;b&gt;&amp;&lt;/b&gt;' });
    expect(body.blocks[2]!.elements![0]!.text).toContain('<https://grafana.test/d/perpass|details>');
    const long = slackPayload(note({ annotations: { summary: 'x'.repeat(500), description: 'y'.repeat(5000) }, status: 'resolved', event: 'resolved', resolveReason: 'recovered' }));
    const blocks = long.blocks as { text?: { text: string } }[];
    expect(blocks[0]!.text!.text.length).toBe(150);
    expect(blocks[0]!.text!.text.startsWith('RESOLVED (recovered): ')).toBe(true);
    expect(blocks[1]!.text!.text.length).toBe(3000);
    expect((long.text as string).startsWith(':large_green_circle:')).toBe(true);
  });

  it('slack: a hostile model name, tenant or summary becomes no live mention or link anywhere in the payload, text included', async () => {
    const r = await receiver();
    const evil = '<!channel> evil&<http://x.example|click> <@U024BE7LH> <#C024BE7LR> <!subteam^S123>';
    await slackSink({ url: r.url }).send(
      note({
        labels: { alertname: 'pass_rate_regression', tenant: '<!here>', model: evil, spec_tier: 'tier-3', severity: 'critical' },
        annotations: { summary: `Pass rate of ${evil} fell`, description: `model ${evil}` },
        rule: `rule ${evil}`,
        severity: '<!everyone>',
      }),
      signal(),
    );
    const body = r.received[0]!.body as { text: string; blocks: { type: string; text?: { type: string; text: string }; elements?: { type: string; text: string }[] }[] };
    // Everything Slack parses as mrkdwn: the top-level text, section and context texts.
    const mrkdwn = [body.text, ...body.blocks.flatMap((b) => [...(b.text?.type === 'mrkdwn' ? [b.text.text] : []), ...(b.elements ?? []).map((e) => e.text)])];
    expect(mrkdwn).toHaveLength(3);
    for (const text of mrkdwn) {
      // The only markup left is perpass' own details link; every other < is escaped.
      const withoutOwnLink = text.replace('<https://grafana.test/d/perpass|details>', '');
      expect(withoutOwnLink).not.toMatch(/[<>]/);
      expect(withoutOwnLink).not.toMatch(/&(?!amp;|lt;|gt;)/);
    }
    expect(body.text).toContain('&lt;!channel&gt; evil&amp;&lt;http://x.example|click&gt;');
    // The header is plain_text: Slack renders it literally, it cannot mention or link.
    expect(body.blocks[0]!.text!.type).toBe('plain_text');
  });

  it('slack: a generatorURL that is not http(s) is not made a link', () => {
    const payload = slackPayload(note({ generatorURL: 'javascript:alert(1)|x' }));
    expect(JSON.stringify(payload)).not.toContain('javascript:');
  });

  it('alertmanager: POST /api/v2/alerts; firing valid for 4 resends, resolved = endsAt in the past', async () => {
    const r = await receiver();
    const sink = alertmanagerSink({ url: `${r.url}/`, resendIntervalMs: 60_000, evaluationIntervalMs: 30_000, now: () => T });
    expect(sink.resendIntervalMs).toBe(60_000);
    await sink.send(note(), signal());
    await sink.send(note({ event: 'resolved', status: 'resolved', endsAt: T + 3_600_000, at: T + 3_600_000 }), signal());
    expect(r.received.map((x) => x.path)).toEqual(['/api/v2/alerts', '/api/v2/alerts']);
    const labels = { team: 'agents', tenant: 'default', model: 'kimi-k2.6', spec_tier: 'tier-3', alertname: 'pass_rate_regression', severity: 'critical' };
    expect(r.received[0]!.body).toEqual([
      { labels, annotations: note().annotations, startsAt: '2026-05-20T10:00:00.000Z', endsAt: '2026-05-20T10:04:00.000Z', generatorURL: 'https://grafana.test/d/perpass' },
    ]);
    expect(r.received[1]!.body).toEqual([
      { labels, annotations: note().annotations, startsAt: '2026-05-20T10:00:00.000Z', endsAt: '2026-05-20T11:00:00.000Z', generatorURL: 'https://grafana.test/d/perpass' },
    ]);
    // no keep-alive: no endsAt, Alertmanager's resolve_timeout applies
    await alertmanagerSink({ url: r.url, resendIntervalMs: 0 }).send(note(), signal());
    expect((r.received[2]!.body as Record<string, unknown>[])[0]).not.toHaveProperty('endsAt');
  });

  it('kafka: the JSON document keyed by fingerprint, through the bus Publisher', async () => {
    const bus = new MemoryBus({ partitions: 2 });
    await kafkaSink({ topic: 'perpass_alerts', publisher: bus.publisher() }).send(note(), signal());
    const got: ConsumedMessage[] = [];
    const sub = bus.subscriber('perpass_alerts');
    await sub.start({ onAssign: () => {}, onBatch: async (b) => void got.push(...b.messages) });
    await bus.idle();
    await sub.stop();
    expect(got).toHaveLength(1);
    expect(got[0]!.key).toBe('0123456789abcdef');
    expect(got[0]!.headers).toEqual({ 'content-type': 'application/json', 'perpass-alert-event': 'firing', 'perpass-alert-id': `0123456789abcdef-${T}` });
    expect(JSON.parse(new TextDecoder().decode(got[0]!.value))).toMatchObject({ version: '1', status: 'firing', labels: { model: 'kimi-k2.6' } });
  });

  it('log: one line per notification, text or JSON', async () => {
    const lines: string[] = [];
    await logSink({ write: (l) => lines.push(l) }).send(note(), signal());
    await logSink({ format: 'json', write: (l) => lines.push(l) }).send(note({ event: 'renotify' }), signal());
    expect(lines[0]).toBe(
      '2026-05-20T10:00:00.000Z alert FIRING pass_rate_regression {team="agents" tenant="default" model="kimi-k2.6" spec_tier="tier-3" canary="" severity="critical"}: Pass rate of kimi-k2.6 (tenant=default, spec_tier=tier-3) fell from 90.0% to 50.0%',
    );
    expect(JSON.parse(lines[1]!)).toMatchObject({ event: 'renotify', status: 'firing' });
  });
});

describe('delivery queues', () => {
  function hooks() {
    const outcomes: DeliveryOutcome[] = [];
    const retries: { attempt: number; delayMs: number; error: string }[] = [];
    return {
      outcomes,
      retries,
      hooks: {
        onOutcome: (o: DeliveryOutcome) => outcomes.push(o),
        onRetry: (_s: string, _n: Notification, attempt: number, error: string, delayMs: number) => retries.push({ attempt, delayMs, error }),
      },
    };
  }

  it('backs off exponentially with jitter, capped', () => {
    const opts = { initialBackoffMs: 1000, maxBackoffMs: 60_000 };
    expect([1, 2, 3, 7, 12].map((a) => backoffMs(a, opts, () => 0))).toEqual([500, 1000, 2000, 30_000, 30_000]);
    expect([1, 2, 3, 7, 12].map((a) => backoffMs(a, opts, () => 1))).toEqual([1000, 2000, 4000, 60_000, 60_000]);
  });

  it('retries a failing receiver (500, 500, then 200) without holding up another sink', async () => {
    const flaky = await receiver((n) => ({ status: n <= 2 ? 500 : 200 }));
    const healthy = await receiver();
    const h = hooks();
    const a = new SinkQueue(webhookSink({ name: 'flaky', url: flaky.url }), delivery, h.hooks);
    const b = new SinkQueue(webhookSink({ name: 'healthy', url: healthy.url }), delivery, h.hooks);
    const start = Date.now();
    a.enqueue(note());
    b.enqueue(note());
    await b.idle();
    expect(healthy.received).toHaveLength(1);
    expect(flaky.received).toHaveLength(0); // still backing off
    await a.idle();
    expect(flaky.received).toHaveLength(1);
    expect(flaky.requests()).toBe(3);
    expect(flaky.received[0]!.at - start).toBeGreaterThanOrEqual(20 + 40); // two backoffs of ≥ half their base
    expect(healthy.received[0]!.at).toBeLessThan(flaky.received[0]!.at);
    expect(h.retries.map((r) => r.attempt)).toEqual([1, 2]);
    expect(h.retries[0]!.error).toMatch(/HTTP 500/);
    expect(h.outcomes.map((o) => [o.sink, o.status, o.attempts])).toEqual([
      ['healthy', 'delivered', 1],
      ['flaky', 'delivered', 3],
    ]);
  });

  it('gives up at once on a 4xx that a retry cannot fix, and after maxAttempts on 5xx', async () => {
    const rejecting = await receiver(() => ({ status: 400 }));
    const down = await receiver(() => ({ status: 503 }));
    const h = hooks();
    const a = new SinkQueue(webhookSink({ name: 'rejecting', url: rejecting.url }), delivery, h.hooks);
    const b = new SinkQueue(webhookSink({ name: 'down', url: down.url }), delivery, h.hooks);
    a.enqueue(note());
    b.enqueue(note());
    await Promise.all([a.idle(), b.idle()]);
    expect(rejecting.requests()).toBe(1);
    expect(down.requests()).toBe(4);
    expect(h.outcomes.map((o) => [o.sink, o.status, o.attempts])).toEqual([
      ['rejecting', 'failed', 1],
      ['down', 'failed', 4],
    ]);
    expect(h.outcomes[0]!.error).toMatch(/HTTP 400 nope/);
  });

  it('honours Retry-After on 429', async () => {
    const limited = await receiver((n) => (n === 1 ? { status: 429, headers: { 'retry-after': '0' } } : { status: 200 }));
    const h = hooks();
    const q = new SinkQueue(slackSink({ url: limited.url }), { ...delivery, initialBackoffMs: 60_000, maxBackoffMs: 60_000 }, h.hooks);
    q.enqueue(note());
    await q.idle();
    expect(h.retries).toEqual([{ attempt: 1, delayMs: 0, error: expect.stringMatching(/HTTP 429/) as unknown as string }]);
    expect(h.outcomes[0]).toMatchObject({ status: 'delivered', attempts: 2 });
  });

  it('is bounded: a full queue drops its oldest waiting notification, and says so', async () => {
    const down = await receiver(() => ({ status: 503 }));
    const h = hooks();
    const q = new SinkQueue(webhookSink({ name: 'down', url: down.url }), { ...delivery, queueSize: 2, initialBackoffMs: 10_000, maxBackoffMs: 10_000 }, h.hooks);
    for (let i = 0; i < 4; i++) q.enqueue(note({ id: `n${i}` }));
    expect(q.length).toBe(2);
    expect(h.outcomes.map((o) => [o.notification.id, o.status])).toEqual([
      ['n1', 'dropped'],
      ['n2', 'dropped'],
    ]);
    // stop abandons what is left (the head in backoff and n3), unreported
    const left = await q.stop(0);
    expect(left.map((n) => n.id)).toEqual(['n0', 'n3']);
    expect(h.outcomes).toHaveLength(2);
    expect(q.enqueue(note())).toBe(false);
  });

  it('alertmanager queue: through an outage only the newest keep-alive waits, endsAt is computed when it is finally sent, and a resolution superseded by a new firing is never sent', async () => {
    let up = false;
    const am = await receiver(() => ({ status: up ? 200 : 503 }));
    let clock = T;
    const h = hooks();
    const q = new SinkQueue(alertmanagerSink({ url: am.url, resendIntervalMs: 20_000, now: () => clock }), { ...delivery, maxAttempts: 1000, initialBackoffMs: 20, maxBackoffMs: 20 }, h.hooks);
    /** Waits for `n` more (refused) posts: the second starts after the first is answered, so after whatever came before. */
    const refusedPosts = async (n: number) => {
      const target = am.requests() + n;
      while (am.requests() < target) await new Promise((r) => setTimeout(r, 5));
    };
    q.enqueue(note({ id: 'fire' }));
    await refusedPosts(1);
    for (let i = 1; i <= 9; i++) {
      clock = T + i * 20_000;
      q.enqueue(note({ id: `keepalive-${i}`, event: 'resend', at: clock }));
    }
    // the head (the first post, retrying) and one keep-alive: the newest
    expect(q.length).toBe(2);
    // a resolution, then the alert fires again before anything went out: the resolution is dropped
    q.enqueue(note({ id: 'resolve', event: 'resolved', status: 'resolved', endsAt: clock, at: clock }));
    expect(q.length).toBe(2);
    q.enqueue(note({ id: 'refire', startsAt: clock + 1, at: clock + 1 }));
    expect(h.outcomes.map((o) => [o.notification.id, o.status])).toEqual([['resolve', 'dropped']]);
    clock = T + 200_000;
    await refusedPosts(2);
    up = true;
    await q.idle();
    const posts = am.received.map((x) => (x.body as { startsAt: string; endsAt: string }[])[0]!);
    expect(posts.map((p) => Date.parse(p.endsAt))).toEqual([clock + 80_000, clock + 80_000]);
    expect(posts.every((p) => Date.parse(p.endsAt) > clock)).toBe(true);
    expect(h.outcomes.map((o) => [o.notification.id, o.status])).toEqual([
      ['resolve', 'dropped'],
      ['fire', 'delivered'],
      ['refire', 'delivered'],
    ]);
    await q.stop(0);
  });

  it('stop waits for the queue to drain when it can', async () => {
    const slowOk = await receiver((n) => ({ status: n === 1 ? 500 : 200 }));
    const h = hooks();
    const q = new SinkQueue(webhookSink({ url: slowOk.url }), delivery, h.hooks);
    q.enqueue(note({ id: 'a' }));
    q.enqueue(note({ id: 'b' }));
    expect(await q.stop(5_000)).toEqual([]);
    expect(slowOk.received.map((r) => (r.body as { id: string }).id)).toEqual(['a', 'b']);
  });
});
