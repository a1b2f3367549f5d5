/**
 * The query endpoint of a real `fleet start`, attacked as an outsider would
 * (issue: least privilege): tokens from files, every SYSTEM statement
 * refused to readers and the writer, no CORS, foreign Host headers refused
 * (DNS rebinding), the host's files and server-wide state out of reach,
 * a query_id with CR/LF answered 400, tenant-bound tokens from a file.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { totalmem } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleet, type Child } from './support/processes.ts';
import { tempDir } from './support/store.ts';

const READ = 'least-privilege-reader';
const WRITE = 'least-privilege-writer-0123456789';
const TENANT = 'tenant-reader-token';
const secrets = tempDir('secrets');
const file = (name: string, text: string) => {
  const p = path.join(secrets, name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
};

let fleet: Child;
let url = '';

beforeAll(async () => {
  fleet = startFleet([
    'start',
    '--data-dir', tempDir('least-privilege'),
    '--collector-port', '0',
    '--query-port', '0',
    '--query-token-file', file('read', `${READ}\n`),
    '--query-write-token-file', file('write', `${WRITE}\n`),
    '--query-tokens-file', file('tenants', `# token=tenant, one a line\n${TENANT}=acme\n`),
    '--auth-tokens-file', file('collector', 'collector-token=acme\n'),
    '--query-allowed-hosts', 'perpass.internal',
  ]);
  url = (await fleet.waitFor(/query (http:\/\/[\d.]+:\d+)/, 120_000))[1]!;
}, 180_000);

afterAll(async () => {
  await fleet?.kill();
});

type Who = 'reader' | 'writer' | 'tenant' | 'nobody';
const credentials: Record<Who, Record<string, string>> = {
  reader: { Authorization: `Bearer ${READ}` },
  writer: { 'X-ClickHouse-User': 'perpass_writer', 'X-ClickHouse-Key': WRITE },
  tenant: { Authorization: `Bearer ${TENANT}` },
  nobody: {},
};

async function post(who: Who, sql: string, params: Record<string, string> = {}, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/?${new URLSearchParams(params)}`, { method: 'POST', body: sql, headers: { ...credentials[who], ...headers } });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

/** A raw HTTP request, for headers fetch will not send (Host). */
function raw(pathAndQuery: string, headers: Record<string, string>): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: pathAndQuery, method: 'GET', headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

const SYSTEM_STATEMENTS = [
  'SYSTEM STOP MERGES', 'SYSTEM START MERGES', 'SYSTEM STOP TTL MERGES', 'SYSTEM STOP MOVES', 'SYSTEM STOP VIEWS', 'SYSTEM START VIEWS',
  'SYSTEM STOP FETCHES', 'SYSTEM STOP REPLICATED SENDS', 'SYSTEM STOP DISTRIBUTED SENDS', 'SYSTEM DROP MARK CACHE', 'SYSTEM DROP UNCOMPRESSED CACHE',
  'SYSTEM DROP DNS CACHE', 'SYSTEM DROP QUERY CACHE', 'SYSTEM DROP FORMAT SCHEMA CACHE', 'SYSTEM FLUSH LOGS', 'SYSTEM RELOAD CONFIG',
  'SYSTEM RELOAD DICTIONARIES', 'SYSTEM RELOAD MODELS', 'SYSTEM RELOAD FUNCTIONS', 'SYSTEM RELOAD USERS', 'SYSTEM SHUTDOWN', 'SYSTEM KILL',
  'SYSTEM SYNC REPLICA fleet.attempts', 'SYSTEM RESTART REPLICAS', 'SYSTEM ENABLE FAILPOINT replicated_merge_tree_commit_zk_fail_after_op',
  'SYSTEM FREEZE WITH NAME x', 'SYSTEM UNFREEZE WITH NAME x', 'SYSTEM WAIT LOADING PARTS fleet.attempts', 'SYSTEM PREWARM MARK CACHE fleet.attempts',
];

