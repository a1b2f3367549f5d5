/**
 * `fleet console --clickhouse-url …`: the console against a ClickHouse
 * server (production). Serves the page under /console and passes the
 * page's statements on `/` to the server with the caller's own credentials
 * (X-ClickHouse-User / X-ClickHouse-Key as the page sent them), so what the
 * page sees is what ClickHouse grants that user: give console users the
 * perpass_reader or perpass_tenant_<tenant> role (`fleet migrate
 * --reader-tenants`, sql/access.ts). Nothing else is reachable through it:
 * POST on `/` only, bodies capped, no credentials of its own.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CONSOLE_PATH, serveConsole } from './serve.ts';

export interface ConsoleServerOptions {
  clickhouseUrl: string;
  host: string;
  port: number;
  /** Cap on a statement the page sends (default 256 KiB). */
  maxBodyBytes?: number;
  /** How long to wait for the server's answer, seconds (default 60). */
  timeoutSec?: number;
}

export interface RunningConsole {
  /** The page: `http://host:port/console`. */
  readonly url: string;
  close(): Promise<void>;
}

/** The request headers passed on: the caller's credentials and the body's type, nothing else (no cookies, no Host). */
const PASSED = ['x-clickhouse-user', 'x-clickhouse-key', 'authorization', 'content-type'];

async function readCapped(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' }).end(`${text}\n`);
}

export async function startConsoleServer(o: ConsoleServerOptions): Promise<RunningConsole> {
  const target = new URL(o.clickhouseUrl);
  const maxBody = o.maxBodyBytes ?? 256 * 1024;
  const timeoutSec = o.timeoutSec ?? 60;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://console');
    if (serveConsole(url.pathname, method, res)) return;
    if (url.pathname !== '/') return plain(res, 404, `There is no ${url.pathname} here: the console is at ${CONSOLE_PATH}`);
    if (method !== 'POST') return plain(res, 405, `${method} / is not supported: the console sends its statements with POST`);
    const body = await readCapped(req, maxBody);
    if (body === undefined) return plain(res, 413, `statement larger than ${maxBody} bytes`);
    const upstream = new URL(target);
    for (const [k, v] of url.searchParams) upstream.searchParams.append(k, v);
    // No settings of its own (a readonly user may change none): the user's grants and profile bound what runs.
    const headers: Record<string, string> = {};
    for (const h of PASSED) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    let answer: Response;
    try {
      answer = await fetch(upstream, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutSec * 1000) });
    } catch (err) {
      return plain(res, 502, `ClickHouse at ${target.origin} did not answer: ${(err as Error).message}`);
    }
    const out = Buffer.from(await answer.arrayBuffer());
    const code = answer.headers.get('x-clickhouse-exception-code');
    res.writeHead(answer.status, {
      'Content-Type': answer.headers.get('content-type') ?? 'text/plain; charset=utf-8',
      'Content-Length': String(out.byteLength),
      ...(code && { 'X-ClickHouse-Exception-Code': code }),
    });
    res.end(out);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) plain(res, 500, `console: ${(err as Error).message}`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`console cannot listen on ${o.host}:${o.port}: ${err.message}`, { cause: err })));
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host === '0.0.0.0' ? '127.0.0.1' : o.host;
  return {
    url: `http://${host}:${port}${CONSOLE_PATH}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
