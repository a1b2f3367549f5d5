/** Shared pieces of every page: the data hook (live refresh), tables, times. */
import { html } from 'htm/preact';
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { QueryError, when } from './api.ts';

export { html };

/** Live state every page reads: the refresh tick (0 while paused). */
export interface Live {
  tick: number;
}

/** Loads `load()` now, again on every tick and whenever `deps` change; keeps the last answer while reloading. */
export function useData<T>(load: () => Promise<T>, deps: unknown[]): { data?: T; error?: QueryError | Error } {
  const [state, setState] = useState<{ data?: T; error?: QueryError | Error }>({});
  useEffect(() => {
    let current = true;
    load().then(
      (data) => current && setState({ data }),
      (error: Error) => current && setState((s) => ({ ...s, error })),
    );
    return () => {
      current = false;
    };
  }, deps);
  return state;
}

export function Time({ v }: { v: unknown }) {
  const w = when(v);
  return html`<time title=${w.utc} datetime=${w.utc}>${w.local}</time>`;
}

export function Problem({ error }: { error?: Error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message}</p>`;
}

/** A header that sorts its table: click or Enter/Space, state announced via aria-sort. */
export function SortHeader(p: { col: string; label: string; sort: Sort; onSort: (s: Sort) => void; numeric?: boolean }) {
  const active = p.sort.col === p.col;
  const next = () => p.onSort({ col: p.col, dir: active && p.sort.dir === 'asc' ? 'desc' : 'asc' });
  return html`<th scope="col" class=${p.numeric ? 'num' : ''} aria-sort=${active ? (p.sort.dir === 'asc' ? 'ascending' : 'descending') : 'none'}>
    <button type="button" class="sort" onClick=${next}>${p.label}${active ? (p.sort.dir === 'asc' ? ' ▲' : ' ▼') : ''}</button>
  </th>`;
}

export interface Sort {
  col: string;
  dir: 'asc' | 'desc';
}

/** Sorts rows by a column; NULL (no pass: ∞) after every number either way. */
export function sorted<T extends Record<string, unknown>>(rows: T[], s: Sort): T[] {
  const key = (r: T) => r[s.col];
  return [...rows].sort((a, b) => {
    const x = key(a);
    const y = key(b);
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    // 64-bit integers arrive as strings: numbers are compared as numbers whatever their JSON type.
    const [nx, ny] = [Number(x), Number(y)];
    const c = x !== '' && y !== '' && Number.isFinite(nx) && Number.isFinite(ny) ? nx - ny : String(x).localeCompare(String(y));
    return s.dir === 'asc' ? c : -c;
  });
}

export function Section(p: { title: string; children: ComponentChildren }) {
  return html`<section aria-label=${p.title}><h2>${p.title}</h2>${p.children}</section>`;
}