describe('fleet start: the query endpoint, least privilege', () => {
  it('takes its tokens from files: reader, writer, tenant-bound reader', async () => {
    expect((await post('nobody', 'SELECT 1')).status).toBe(401);
    expect((await post('reader', 'SELECT 1')).body).toBe('1\n');
    expect((await post('tenant', "SELECT position(toString(getSetting('additional_table_filters')), 'acme') > 0")).body).toBe('1\n');
    expect((await post('reader', "SELECT toString(getSetting('additional_table_filters'))")).body).toBe('{}\n');
    const made = await post('writer', 'CREATE TABLE fleet.lp_probe (x String) ENGINE = MergeTree ORDER BY x');
    expect(made.status, made.body).toBe(200);
    expect(fleet.output()).not.toContain(READ);
    expect(fleet.output()).not.toContain(WRITE);
  });

  it.each(SYSTEM_STATEMENTS)('refuses %s to readers and the writer', async (sql) => {
    for (const who of ['reader', 'tenant', 'writer'] as const) {
      const a = await post(who, sql);
      expect(a.status, `${who}: ${a.body}`).not.toBe(200);
      expect(a.body, who).toMatch(/\((READONLY|ACCESS_DENIED|SYNTAX_ERROR)\)/);
    }
  });

  it('keeps the merges and views running after the refusals (server-wide state unchanged)', async () => {
    const a = await post('reader', 'SELECT 1 FROM system.one');
    expect(a.body).toBe('1\n');
  });

  it('never sends Access-Control-Allow-*, and refuses add_http_cors_header', async () => {
    const origin = { Origin: 'https://evil.example' };
    const answers = [
      await post('reader', 'SELECT 1', {}, origin),
      await post('reader', 'SELECT 1', { add_http_cors_header: '1' }, origin),
      await post('reader', 'SELECT 1 SETTINGS add_http_cors_header = 1', {}, origin),
      await post('nobody', 'SELECT 1', {}, origin),
    ];
    const preflight = await fetch(`${url}/`, { method: 'OPTIONS', headers: { ...origin, 'Access-Control-Request-Method': 'POST' } });
    for (const h of [...answers.map((a) => a.headers), preflight.headers]) {
      expect([...h.keys()].filter((k) => k.startsWith('access-control-'))).toEqual([]);
    }
    expect(answers[1]!.status).toBe(403);
    expect(answers[1]!.body).toContain('add_http_cors_header');
    expect(answers[2]!.status).not.toBe(200);
    const ping = await raw('/?query=SELECT+1&add_http_cors_header=1', { Origin: 'https://evil.example', Authorization: `Bearer ${READ}` });
    expect(Object.keys(ping.headers).filter((k) => k.startsWith('access-control-'))).toEqual([]);
  });

  it('refuses a foreign Host header (DNS rebinding) and answers its own names', async () => {
    const q = '/?query=SELECT+1';
    const auth = { Authorization: `Bearer ${READ}` };
    const port = new URL(url).port;
    for (const host of [`attacker.example:${port}`, 'attacker.example', `127.0.0.1.nip.io:${port}`]) {
      const a = await raw(q, { ...auth, Host: host });
      expect(a.status, host).toBe(403);
      expect(a.body).toContain('DNS rebinding');
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost', `perpass.internal:${port}`]) {
      const a = await raw(q, { ...auth, Host: host });
      expect(a.status, `${host}: ${a.body}`).toBe(200);
    }
  });

  it("answers Grafana's ClickHouse datasource: schema browsing, functions, ad hoc filters, its query timeout", async () => {
    const grafana = [
      'SELECT version()',
      'SHOW DATABASES',
      'SHOW TABLES FROM "fleet"',
      'DESC TABLE "fleet"."attempts"',
      "SELECT name, type, table FROM system.columns WHERE database IN ('fleet')",
      'SELECT name, is_aggregate, case_insensitive, alias_to, origin, description, syntax, arguments, returned_value, examples, categories FROM system.functions LIMIT 10000',
      'SELECT DISTINCT arrayJoin(mapKeys(attributes)) AS keys FROM "fleet"."spans" LIMIT 1000',
      "SELECT model, count() FROM fleet.attempts GROUP BY model SETTINGS additional_table_filters={'fleet.attempts' : ' model = \\'x\\' '}",
      'SELECT count() FROM fleet.v_cost_per_pass SETTINGS max_execution_time=10',
    ];
    for (const sql of grafana) {
      const a = await post('reader', sql, { default_format: 'JSON' });
      expect(a.status, `${sql}: ${a.body}`).toBe(200);
    }
    // A tenant reader's filter is its tenant's: an ad hoc filter cannot replace it.
    const scoped = await post('tenant', "SELECT count() FROM fleet.attempts SETTINGS additional_table_filters={'fleet.attempts':'1'}");
    expect(scoped.status).not.toBe(200);
    expect(scoped.body).toContain('tenant filter');
  });

  it('answers a query_id with CR/LF with 400, not 500', async () => {
    for (const id of ['a\r\nSet-Cookie: x=1', 'a\nb', 'a\rb', 'x'.repeat(300)]) {
      const a = await post('reader', 'SELECT 1', { query_id: id });
      expect(a.status, JSON.stringify(id)).toBe(400);
      expect(a.body).toContain('query_id');
    }
    expect((await post('reader', 'SELECT 1', { query_id: 'my-query-1' })).headers.get('x-clickhouse-query-id')).toBe('my-query-1');
  });

  it('keeps the host out of reach: files, processes, introspection, server paths', async () => {
    const attempts: Array<[Who, string]> = [
      ['reader', "SELECT file('/etc/passwd')"],
      ['reader', "SELECT file('/proc/self/environ')"],
      ['reader', "SELECT file('/proc/self/cmdline')"],
      ['writer', "SELECT file('/proc/self/cmdline')"],
      ['reader', 'SELECT * FROM system.models'],
      ['reader', 'SELECT * FROM system.stack_trace'],
      ['reader', 'SELECT * FROM system.symbols'],
      ['reader', 'SELECT * FROM system.disks'],
      ['reader', 'SELECT * FROM system.server_settings'],
      ['reader', "SELECT addressToLine(toUInt64(1)) SETTINGS allow_introspection_functions = 1"],
      ['writer', "CREATE TABLE fleet.lp_host (line String) ENGINE = File(LineAsString, '/tmp/perpass-lp-host')"],
      ['writer', "INSERT INTO FUNCTION file('/tmp/perpass-lp-host', 'LineAsString', 'line String') SELECT 'x'"],
      ['writer', "SELECT * FROM executable('id', 'TSV', 'x String')"],
      ['writer', "SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'x String')"],
      ['writer', 'INSERT INTO fleet.lp_probe VALUES (file(\'/etc/passwd\'))'],
      ['writer', "ALTER TABLE fleet.lp_probe MODIFY SETTING disk = disk(type = local, path = '/tmp/perpass-lp-disk/')"],
      ['writer', 'ALTER TABLE fleet.lp_probe FREEZE'],
      ['writer', 'CREATE TABLE fleet.lp_copy AS system.one'],
      ['writer', 'TRUNCATE TABLE system.query_log'],
      ['writer', 'DROP TABLE IF EXISTS system.query_log'],
      ['writer', 'CREATE TABLE system.lp_evil (x String) ENGINE = Memory'],
      ['writer', 'KILL QUERY WHERE 1'],
      ['writer', "CREATE DICTIONARY fleet.lp_dict (x String) PRIMARY KEY x SOURCE(FILE(path '/etc/passwd' format 'LineAsString')) LAYOUT(FLAT()) LIFETIME(0)"],
    ];
    const answers = await Promise.all(attempts.map(async ([who, sql]) => ({ who, sql, ...(await post(who, sql)) })));
    for (const a of answers) {
      expect(a.body, a.sql).not.toMatch(/root:x:0:0|PATH=|bin\/fleet/);
      expect(a.status, `${a.who}: ${a.sql}: ${a.body}`).not.toBe(200);
    }
    const count = await post('writer', 'SELECT count() FROM fleet.lp_probe');
    expect(count.body).toBe('0\n');
    // Skip indexes, projections and TTLs, as migrations write them.
    const table = await post('writer', "CREATE TABLE fleet.lp_indexed (x String, t DateTime, INDEX i lower(x) TYPE bloom_filter(0.01) GRANULARITY 4, INDEX j x TYPE ngrambf_v1(3, 256, 2, 0) GRANULARITY 1, PROJECTION p (SELECT x, count() GROUP BY x)) ENGINE = ReplacingMergeTree ORDER BY x TTL t + INTERVAL 1 DAY SETTINGS index_granularity = 1024, deduplicate_merge_projection_mode = 'drop'");
    expect(table.status, table.body).toBe(200);
    expect((await post('writer', 'ALTER TABLE fleet.lp_indexed ADD INDEX k x TYPE set(100) GRANULARITY 2')).status).toBe(200);
    // Copying a perpass table's structure and engine is fine (the price loader stages prices so).
    expect((await post('writer', 'CREATE TABLE fleet.lp_probe_copy AS fleet.lp_probe')).status).toBe(200);
  });
});

