/** Specs, alerts and prices: bounded reads of their views, as tables. */
import { money, query, since } from './api.ts';
import { failingLink } from './trace.ts';
import { html, Problem, Section, Time, useData, type Live } from './ui.ts';

const SPECS_SQL = `
SELECT tenant, spec_id, spec_tier, attempts, passed, first_pass_attempt, cost_until_first_pass, total_cost_usd, first_started_at
FROM fleet.v_spec_outcomes WHERE first_started_at >= {since:DateTime64(9)}
ORDER BY first_started_at DESC LIMIT 200`;

export function Specs({ live }: { live: Live }) {
  const r = useData(() => query(SPECS_SQL, { since: since(720) }), [live.tick]);
  return html`<${Section} title="Specs (30 days, newest 200)"><${Problem} error=${r.error} />
    <table id="specs"><thead><tr><th scope="col">first started</th><th scope="col">tenant</th><th scope="col">spec</th><th scope="col">tier</th>
      <th scope="col" class="num">attempts</th><th scope="col">attempts to first pass</th><th scope="col" class="num">cost until first pass</th><th scope="col" class="num">total cost</th></tr></thead>
    <tbody>${(r.data ?? []).map((s) => html`<tr><td><${Time} v=${s.first_started_at} /></td><td>${s.tenant}</td><td>${s.spec_id}</td><td>${s.spec_tier}</td>
      <td class="num">${s.attempts}</td><td>${s.passed ? s.first_pass_attempt : 'never (∞)'}</td>
      <td class="num">${s.passed ? money(s.cost_until_first_pass) : '∞'}</td><td class="num">${money(s.total_cost_usd)}</td></tr>`)}</tbody></table>
  </${Section}>`;
}

const PRICES_SQL = `
SELECT provider, model, input, cache_read, cache_write, output, valid_from, source
FROM fleet.prices WHERE valid_from <= now64(3) AND (valid_to IS NULL OR now64(3) < valid_to)
ORDER BY provider, model LIMIT 1000`;
const UNPRICED_SQL = `
SELECT if(request_model != '', request_model, model) AS model, provider, unpriced_reason, count() AS calls
FROM fleet.llm_calls FINAL WHERE started_at >= {since:DateTime64(9)} AND price_model = ''
GROUP BY model, provider, unpriced_reason ORDER BY calls DESC LIMIT 200`;

export function Prices({ live }: { live: Live }) {
  const p = useData(() => query(PRICES_SQL), [live.tick]);
  const u = useData(() => query(UNPRICED_SQL, { since: since(720) }), [live.tick]);
  return html`<${Section} title="Unpriced models (30 days)"><${Problem} error=${u.error} />
    ${u.data?.length === 0 ? html`<p>Every LLM call in the window is priced.</p>` : ''}
    <table id="unpriced"><thead><tr><th scope="col">model</th><th scope="col">provider</th><th scope="col">reason</th><th scope="col" class="num">calls</th></tr></thead>
    <tbody>${(u.data ?? []).map((r) => html`<tr><td>${r.model}</td><td>${r.provider}</td><td>${r.unpriced_reason}</td><td class="num">${r.calls}</td></tr>`)}</tbody></table>
  </${Section}>
  <${Section} title="Price catalog in force ($ per million tokens)"><${Problem} error=${p.error} />
    <table id="prices"><thead><tr><th scope="col">provider</th><th scope="col">model</th><th scope="col" class="num">input</th><th scope="col" class="num">cache read</th>
      <th scope="col" class="num">cache write</th><th scope="col" class="num">output</th><th scope="col">since</th><th scope="col">source</th></tr></thead>
    <tbody>${(p.data ?? []).map((r) => html`<tr><td>${r.provider}</td><td>${r.model}</td><td class="num">${money(r.input)}</td><td class="num">${money(r.cache_read)}</td>
      <td class="num">${money(r.cache_write)}</td><td class="num">${money(r.output)}</td><td><${Time} v=${r.valid_from} /></td><td>${r.source}</td></tr>`)}</tbody></table>
  </${Section}>`;
}

const ALERTS_SQL = `
SELECT rule, kind, severity, labels, state, started_at, ended_at, value, summary
FROM fleet.v_alerts WHERE updated_at >= {since:DateTime64(9)}
ORDER BY state = 'firing' DESC, started_at DESC LIMIT 200`;

export function Alerts({ live }: { live: Live }) {
  const r = useData(() => query(ALERTS_SQL, { since: since(720) }), [live.tick]);
  return html`<${Section} title="Alerts (30 days)"><${Problem} error=${r.error} />
    ${r.data?.length === 0 ? html`<p>No alert fired in the window (rules run with fleet start --alert-rules or fleet alerts).</p>` : ''}
    <table id="alerts"><thead><tr><th scope="col">state</th><th scope="col">rule</th><th scope="col">kind</th><th scope="col">severity</th>
      <th scope="col">started</th><th scope="col">resolved</th><th scope="col" class="num">value</th><th scope="col">summary</th><th scope="col">attempts</th></tr></thead>
    <tbody>${(r.data ?? []).map((a) => html`<tr class=${a.state === 'firing' ? 'bad' : ''}><td>${a.state}</td><td>${a.rule}</td><td>${a.kind}</td><td>${a.severity}</td>
      <td><${Time} v=${a.started_at} /></td><td>${a.ended_at ? html`<${Time} v=${a.ended_at} />` : '—'}</td>
      <td class="num">${Math.abs(Number(a.value)) >= 1.7e308 ? (Number(a.value) > 0 ? '∞' : '−∞') : Number(a.value).toPrecision(3)}</td><td>${a.summary}</td>
      <td>${(a.labels as Record<string, string>).model !== undefined ? html`<a href=${failingLink(a.labels as Record<string, string>)}>failing attempts</a>` : ''}</td></tr>`)}</tbody></table>
  </${Section}>`;
}
