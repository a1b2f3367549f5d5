/**
 * The query endpoint's sandbox against everything the running engine has:
 * every function of system.functions and every table function of
 * system.table_functions, called through the endpoint as a reader and as
 * the writer with arguments that point at a canary file, a canary TCP
 * listener on 127.0.0.1 and a canary directory (several arities and
 * shapes); every table engine of system.table_engines through the writer's
 * CREATE TABLE (then INSERT and SELECT when the engine let it be made).
 * The lists come from the engine at run time, through the endpoint.
 *
 * Proves: the canary file's content is in no answer, the listener sees no
 * connection, nothing appears in the canary directory — and, so that this
 * is not vacuous, that the functions the policy allows do run.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startQueryEndpoint, type RunningQueryEndpoint } from '../query/endpoint.ts';
import type { Store } from '../storage/store.ts';
import { freshStore, tempDir } from './support/store.ts';

const WRITE_TOKEN = 'walk-writer-token-0123456789';
const SECRET = `CANARY-${randomUUID()}`;
const canaryDir = tempDir('canary-dir');
const canaryFile = path.join(tempDir('canary-file'), 'secret.txt');
writeFileSync(canaryFile, `${SECRET}\n${SECRET},${SECRET}\n`);

let store: Store;
let endpoint: RunningQueryEndpoint;
let listener: Server;
let port = 0;
const connections: string[] = [];

beforeAll(async () => {
  listener = createServer((socket) => {
    connections.push(`${socket.remoteAddress}:${socket.remotePort}`);
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  port = (listener.address() as { port: number }).port;
  store = await freshStore('fleet');
  endpoint = await startQueryEndpoint({ store, port: 0, writeToken: WRITE_TOKEN, maxConcurrentQueries: 2, maxQueuedQueries: 256, maxExecutionTimeSec: 10 });
}, 120_000);

afterAll(async () => {
  await endpoint?.close();
  await store?.close();
  await new Promise((resolve) => listener?.close(resolve));
});

type Role = 'reader' | 'writer';
interface Answer {
  status: number;
  body: string;
}

async function send(role: Role, sql: string): Promise<Answer> {
  const headers: Record<string, string> = role === 'writer' ? { 'X-ClickHouse-User': 'perpass_writer', 'X-ClickHouse-Key': WRITE_TOKEN } : {};
  const res = await fetch(`${endpoint.url}/`, { method: 'POST', body: sql, headers });
  return { status: res.status, body: await res.text() };
}

/** Runs `jobs` with at most `width` in flight. */
async function bounded<T>(jobs: Array<() => Promise<T>>, width: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await jobs[i]!();
      }
    }),
  );
  return out;
}

async function names(table: string): Promise<string[]> {
  const a = await send('reader', `SELECT name FROM system.${table} ORDER BY name FORMAT TSVRaw`);
  expect(a.status, a.body).toBe(200);
  return a.body.split('\n').filter(Boolean);
}

const file = () => `'${canaryFile}'`;
const url = () => `'http://127.0.0.1:${port}/canary'`;
const hostPort = () => `'127.0.0.1:${port}'`;
const intoDir = () => `'${path.join(canaryDir, 'written')}'`;

/** Argument lists: the canary file alone, as a file of a format and structure, the listener as URL and as host:port, a path in the canary directory. */
const SHAPES = (): string[] => [
  file(),
  `${file()}, 'LineAsString', 'line String'`,
  `${url()}, 'LineAsString', 'line String'`,
  `${hostPort()}, 'default', 'one', 'default', ''`,
  `${intoDir()}, 'CSV', 'x String'`,
];

interface Tally {
  requests: number;
  ok: number;
  denied: number;
  other: number;
}

function tally(answers: Answer[]): Tally {
  return {
    requests: answers.length,
    ok: answers.filter((a) => a.status === 200).length,
    denied: answers.filter((a) => /\(ACCESS_DENIED\)|\(READONLY\)/.test(a.body)).length,
    other: answers.filter((a) => a.status !== 200 && !/\(ACCESS_DENIED\)|\(READONLY\)/.test(a.body)).length,
  };
}

function expectNothingReached(answers: Answer[], what: string): void {
  const leaked = answers.filter((a) => a.body.includes(SECRET));
  expect(leaked.map((a) => a.body.slice(0, 300)), `${what}: canary content in an answer`).toEqual([]);
  expect(connections, `${what}: connections to the canary listener`).toEqual([]);
  expect(readdirSync(canaryDir), `${what}: files created in the canary directory`).toEqual([]);
}

