/**
 * `fleet console`'s server on its own: what it serves, what it refuses, and
 * that a ClickHouse that does not answer is named (the browser test drives
 * it against a real endpoint).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsoleServer, type RunningConsole } from '../console/server.ts';
import { startFleet } from './support/processes.ts';

let running: RunningConsole;
let origin = '';
let deadPort = 0;

beforeAll(async () => {
  // A port nothing listens on: taken, then released.
  const probe = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => probe.once('listening', r));
  deadPort = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  running = await startConsoleServer({ clickhouseUrl: `http://127.0.0.1:${deadPort}`, host: '127.0.0.1', port: 0, maxBodyBytes: 1024 });
  origin = new URL(running.url).origin;
});
afterAll(() => running?.close());

describe('fleet console server', () => {
  it('serves the page, script and styles with a same-origin-only CSP', async () => {
    for (const [file, type] of [['/console', 'text/html'], ['/console/app.js', 'text/javascript'], ['/console/app.css', 'text/css']]) {
      const res = await fetch(`${origin}${file}`);
      expect(res.status, file).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      expect(res.headers.get('content-security-policy')).toContain("connect-src 'self'");
      expect((await res.text()).length).toBeGreaterThan(100);
    }
  });

  it('refuses other paths, methods and oversized statements, naming why', async () => {
    const missing = await fetch(`${origin}/console/secret.txt`);
    expect([missing.status, await missing.text()]).toEqual([404, 'There is no console file /console/secret.txt\n']);
    const other = await fetch(`${origin}/etc/passwd`);
    expect(other.status).toBe(404);
    const get = await fetch(`${origin}/?query=SELECT+1`);
    expect([get.status, await get.text()]).toEqual([405, 'GET / is not supported: the console sends its statements with POST\n']);
    const big = await fetch(`${origin}/`, { method: 'POST', body: 'x'.repeat(2048) });
    expect([big.status, await big.text()]).toEqual([413, 'statement larger than 1024 bytes\n']);
  });

  it('says which ClickHouse did not answer', async () => {
    const res = await fetch(`${origin}/`, { method: 'POST', body: 'SELECT 1' });
    expect(res.status).toBe(502);
    expect(await res.text()).toContain(`ClickHouse at http://127.0.0.1:${deadPort} did not answer`);
  });

  it('fleet console without --clickhouse-url exits 1 saying what to give', async () => {
    const cmd = startFleet(['console', '--console-port', '0'], { FLEET_CLICKHOUSE_URL: '' });
    expect(await cmd.exited).toBe(1);
    expect(cmd.output()).toContain('fleet console: give --clickhouse-url (FLEET_CLICKHOUSE_URL)');
  });
});
