/**
 * An OTLP/HTTP trace backend in the test process: a real HTTP server that
 * decodes what it is sent (protobuf or OTLP/JSON, gzip or not) and answers
 * as the test says, for tests of what perpass forwards.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { decodeTraceRequest, flattenSpans, traceRequestFromJson, type TraceRequest } from '../../otlp/codec.ts';

export interface Received {
  headers: IncomingMessage['headers'];
  request: TraceRequest;
  at: number;
}

/** A backend: records every request it answers 2xx to; `answer` decides each answer (default 200, empty body). */
export class Backend {
  readonly received: Received[] = [];
  readonly refused: Received[] = [];
  answer: (req: Received, n: number) => { status: number; headers?: Record<string, string>; body?: Uint8Array | string } = () => ({ status: 200 });
  private server: Server | undefined;
  private requests = 0;

  async listen(port = 0): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body = Buffer.concat(chunks);
    if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
    const request = req.headers['content-type'] === 'application/json' ? traceRequestFromJson(JSON.parse(body.toString('utf8'))) : decodeTraceRequest(body);
    const r: Received = { headers: req.headers, request, at: Date.now() };
    const a = this.answer(r, this.requests++);
    (a.status < 300 ? this.received : this.refused).push(r);
    res.writeHead(a.status, a.headers ?? {});
    res.end(a.body ?? '');
  }

  spanIds(): string[] {
    return this.received.flatMap((r) => [...flattenSpans(r.request)].map((s) => s.spanId));
  }
}

