/**
 * Top self-time functions of a V8 CPU profile (`node --cpu-prof`), the way
 * Chrome DevTools' "Bottom-Up" view lists them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './kafka.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface HotFunction {
  function: string;
  where: string;
  selfMs: number;
  selfPct: number;
}

export function topSelfTime(file: string, n = 15): { totalMs: number; top: HotFunction[]; byArea: Record<string, number> } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const agg = new Map<string, { fn: string; where: string; us: number }>();
  let total = 0;
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    total += us;
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : '';
    const key = `${functionName}@${where}`;
    const e = agg.get(key) ?? { fn: functionName || '(anonymous)', where, us: 0 };
    e.us += us;
    agg.set(key, e);
  }
  const busy = total - [...agg.values()].filter((e) => e.fn === '(idle)').reduce((a, e) => a + e.us, 0);
  const top = [...agg.values()]
    .filter((e) => e.fn !== '(idle)')
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map((e) => ({ function: e.fn, where: e.where, selfMs: Math.round(e.us / 1000), selfPct: Math.round((e.us / busy) * 1000) / 10 }));
  const byArea: Record<string, number> = {};
  for (const e of agg.values()) {
    if (e.fn === '(idle)') continue;
    const area = areaOf(e.where, e.fn);
    byArea[area] = (byArea[area] ?? 0) + e.us;
  }
  for (const k of Object.keys(byArea)) byArea[k] = Math.round((byArea[k]! / busy) * 1000) / 10;
  return { totalMs: Math.round(busy / 1000), top, byArea: Object.fromEntries(Object.entries(byArea).sort((a, b) => b[1] - a[1])) };
}

function shortUrl(url: string): string {
  const file = url.replace(/^file:\/\//, '');
  return file.startsWith(ROOT) ? path.relative(ROOT, file) : file.replace(/^node:/, 'node:');
}

/** Which part of the stack a function belongs to (self-time % per area). */
function areaOf(where: string, fn: string): string {
  if (!where) return fn.startsWith('(') ? fn : '(native)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
  if (m) return m[1]!;
  if (where.startsWith('node:')) return 'node core';
  return where.split('/')[0]!;
}
