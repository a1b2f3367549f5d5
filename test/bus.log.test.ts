import { mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../bus/memory.ts';
import { DurableLog, LogFullError } from '../bus/log.ts';
import { BusUnavailableError, type PartitionBatch } from '../bus/types.ts';

const enc = new TextEncoder();
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const tmp = () => mkdtempSync(path.join(tmpdir(), 'perpass-log-'));
const segments = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.seg')).sort();

async function open(dir: string, extra: { maxBytes?: number; segmentBytes?: number } = {}) {
  const lines: string[] = [];
  const syncs: number[] = [];
  const log = await DurableLog.open({ dir, log: (m) => lines.push(m), onSync: (_s, n) => syncs.push(n), ...extra });
  return { log, lines, syncs };
}

async function all(log: DurableLog, from = 0) {
  return (await log.read(from, 1_000_000)).map((r) => ({ offset: r.offset, text: text(r.data) }));
}

describe('DurableLog', () => {
  it('reads back after reopening; one fdatasync covers many concurrent appends', async () => {
    const dir = tmp();
    const { log, syncs } = await open(dir);
    const firsts = await Promise.all(Array.from({ length: 200 }, (_, i) => log.append([enc.encode(`r${i}a`), enc.encode(`r${i}b`)])));
    expect(firsts).toEqual(Array.from({ length: 200 }, (_, i) => 2 * i));
    expect(syncs.reduce((a, b) => a + b, 0)).toBe(400);
    // The first append syncs alone; the 199 made meanwhile share the next fsync(s).
    expect(syncs.length).toBeLessThan(10);
    await log.close();

    const again = await open(dir);
    expect(again.lines).toEqual([]);
    expect(again.log.end).toBe(400);
    const records = await all(again.log);
    expect(records).toHaveLength(400);
    expect(records[399]).toEqual({ offset: 399, text: 'r199b' });
    expect(await again.log.append([enc.encode('after')])).toBe(400);
    await again.log.close();
  });

  it('rolls segments, deletes those wholly below the committed offset, and remembers the commit', async () => {
    const dir = tmp();
    const { log } = await open(dir, { segmentBytes: 1024 });
    for (let i = 0; i < 50; i++) await log.append([enc.encode(`record-${i}-${'x'.repeat(80)}`)]);
    const before = segments(dir);
    expect(before.length).toBeGreaterThan(3);
    const bytes = log.bytes;
    await log.commit(30);
    expect(segments(dir).length).toBeLessThan(before.length);
    expect(log.bytes).toBeLessThan(bytes);
    expect(log.start).toBeLessThanOrEqual(30);
    // A commit never goes back, nor past the end.
    await log.commit(10);
    expect(log.committed).toBe(30);
    await expect(log.commit(51)).rejects.toBeInstanceOf(RangeError);
    await log.close();

    const again = await open(dir, { segmentBytes: 1024 });
    expect(again.log.committed).toBe(30);
    expect((await all(again.log, 30)).map((r) => r.offset)).toEqual(Array.from({ length: 20 }, (_, i) => 30 + i));
    await again.log.close();
  });

  it('refuses an append past its byte bound whole, and takes it once a commit freed a segment', async () => {
    const dir = tmp();
    const { log } = await open(dir, { maxBytes: 4096, segmentBytes: 1024 });
    const payload = enc.encode('y'.repeat(500));
    let n = 0;
    for (;;) {
      try {
        await log.append([payload]);
        n++;
      } catch (err) {
        expect(err).toBeInstanceOf(LogFullError);
        expect((err as Error).message).toMatch(/queue log full \(\d+ of 4096 bytes/);
        break;
      }
    }
    expect(log.bytes).toBeLessThanOrEqual(4096);
    expect(await all(log)).toHaveLength(n);
    await log.commit(log.end);
    await log.append([payload]);
    await log.close();
  });

  it('cuts a torn last record, naming what it dropped, and appends after the last whole one', async () => {
    const dir = tmp();
    const { log } = await open(dir);
    for (let i = 0; i < 10; i++) await log.append([enc.encode(`rec-${i}`)]);
    await log.close();
    const seg = path.join(dir, segments(dir)[0]!);
    const size = statSync(seg).size;
    truncateSync(seg, size - 3); // a crash in the middle of the last write

    const again = await open(dir);
    expect(again.lines.join('\n')).toMatch(new RegExp(`segment ${segments(dir)[0]}: dropped 18 bytes at byte ${size - 21} after offset 8`));
    expect((await all(again.log)).map((r) => r.text)).toEqual(Array.from({ length: 9 }, (_, i) => `rec-${i}`));
    expect(statSync(seg).size).toBe(size - 21);
    expect(await again.log.append([enc.encode('next')])).toBe(9);
    await again.log.close();
    const third = await open(dir);
    expect(third.lines).toEqual([]);
    expect((await all(third.log)).at(-1)).toEqual({ offset: 9, text: 'next' });
    await third.log.close();
  });

  it('drops a zero-filled or garbage tail (a power cut after the file grew) without reading it as records', async () => {
    const dir = tmp();
    const { log } = await open(dir);
    await log.append([enc.encode('kept')]);
    await log.close();
    const seg = path.join(dir, segments(dir)[0]!);
    writeFileSync(seg, Buffer.concat([readFileSync(seg), Buffer.alloc(4096), Buffer.from('garbage that is no record at all')]));
    const again = await open(dir);
    expect(again.lines).toHaveLength(1);
    expect(again.lines[0]).toMatch(/dropped 4128 bytes at byte 20 after offset 0/);
    expect(await all(again.log)).toEqual([{ offset: 0, text: 'kept' }]);
    await again.log.close();
  });

  it('skips a corrupt record in the middle, reports the offsets lost, and keeps the later ones at their offsets', async () => {
    const dir = tmp();
    const { log } = await open(dir);
    for (let i = 0; i < 5; i++) await log.append([enc.encode(`rec-${i}`)]);
    await log.close();
    const seg = path.join(dir, segments(dir)[0]!);
    const bytes = readFileSync(seg);
    // Record 2 starts at 2 × (16 + 5); flip a byte of its payload.
    bytes[2 * 21 + 16 + 1]! ^= 0xff;
    writeFileSync(seg, bytes);

    const again = await open(dir);
    expect(again.lines).toHaveLength(1);
    expect(again.lines[0]).toMatch(/skipped 21 corrupt bytes at byte 42: offsets 2\.\.2 are lost \(checksum mismatch\); reading on from offset 3/);
    expect(await all(again.log)).toEqual([0, 1, 3, 4].map((offset) => ({ offset, text: `rec-${offset}` })));
    expect(await again.log.append([enc.encode('rec-5')])).toBe(5);
    await again.log.close();
  });
});

describe('MemoryBus.open (the durable embedded queue)', () => {
  const TOPIC = 'otlp_spans';
  it('redelivers what was not committed after a reopen, with keys, headers and offsets; a full disk bound is a 503-style refusal', async () => {
    const dir = tmp();
    const bus = await MemoryBus.open({ dir, topics: [TOPIC], partitions: 2, maxBytes: 64 * 1024 * 1024 });
    await bus.publisher().publish(TOPIC, Array.from({ length: 20 }, (_, i) => ({ key: `trace-${i % 5}`, value: enc.encode(`m${i}`), ...(i === 3 && { headers: { h: 'v' } }) })));
    const seen: PartitionBatch[] = [];
    const sub = bus.subscriber(TOPIC);
    await sub.start({ onAssign: () => {}, onBatch: async (b) => void seen.push(b) });
    await bus.idle();
    const taken = seen.flatMap((b) => b.messages);
    expect(taken).toHaveLength(20);
    // Commit partition 0 fully, partition 1 not at all.
    const p0 = taken.filter((m) => m.partition === 0);
    await sub.commit([{ topic: TOPIC, partition: 0, offset: String(p0.length) }]);
    await sub.stop();
    await bus.shutdown();

    const reopened = await MemoryBus.open({ dir, topics: [TOPIC], partitions: 2, maxBytes: 64 * 1024 * 1024 });
    const again: PartitionBatch[] = [];
    const sub2 = reopened.subscriber(TOPIC);
    await sub2.start({ onAssign: () => {}, onBatch: async (b) => void again.push(b) });
    await reopened.idle();
    const redelivered = again.flatMap((b) => b.messages);
    expect(redelivered.map((m) => ({ key: m.key, value: text(m.value), offset: m.offset, headers: m.headers })).sort((a, b) => a.value.localeCompare(b.value))).toEqual(
      taken
        .filter((m) => m.partition === 1)
        .map((m) => ({ key: m.key, value: text(m.value), offset: m.offset, headers: m.headers }))
        .sort((a, b) => a.value.localeCompare(b.value)),
    );
    await sub2.stop();
    await reopened.shutdown();

    await expect(MemoryBus.open({ dir, topics: [TOPIC], partitions: 3 })).rejects.toThrow(/has 2 partitions on disk, 3 configured/);
    const small = await MemoryBus.open({ dir: tmp(), topics: [TOPIC], partitions: 1, maxBytes: 2048, retryAfterSeconds: 4 });
    await small.publisher().publish(TOPIC, [{ key: 'k', value: new Uint8Array(1500) }]);
    await expect(small.publisher().publish(TOPIC, [{ key: 'k', value: new Uint8Array(1500) }])).rejects.toMatchObject({
      constructor: BusUnavailableError,
      retryAfterSeconds: 4,
    });
    await small.shutdown();
  });
});
