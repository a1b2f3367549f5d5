/**
 * What encoding the consumers' rows costs the JavaScript thread: the rows a
 * planned fleet produces (the real pipeline, captured as the writer gets
 * them), encoded in chunks of 500 as JSONEachRow text (the format before)
 * and as RowBinaryWithDefaults (storage/row-binary.ts), alternately.
 *   node bench/procs/row-encoding.ts [attempts] [repeats]
 */
import { MemoryBus } from '../../bus/memory.ts';
import { ConsumerPipeline } from '../../consumers/pipeline.ts';
import { BatchWriter } from '../../consumers/writer.ts';
import { loadDefaultCatalog } from '../../pricing/catalog.ts';
import { migrate } from '../../sql/migrate.ts';
import { insertColumns, rowBinaryEncoder } from '../../storage/row-binary.ts';
import { openStore } from '../../storage/store.ts';
import { tempDir } from '../lib/child.ts';
import { collectorMessages, exportRequests, planAttempts } from '../lib/traffic.ts';

const attempts = Number(process.argv[2] ?? 5000);
const repeats = Number(process.argv[3] ?? 5);
const plan = planAttempts({ attempts, seed: 5, tenant: 'bench-consumers' });
const bus = new MemoryBus({ partitions: 6, maxBytes: 4 * 2 ** 30, maxBatchMessages: 500 });
for (const r of exportRequests(plan)) await bus.publisher().publish('otlp_spans', collectorMessages(r));
const data = tempDir('row-encoding');
const store = openStore({ dataDir: data.dir });
await migrate(store);
const rows: Record<'spans' | 'llm_calls' | 'attempts', object[]> = { spans: [], llm_calls: [], attempts: [] };
const add = BatchWriter.prototype.add;
BatchWriter.prototype.add = function (o) {
  rows.spans.push(...o.spans);
  rows.llm_calls.push(...o.llmCalls);
  rows.attempts.push(...o.attempts);
  return add.call(this, o);
};
const pipeline = new ConsumerPipeline({ topic: 'otlp_spans', store, subscriber: bus.subscriber('otlp_spans'), catalog: loadDefaultCatalog(), deadLetter: { publisher: bus.publisher(), topic: 'dlq' }, log: () => {} });
await pipeline.start();
while (rows.attempts.length < plan.length) await new Promise((r) => setTimeout(r, 100));
await pipeline.stop();

const CHUNK = 500;
const json = (rs: object[], from: number, to: number) => {
  let text = '';
  for (let j = from; j < to; j++) text += `${JSON.stringify(rs[j])}\n`;
  return Buffer.from(text);
};
for (const table of ['spans', 'llm_calls', 'attempts'] as const) {
  const encoder = rowBinaryEncoder(table, await insertColumns(store, table));
  const rs = rows[table];
  const encoders = { json, rowBinary: (r: object[], from: number, to: number) => encoder.encode(r, from, to) };
  const us: Record<string, number[]> = { json: [], rowBinary: [] };
  const bytes: Record<string, number> = {};
  for (let rep = 0; rep < repeats; rep++) {
    for (const [name, encode] of Object.entries(encoders)) {
      const t0 = performance.now();
      let b = 0;
      for (let i = 0; i < rs.length; i += CHUNK) b += encode(rs, i, Math.min(rs.length, i + CHUNK)).length;
      us[name]!.push(((performance.now() - t0) * 1000) / rs.length);
      bytes[name] = Math.round(b / rs.length);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  process.stdout.write(
    `${JSON.stringify({ table, rows: rs.length, usPerRow: { json: +median(us.json!).toFixed(2), rowBinary: +median(us.rowBinary!).toFixed(2) }, bytesPerRow: bytes })}\n`,
  );
}
await store.close();
data.remove();
