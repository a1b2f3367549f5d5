/**
 * A minimal OTLP/HTTP trace receiver for the instrumentation tests: a real
 * node:http server that decodes what the real OpenTelemetry exporters send
 * (protobuf, or JSON) with the project's codec, and answers as the OTLP spec
 * says (200 with an ExportTraceServiceResponse).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeTraceRequest, encodeTraceResponse, flattenSpans, traceRequestFromJson, type SpanRecord } from '../otlp/codec.ts';

export interface ReceivedRequest {
  path: string;
  contentType: string;
  headers: http.IncomingHttpHeaders;
  receivedAtMs: number;
  spans: SpanRecord[];
}

export class OtlpReceiver {
  readonly requests: ReceivedRequest[] = [];
  readonly #server: http.Server;
  readonly url: string;

  private constructor(server: http.Server) {
    this.#server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  static async start(): Promise<OtlpReceiver> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const receiver = new OtlpReceiver(server);
    server.on('request', (req, res) => receiver.#handle(req, res));
    return receiver;
  }

  get spans(): SpanRecord[] {
    return this.requests.flatMap((r) => r.spans);
  }

  /** Resolves with the received spans once `done` holds for them; rejects after timeoutMs. */
  async waitFor(done: (spans: SpanRecord[]) => boolean, timeoutMs = 5000): Promise<SpanRecord[]> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.spans)) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for spans; received ${this.spans.map((s) => s.name).join(', ')}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.spans;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const contentType = req.headers['content-type'] ?? '';
      const request = contentType.startsWith('application/json') ? traceRequestFromJson(JSON.parse(body.toString('utf8'))) : decodeTraceRequest(body);
      this.requests.push({ path: req.url ?? '', contentType, headers: req.headers, receivedAtMs: Date.now(), spans: [...flattenSpans(request)] });
      const payload = contentType.startsWith('application/json') ? Buffer.from('{}') : Buffer.from(encodeTraceResponse());
      res.writeHead(200, { 'content-type': contentType.startsWith('application/json') ? 'application/json' : 'application/x-protobuf' });
      res.end(payload);
    });
  }
}