/** The memory cgroup this process is in, as a directory a child cgroup can be made in (v2 or v1), if it is writable. */
function memoryCgroup(): { dir: string; limitFile: string } | undefined {
  const lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  const v1 = lines.map((l) => /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/.exec(l)?.[1]).find((p) => p !== undefined);
  const v2 = lines.map((l) => /^0::(.*)$/.exec(l)?.[1]).find((p) => p !== undefined);
  const candidates = [
    ...(v1 !== undefined ? [{ dir: path.join('/sys/fs/cgroup/memory', v1), limitFile: 'memory.limit_in_bytes' }] : []),
    ...(v2 !== undefined ? [{ dir: path.join('/sys/fs/cgroup', v2), limitFile: 'memory.max' }] : []),
  ];
  for (const c of candidates) {
    const dir = path.join(c.dir, `perpass-test-${process.pid}`);
    try {
      mkdirSync(dir);
      if (existsSync(path.join(dir, c.limitFile))) return { dir, limitFile: c.limitFile };
      rmdirSync(dir);
    } catch {
      // not writable here: try the next hierarchy
    }
  }
  return undefined;
}

describe('fleet start: reader limits follow the process\'s memory limit', () => {
  it("caps a reader's max_memory_usage at a quarter of the cgroup's limit, not the machine's memory", async () => {
    const limit = 3 * 1024 ** 3;
    const cgroup = memoryCgroup();
    // Where this test may not make a cgroup, the endpoint must still fall back to the machine's memory.
    if (cgroup) writeFileSync(path.join(cgroup.dir, cgroup.limitFile), String(limit));
    const join = cgroup ? `echo $$ > ${path.join(cgroup.dir, 'cgroup.procs')}; ` : '';
    const child = spawn('sh', ['-c', `${join}exec "${process.execPath}" bin/fleet.js start --data-dir ${tempDir('cgroup')} --collector-port 0 --query-port 0`], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      const queryUrl = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`fleet start did not come up:\n${out}`)), 120_000);
        const onData = (b: Buffer) => {
          out += b.toString();
          const m = /query (http:\/\/[\d.]+:\d+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
      });
      const res = await fetch(`${queryUrl}/?query=${encodeURIComponent("SELECT getSetting('max_memory_usage')")}`);
      const expected = Math.floor((cgroup && limit < totalmem() ? limit : totalmem()) / 4);
      process.stdout.write(`memory limit: ${cgroup ? `cgroup ${cgroup.dir} limited to ${limit} bytes` : 'no writable memory cgroup here, the machine\'s memory'}; reader max_memory_usage ${expected}\n`);
      expect(await res.text()).toBe(`${expected}\n`);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      if (cgroup) rmdirSync(cgroup.dir);
    }
  }, 180_000);
});
