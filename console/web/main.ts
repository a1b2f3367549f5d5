/** The console's shell: hash routes, the token form, the live refresh with pause. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { query, QueryError, token } from './api.ts';
import { Board } from './board.ts';
import { Alerts, Prices, Specs } from './tables.ts';
import { Trends } from './trends.ts';
import 'uplot/dist/uPlot.min.css';
import './app.css';
import { Attempt, Failing } from './trace.ts';
import { html } from './ui.ts';

const REFRESH_MS = 5000;
const PAGES: Array<[string, string]> = [
  ['#/board', '$/pass board'], ['#/trends', 'Trends'], ['#/failing', 'Failing attempts'], ['#/specs', 'Specs'], ['#/alerts', 'Alerts'], ['#/prices', 'Prices'],
];

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/board');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/board');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function TokenForm({ onDone, problem }: { onDone: () => void; problem: string }) {
  const [value, setValue] = useState('');
  const [user, setUser] = useState('');
  return html`<form id="token-form" class="token" onSubmit=${(e: Event) => {
    e.preventDefault();
    token.set(value, user.trim());
    onDone();
  }}>
    <p role="alert">${problem}</p>
    <label>User (optional: a ClickHouse user, with fleet console)
      <input id="user" autocomplete="username" value=${user} onInput=${(e: Event) => setUser((e.target as HTMLInputElement).value)} /></label>
    <label>Read token (the query endpoint's --query-token or a --query-tokens entry)
      <input id="token" type="password" autocomplete="off" value=${value} onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)} /></label>
    <button type="submit">Open</button>
  </form>`;
}

function App() {
  const hash = useHash();
  const [paused, setPaused] = useState(false);
  const [tick, setTick] = useState(1);
  const [auth, setAuth] = useState<{ ok: boolean; problem: string; tenant?: string }>({ ok: false, problem: '' });
  const [tries, setTries] = useState(0);

  // One cheap probe decides whether the token works (and which tenants it sees) before any page queries.
  useEffect(() => {
    query<{ tenants: string[] }>('SELECT groupUniqArray(20)(tenant) AS tenants FROM fleet.attempts WHERE started_at >= now64() - INTERVAL 30 DAY').then(
      (r) => setAuth({ ok: true, problem: '', tenant: (r[0]?.tenants ?? []).sort().join(', ') }),
      (e: Error) => setAuth({ ok: false, problem: e instanceof QueryError && e.needsToken ? (token.get() ? 'That token was refused.' : 'This endpoint needs a read token.') : e.message }),
    );
  }, [tries]);
  useEffect(() => {
    if (paused || !auth.ok) return;
    const t = setInterval(() => setTick((n) => n + 1), REFRESH_MS);
    return () => clearInterval(t);
  }, [paused, auth.ok]);

  if (!auth.ok) return auth.problem ? html`<${TokenForm} problem=${auth.problem} onDone=${() => setTries((n) => n + 1)} />` : html`<p>Connecting…</p>`;
  const live = { tick };
  const attempt = /^#\/attempt\/(.+)$/.exec(hash);
  const page = attempt ? html`<${Attempt} id=${decodeURIComponent(attempt[1]!)} live=${live} />`
    : hash === '#/failing' || hash.startsWith('#/failing?') ? html`<${Failing} live=${live} filters=${new URLSearchParams(hash.slice('#/failing'.length + 1))} />`
    : hash === '#/trends' ? html`<${Trends} live=${live} />`
    : hash === '#/alerts' ? html`<${Alerts} live=${live} />`
    : hash === '#/specs' ? html`<${Specs} live=${live} />`
    : hash === '#/prices' ? html`<${Prices} live=${live} />`
    : html`<${Board} live=${live} />`;
  return html`<header>
      <h1>perpass</h1>
      <nav aria-label="pages"><ul>${PAGES.map(([h, l]) => html`<li><a href=${h} aria-current=${hash.split('?')[0] === h ? 'page' : undefined}>${l}</a></li>`)}</ul></nav>
      <span class="who" id="tenants">tenants: ${auth.tenant || '—'}</span>
      <button type="button" id="pause" aria-pressed=${paused} onClick=${() => setPaused(!paused)}>${paused ? 'Resume live' : 'Pause live'}</button>
      ${token.get() ? html`<button type="button" onClick=${() => { token.set(''); setTries((n) => n + 1); }}>Forget token</button>` : ''}
    </header>
    <main>${page}</main>`;
}

render(html`<${App} />`, document.getElementById('app')!);
