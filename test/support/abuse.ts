/**
 * Attacks on a collector, as an attacker or a misbehaving exporter would
 * make them, for the abuse suite (test/abuse.test.ts) and the memory
 * benchmark: slow bodies, slow headers, giant requests, a connection flood,
 * a tenant flooding, deeply nested AnyValues. Raw sockets where the HTTP
 * client would not misbehave the way an attacker does. Traffic goes to
 * 127.0.0.1 only.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { encodeTraceRequest, type KeyValue, type OtlpSpan } from '../../otlp/codec.ts';

export interface Target {
  host: string;
  port: number;
}

const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } });
const int = (key: string, value: number): KeyValue => ({ key, value: { intValue: value } });
const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

/** One attempt of a well-behaved agent: the attempt span and one priced LLM call under it. */
export function attemptRequest(canary: string, spec: string, tenantHint = 'default'): Uint8Array {
  const traceId = randomBytes(16);
  const attemptId = randomBytes(8);
  const end = nowNs();
  const start = end - 2_000_000_000n;
  const attempt: OtlpSpan = {
    traceId,
    spanId: attemptId,
    name: `attempt ${spec}`,
    kind: 1,
    startTimeUnixNano: start.toString(),
    endTimeUnixNano: end.toString(),
    attributes: [str('fleet.spec.id', spec), str('fleet.spec.tier', 'tier-2'), int('fleet.attempt.number', 1), str('fleet.attempt.outcome', 'pass'), str('fleet.canary', canary)],
  };
  const call: OtlpSpan = {
    traceId,
    spanId: randomBytes(8),
    parentSpanId: attemptId,
    name: 'chat deepseek-v4-flash',
    kind: 3,
    startTimeUnixNano: (start + 100_000_000n).toString(),
    endTimeUnixNano: (end - 100_000_000n).toString(),
    attributes: [
      str('gen_ai.operation.name', 'chat'),
      str('gen_ai.provider.name', 'deepseek'),
      str('gen_ai.request.model', 'deepseek-v4-flash'),
      int('gen_ai.usage.input_tokens', 1200),
      int('gen_ai.usage.output_tokens', 300),
    ],
  };
  return encodeTraceRequest({ resourceSpans: [{ resource: { attributes: [str('service.name', 'abuse-suite'), str('fleet.tenant', tenantHint)] }, scopeSpans: [{ spans: [attempt, call] }] }] });
}

/** A request of `attempts` attempts of `callsPerAttempt` LLM calls each (a flooding tenant's batch). */
export function batchRequest(canary: string, prefix: string, attempts: number, callsPerAttempt: number): Uint8Array {
  const spans: OtlpSpan[] = [];
  const end = nowNs();
  for (let i = 0; i < attempts; i++) {
    const traceId = randomBytes(16);
    const attemptId = randomBytes(8);
    spans.push({
      traceId,
      spanId: attemptId,
      name: 'attempt',
      startTimeUnixNano: (end - 1_000_000_000n).toString(),
      endTimeUnixNano: end.toString(),
      attributes: [str('fleet.spec.id', `${prefix}-${i}`), str('fleet.spec.tier', 'tier-2'), int('fleet.attempt.number', 1), str('fleet.attempt.outcome', 'fail'), str('fleet.canary', canary)],
    });
    for (let c = 0; c < callsPerAttempt; c++) {
      spans.push({
        traceId,
        spanId: randomBytes(8),
        parentSpanId: attemptId,
        name: 'chat',
        startTimeUnixNano: (end - 900_000_000n).toString(),
        endTimeUnixNano: (end - 100_000_000n).toString(),
        attributes: [str('gen_ai.provider.name', 'deepseek'), str('gen_ai.request.model', 'deepseek-v4-flash'), int('gen_ai.usage.input_tokens', 10), int('gen_ai.usage.output_tokens', 5)],
      });
    }
  }
  return encodeTraceRequest({ resourceSpans: [{ resource: { attributes: [str('service.name', 'flood')] }, scopeSpans: [{ spans }] }] });
}

/** Protobuf varint. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}
const lengthDelimited = (field: number, payload: Uint8Array | number[]): number[] => [(field << 3) | 2, ...varint(payload.length), ...payload];

/**
 * An ExportTraceServiceRequest of `spans` minimal spans (ids and times
 * only, ~40 bytes each) in one resource and scope, written directly: 1 M
 * spans make ~45 MiB, the issue's giant request.
 */