describe('the sandbox, against every function, table function and engine of the running engine', () => {
  it('no function reads the canary file, connects to the listener or writes the canary directory, as reader or writer', async () => {
    const functions = await names('functions');
    expect(functions.length).toBeGreaterThan(1000);
    const jobs: Array<() => Promise<Answer & { fn: string; role: Role }>> = [];
    for (const fn of functions) {
      for (const role of ['reader', 'writer'] as const) {
        for (const args of ['', ...SHAPES()]) {
          const sql = `SELECT \`${fn}\`(${args}) FORMAT TSVRaw`;
          jobs.push(async () => ({ ...(await send(role, sql)), fn, role }));
        }
      }
    }
    const started = Date.now();
    const answers = await bounded(jobs, 4);
    const t = tally(answers);
    const ran = new Set(answers.filter((a) => a.status === 200).map((a) => a.fn));
    const refused = new Set(answers.filter((a) => /\(ACCESS_DENIED\)/.test(a.body)).map((a) => a.fn));
    process.stdout.write(
      `walk: ${functions.length} functions × ${SHAPES().length + 1} argument shapes × 2 roles = ${t.requests} requests in ${((Date.now() - started) / 1000).toFixed(1)} s: ` +
        `${t.ok} answered, ${t.denied} refused by the policy, ${t.other} engine errors; ${ran.size} functions ran at least once, ${refused.size} refused\n`,
    );
    expectNothingReached(answers, 'functions');
    // Not vacuous: what reaches the host is refused by name, and pure functions do run.
    for (const fn of ['file', 'hasColumnInTable', 'joinGet', 'dictGet', 'getServerSetting', 'addressToLine', 'catboostEvaluate']) expect(refused, fn).toContain(fn);
    for (const fn of ['lower', 'sipHash64', 'length', 'toString', 'base64Encode']) expect(ran, fn).toContain(fn);
    expect(ran.size).toBeGreaterThan(500);
  }, 900_000);

  it('no table function reaches the host, as reader or writer, in FROM, DESCRIBE, CREATE TABLE … AS or INSERT INTO FUNCTION', async () => {
    const tableFunctions = await names('table_functions');
    expect(tableFunctions).toEqual(expect.arrayContaining(['file', 'url', 'remote', 'executable', 'numbers']));
    const jobs: Array<() => Promise<Answer & { tf: string }>> = [];
    for (const tf of tableFunctions) {
      for (const args of ['', ...SHAPES()]) {
        const statements: Array<[Role, string]> = [
          ['reader', `SELECT * FROM ${tf}(${args}) LIMIT 10 FORMAT TSVRaw`],
          ['writer', `SELECT * FROM ${tf}(${args}) LIMIT 10 FORMAT TSVRaw`],
          ['reader', `DESCRIBE TABLE ${tf}(${args})`],
          ['writer', `CREATE TABLE fleet.walk_tf AS ${tf}(${args})`],
          ['writer', `INSERT INTO FUNCTION ${tf}(${args}) SELECT 'walk payload'`],
        ];
        for (const [role, sql] of statements) jobs.push(async () => ({ ...(await send(role, sql)), tf }));
      }
    }
    const answers = await bounded(jobs, 4);
    const t = tally(answers);
    process.stdout.write(`walk: ${tableFunctions.length} table functions × ${SHAPES().length + 1} argument shapes × 5 statements = ${t.requests} requests: ${t.ok} answered, ${t.denied} refused by the policy, ${t.other} engine errors\n`);
    expectNothingReached(answers, 'table functions');
    const ran = new Set(answers.filter((a) => a.status === 200).map((a) => a.tf));
    expect(ran).toContain('numbers');
    expect([...ran].filter((tf) => ['file', 'url', 'remote', 'executable', 's3', 'mysql', 'merge', 'cluster'].includes(tf))).toEqual([]);
  }, 600_000);

  it('no table engine the writer can CREATE reaches the host, and what it made answers INSERT and SELECT inside perpass', async () => {
    const engines = await names('table_engines');
    expect(engines).toEqual(expect.arrayContaining(['File', 'URL', 'MergeTree', 'Distributed', 'Memory']));
    const shapes = [...SHAPES().map((a) => `(${a})`), '', ' ORDER BY tuple()'];
    const answers: Answer[] = [];
    const created = new Set<string>();
    let n = 0;
    // One engine at a time: each statement of a table depends on the one before.
    const perEngine = await bounded(
      engines.map((engine) => async () => {
        const out: Answer[] = [];
        for (const shape of shapes) {
          const table = `fleet.walk_engine_${n++}`;
          const create = await send('writer', `CREATE TABLE ${table} (line String) ENGINE = ${engine}${shape}`);
          out.push(create);
          if (create.status !== 200) continue;
          created.add(engine);
          out.push(await send('writer', `INSERT INTO ${table} FORMAT JSONEachRow\n{"line":"x"}`));
          out.push(await send('writer', `SELECT * FROM ${table} FORMAT TSVRaw`));
          out.push(await send('reader', `SELECT * FROM ${table} FORMAT TSVRaw`));
          out.push(await send('writer', `DROP TABLE ${table}`));
        }
        return out;
      }),
      2,
    );
    for (const list of perEngine) answers.push(...list);
    const t = tally(answers);
    process.stdout.write(`walk: ${engines.length} table engines × ${shapes.length} shapes = ${t.requests} requests: ${created.size} engines could be created (${[...created].sort().join(', ')}), ${t.denied} refusals\n`);
    expectNothingReached(answers, 'table engines');
    expect(created).toContain('MergeTree');
    expect([...created].filter((e) => /File|URL|S3|Distributed|Merge$|Dictionary|Executable|MySQL|PostgreSQL|Kafka|Buffer|Join|Set$|KeeperMap|Alias/.test(e))).toEqual([]);
  }, 600_000);
});
