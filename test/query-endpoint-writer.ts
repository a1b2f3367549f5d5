/**
 * A separate perpass process writing through the embedded query endpoint,
 * as a consumer process of a multi-process setup does: @clickhouse/client
 * over HTTP via openStore({ url }), migrations, an insert, a read back.
 *
 *   node test/query-endpoint-writer.ts <url> <user> <password> <database> <rows JSON>
 *
 * Prints one JSON line: { migrated, count, costPerPass } or { error: { message, code, type } }.
 */
import { migrate } from '../sql/migrate.ts';
import { openStore } from '../storage/store.ts';

const [url, username, password, database, rowsJson] = process.argv.slice(2);
if (!url || username === undefined || password === undefined || !database || !rowsJson) {
  process.stderr.write('usage: query-endpoint-writer.ts <url> <user> <password> <database> <rows JSON>\n');
  process.exit(2);
}

const store = openStore({ url, username, password, database, requestTimeoutMs: 60_000 });
try {
  const migrated = await migrate(store);
  await store.insert('attempts', JSON.parse(rowsJson) as object[]);
  const [count] = await store.query<{ n: number }>(`SELECT count() AS n FROM ${database}.attempts FINAL`);
  const costPerPass = await store.query<{ model: string; cost_per_pass: string | null }>(
    `SELECT model, cost_per_pass FROM ${database}.v_cost_per_pass_window(since = {s:DateTime64(9)}, until = {u:DateTime64(9)}) ORDER BY model`,
    { s: '2000-01-01 00:00:00', u: '2100-01-01 00:00:00' },
  );
  process.stdout.write(`${JSON.stringify({ migrated, count: count?.n, costPerPass })}\n`);
} catch (err) {
  const e = err as { message?: string; code?: string; type?: string };
  process.stdout.write(`${JSON.stringify({ error: { message: e.message, code: e.code, type: e.type } })}\n`);
  process.exitCode = 1;
} finally {
  await store.close();
}
