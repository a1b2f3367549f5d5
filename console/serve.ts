/**
 * The console's static files: its page, stylesheet and bundled script,
 * served under /console by whichever server also answers the page's
 * queries (the query endpoint of `fleet start`, or `fleet console`). The
 * page's data comes only from that server's query interface with the
 * caller's token; the Content-Security-Policy keeps the page from reaching
 * any other origin.
 */
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';

export const CONSOLE_PATH = '/console';

const FILES: Record<string, { file: string; type: string }> = {
  '/console': { file: './web/index.html', type: 'text/html; charset=utf-8' },
  '/console/': { file: './web/index.html', type: 'text/html; charset=utf-8' },
  '/console/app.css': { file: './assets/app.css', type: 'text/css; charset=utf-8' },
  '/console/app.js': { file: './assets/app.js', type: 'text/javascript; charset=utf-8' },
};

const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const cache = new Map<string, Buffer>();

/** Answers a GET/HEAD for a console path and returns true; false for any other path. */
export function serveConsole(pathname: string, method: string, res: ServerResponse): boolean {
  if (pathname !== CONSOLE_PATH && !pathname.startsWith(`${CONSOLE_PATH}/`)) return false;
  const entry = FILES[pathname];
  if (!entry || (method !== 'GET' && method !== 'HEAD')) {
    res.writeHead(entry ? 405 : 404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(entry ? `${method} is not supported by ${pathname}\n` : `There is no console file ${pathname}\n`);
    return true;
  }
  let body = cache.get(entry.file);
  if (!body) {
    body = readFileSync(fileURLToPath(new URL(entry.file, import.meta.url)));
    cache.set(entry.file, body);
  }
  res.writeHead(200, {
    'Content-Type': entry.type,
    'Content-Length': String(body.byteLength),
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-cache',
  });
  res.end(method === 'HEAD' ? undefined : body);
  return true;
}