export function minimalSpansRequest(spans: number): Buffer {
  const traceId = randomBytes(16);
  const one = (i: number): number[] => {
    const spanId = Buffer.alloc(8);
    spanId.writeUInt32BE(i + 1, 4);
    const time = Buffer.alloc(8);
    time.writeBigUInt64LE(nowNs());
    return [...lengthDelimited(1, traceId), ...lengthDelimited(2, spanId), 0x39, ...time, 0x41, ...time];
  };
  const spanBytes = one(0).length;
  const spanField = 1 + varint(spanBytes).length + spanBytes;
  const scopeSpansLen = spans * spanField;
  const scopeSpansHead = [(2 << 3) | 2, ...varint(scopeSpansLen)];
  const resourceSpansLen = scopeSpansHead.length + scopeSpansLen;
  const head = Buffer.from([(1 << 3) | 2, ...varint(resourceSpansLen), ...scopeSpansHead]);
  const body = Buffer.allocUnsafe(head.length + scopeSpansLen);
  head.copy(body);
  let at = head.length;
  for (let i = 0; i < spans; i++) {
    const field = [(2 << 3) | 2, ...varint(spanBytes), ...one(i)];
    body.set(field, at);
    at += field.length;
  }
  return body;
}

/** An attempt span whose attribute holds an AnyValue nested `depth` arrays deep, as protobuf (built inside out: no recursion). */
export function nestedProtobufRequest(depth: number): Buffer {
  const value = [(1 << 3) | 2, 1, 0x78]; // AnyValue{string_value: "x"}
  const parts: number[][] = [];
  let length = value.length;
  // Each level: AnyValue{array_value(5): ArrayValue{values(1): <inner AnyValue>}}; record the prefixes from the inside out.
  for (let i = 0; i < depth; i++) {
    const arrayValueHead = [(1 << 3) | 2, ...varint(length)];
    const arrayLen = arrayValueHead.length + length;
    const anyHead = [(5 << 3) | 2, ...varint(arrayLen)];
    parts.push([...anyHead, ...arrayValueHead]);
    length = anyHead.length + arrayLen;
  }
  const nested = Buffer.concat([...parts.reverse().map((p) => Buffer.from(p)), Buffer.from(value)]);
  const keyValue = Buffer.concat([Buffer.from(lengthDelimited(1, Buffer.from('deep'))), Buffer.from([(2 << 3) | 2, ...varint(nested.length)]), nested]);
  const time = Buffer.alloc(8);
  time.writeBigUInt64LE(nowNs());
  const span = Buffer.concat([
    Buffer.from(lengthDelimited(1, randomBytes(16))),
    Buffer.from(lengthDelimited(2, randomBytes(8))),
    Buffer.from([0x39]),
    time,
    Buffer.from([0x41]),
    time,
    Buffer.from([(9 << 3) | 2, ...varint(keyValue.length)]),
    keyValue,
  ]);
  const scopeSpans = Buffer.concat([Buffer.from([(2 << 3) | 2, ...varint(span.length)]), span]);
  const resourceSpans = Buffer.concat([Buffer.from([(2 << 3) | 2, ...varint(scopeSpans.length)]), scopeSpans]);
  return Buffer.concat([Buffer.from([(1 << 3) | 2, ...varint(resourceSpans.length)]), resourceSpans]);
}

/** The same as OTLP/JSON. */
export function nestedJsonRequest(depth: number): string {
  const inner = '{"arrayValue":{"values":['.repeat(depth) + '{"stringValue":"x"}' + ']}}'.repeat(depth);
  const t = nowNs().toString();
  return `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"${randomBytes(16).toString('hex')}","spanId":"${randomBytes(8).toString('hex')}","name":"deep","startTimeUnixNano":"${t}","endTimeUnixNano":"${t}","attributes":[{"key":"deep","value":${inner}}]}]}]}]}`;
}

// ---------------------------------------------------------------- raw HTTP

/** The status code of the response read from a raw socket, or undefined if it closed without one. */
function statusOf(socket: net.Socket): Promise<number | undefined> {
  return new Promise((resolve) => {
    let head = '';
    socket.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (m) resolve(Number(m[1]));
    });
    socket.on('close', () => resolve(undefined));
    socket.on('error', () => resolve(undefined));
  });
}

const connect = (t: Target): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const s = net.connect(t.port, t.host, () => resolve(s));
    s.once('error', reject);
  });

