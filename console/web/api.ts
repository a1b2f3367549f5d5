/**
 * The console's only way to data: SQL sent to the query endpoint it was
 * served from (same origin), with the caller's token, as any reader would.
 * The endpoint's policy and tenant scoping apply unchanged; every statement
 * here is bounded by a time window and a LIMIT.
 */
export type Row = Record<string, unknown>;

const TOKEN_KEY = 'perpass.console.token';
const USER_KEY = 'perpass.console.user';

/** The caller's credentials, for this tab only (sessionStorage): a user name (optional; ClickHouse users with `fleet console`) and the token. */
export const token = {
  get: (): string => sessionStorage.getItem(TOKEN_KEY) ?? '',
  user: (): string => sessionStorage.getItem(USER_KEY) ?? '',
  set: (t: string, user = ''): void => {
    for (const [k, v] of [[TOKEN_KEY, t], [USER_KEY, user]] as const) v ? sessionStorage.setItem(k, v) : sessionStorage.removeItem(k);
  },
};

/** An answer the endpoint refused: its ClickHouse error code and text. */
export class QueryError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
  get needsToken(): boolean {
    return this.status === 401 || this.status === 403 || this.code === '194' || this.code === '516';
  }
}

/** Runs one SELECT (64-bit integers come back as JSON strings: read them with Number or num) with query parameters (`{name:Type}`), JSON rows back. */
export async function query<T extends Row = Row>(sql: string, params: Record<string, string | number> = {}): Promise<T[]> {
  const url = new URLSearchParams({ default_format: 'JSON' });
  for (const [k, v] of Object.entries(params)) url.set(`param_${k}`, String(v));
  const headers: Record<string, string> = { 'Content-Type': 'text/plain; charset=UTF-8' };
  const t = token.get();
  if (t) headers['X-ClickHouse-Key'] = t;
  if (token.user()) headers['X-ClickHouse-User'] = token.user();
  // credentials 'omit': a 401 (which carries WWW-Authenticate) then reaches the page instead of opening the browser's login prompt.
  const res = await fetch(`/?${url}`, { method: 'POST', body: sql, headers, credentials: 'omit' });
  const text = await res.text();
  if (!res.ok) throw new QueryError(res.status, res.headers.get('X-ClickHouse-Exception-Code') ?? '', text.trim());
  return (JSON.parse(text) as { data: T[] }).data;
}

/** A window's lower bound as ClickHouse DateTime64 text in UTC. */
export function since(windowHours: number, now = Date.now()): string {
  return new Date(now - windowHours * 3_600_000).toISOString().replace('T', ' ').replace('Z', '');
}
export const FAR_FUTURE = '2262-01-01 00:00:00';

export const num = (v: unknown): number | null => (v === null || v === undefined || v === '' ? null : Number(v));

export function money(v: unknown): string {
  const n = num(v);
  if (n === null) return '—';
  if (!Number.isFinite(n)) return '∞';
  return n >= 100 ? `$${n.toFixed(0)}` : n >= 1 ? `$${n.toFixed(2)}` : `$${n.toPrecision(3)}`;
}
export const pct = (v: unknown): string => {
  const n = num(v);
  return n === null ? '—' : `${(n * 100).toFixed(1)}%`;
};

/** A UTC instant from the store (`2026-01-02 03:04:05.123…`) as a Date. */
export function utcDate(v: unknown): Date {
  const s = String(v);
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : `${s.replace(' ', 'T').slice(0, 23)}Z`);
}
/** Local time for display, UTC for the hover title. */
export function when(v: unknown): { local: string; utc: string } {
  const d = utcDate(v);
  return { local: d.toLocaleString(), utc: `${d.toISOString().replace('T', ' ').replace('Z', '')} UTC` };
}