export interface AttackOutcome {
  /** Response status codes (or 'closed' for a connection cut without one), counted. */
  outcomes: Record<string, number>;
}

const tally = (codes: (number | undefined)[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const c of codes) out[c ?? 'closed'] = (out[c ?? 'closed'] ?? 0) + 1;
  return out;
};

/** `connections` uploads declaring `declaredBytes`, each sending one byte every `everyMs` until answered or `durationMs` passes. */
export async function slowBodies(t: Target, o: { connections: number; declaredBytes: number; everyMs: number; durationMs: number; token?: string }): Promise<AttackOutcome> {
  const until = Date.now() + o.durationMs;
  const one = async (): Promise<number | undefined> => {
    const s = await connect(t);
    const status = statusOf(s);
    s.write(`POST /v1/traces HTTP/1.1\r\nHost: ${t.host}\r\nContent-Type: application/x-protobuf\r\nContent-Length: ${o.declaredBytes}\r\n${o.token ? `Authorization: Bearer ${o.token}\r\n` : ''}\r\n`);
    let answered: number | undefined | 'pending' = 'pending';
    void status.then((c) => (answered = c));
    while (answered === 'pending' && Date.now() < until) {
      if (!s.destroyed) s.write(Buffer.from([0x0a]));
      await new Promise((r) => setTimeout(r, o.everyMs));
    }
    s.destroy();
    return answered === 'pending' ? undefined : answered;
  };
  return { outcomes: tally(await Promise.all(Array.from({ length: o.connections }, one))) };
}

/** `connections` requests whose headers arrive one byte every `everyMs`, never finished; until answered, closed or `durationMs`. */
export async function slowHeaders(t: Target, o: { connections: number; everyMs: number; durationMs: number }): Promise<AttackOutcome> {
  const until = Date.now() + o.durationMs;
  const one = async (): Promise<number | undefined> => {
    const s = await connect(t);
    const status = statusOf(s);
    let answered: number | undefined | 'pending' = 'pending';
    void status.then((c) => (answered = c));
    const headers = `POST /v1/traces HTTP/1.1\r\nHost: ${t.host}\r\nContent-Type: application/x-protobuf\r\nX-Padding: ${'a'.repeat(10_000)}`;
    for (let i = 0; answered === 'pending' && Date.now() < until && i < headers.length; i++) {
      if (!s.destroyed) s.write(headers[i]!);
      await new Promise((r) => setTimeout(r, o.everyMs));
    }
    s.destroy();
    return answered === 'pending' ? undefined : answered;
  };
  return { outcomes: tally(await Promise.all(Array.from({ length: o.connections }, one))) };
}

/**
 * Holds `connections` idle connections open for `durationMs`, opening a
 * new one whenever the server closes one (a flood keeps the cap full).
 * Counts the connections the server closed.
 */
export async function connectionFlood(t: Target, o: { connections: number; durationMs: number }): Promise<{ opened: number; closedByServer: number }> {
  const until = Date.now() + o.durationMs;
  let opened = 0;
  let closedByServer = 0;
  const open = new Set<net.Socket>();
  const keep = async (): Promise<void> => {
    while (Date.now() < until) {
      let s: net.Socket;
      try {
        s = await connect(t);
      } catch {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      opened++;
      open.add(s);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, until - Date.now()));
        s.once('close', () => {
          clearTimeout(timer);
          if (Date.now() < until) closedByServer++;
          resolve();
        });
        s.on('error', () => {});
      });
      open.delete(s);
      s.destroy();
    }
  };
  await Promise.all(Array.from({ length: o.connections }, keep));
  for (const s of open) s.destroy();
  return { opened, closedByServer };
}

/** POSTs `body` over a new connection and returns the status (or undefined when cut); the body is written at socket speed. */
export async function rawPost(t: Target, body: Uint8Array | string, o: { contentType?: string; token?: string } = {}): Promise<number | undefined> {
  const s = await connect(t);
  const status = statusOf(s);
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  s.on('error', () => {});
  s.write(
    `POST /v1/traces HTTP/1.1\r\nHost: ${t.host}\r\nContent-Type: ${o.contentType ?? 'application/x-protobuf'}\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n${o.token ? `Authorization: Bearer ${o.token}\r\n` : ''}\r\n`,
  );
  s.write(bytes);
  const code = await status;
  s.destroy();
  return code;
}
