/** The $/pass board: v_cost_per_pass over a window, filtered, sortable, with per-token prices beside it, and routing per tier. */
import { useState } from 'preact/hooks';
import { FAR_FUTURE, money, num, pct, query, since, type Row } from './api.ts';
import { failingLink } from './trace.ts';
import { html, Problem, Section, SortHeader, sorted, useData, type Live, type Sort } from './ui.ts';

/** Below this many attempts a pass rate is too uncertain to rank on (cli/report.ts LOW_N). */
const LOW_N = 10;
export const WINDOWS: Array<[string, number]> = [['1 hour', 1], ['24 hours', 24], ['7 days', 168], ['30 days', 720]];
const FILTERS = [['tenant', 'tenant'], ['tier', 'spec_tier'], ['canary', 'canary'], ['variant', 'variant'], ['model', 'model']] as const;
type Filters = Partial<Record<(typeof FILTERS)[number][0], string>>;

function whereOf(f: Filters): { sql: string; params: Record<string, string> } {
  const clauses: string[] = [];
  const params: Record<string, string> = {};
  for (const [name, col] of FILTERS) {
    if (!f[name]) continue;
    clauses.push(`${col} = {f_${name}:String}`);
    params[`f_${name}`] = f[name]!;
  }
  return { sql: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

/** The input and output price per million tokens of the card in force now, per model name its calls were priced under. */
const BOARD_SQL = (where: string) => `
SELECT c.*, p.input_price, p.output_price
FROM (SELECT tenant, model, spec_tier, canary, variant, attempts, passes, pass_rate, pass_rate_low, pass_rate_high,
             cost_usd, cost_per_call, cost_per_pass, unpriced_attempts
      FROM fleet.v_cost_per_pass_window(since = {since:DateTime64(9)}, until = {until:DateTime64(9)}) ${where}
      LIMIT 500) AS c
LEFT JOIN (SELECT l.tenant AS tenant, l.model AS model, any(p.input) AS input_price, any(p.output) AS output_price
           FROM (SELECT DISTINCT tenant, if(request_model != '', request_model, model) AS model, price_provider, price_model
                 FROM fleet.llm_calls WHERE started_at >= {since:DateTime64(9)} AND price_model != '' LIMIT 10000) AS l
           INNER JOIN (SELECT provider, model, input, output FROM fleet.prices
                       WHERE valid_from <= now64(3) AND (valid_to IS NULL OR now64(3) < valid_to)) AS p
             ON p.provider = l.price_provider AND p.model = l.price_model
           GROUP BY tenant, model) AS p
  ON p.tenant = c.tenant AND p.model = c.model
ORDER BY tenant, spec_tier, cost_per_pass ASC NULLS LAST, model`;

const OPTIONS_SQL = `
SELECT groupUniqArray(100)(tenant) AS tenant, groupUniqArray(100)(spec_tier) AS tier, groupUniqArray(100)(canary) AS canary,
       groupUniqArray(100)(variant) AS variant, groupUniqArray(100)(model) AS model
FROM fleet.v_cost_per_pass_window(since = {since:DateTime64(9)}, until = {until:DateTime64(9)})`;

const ROUTING_SQL = `
SELECT tenant, spec_tier, rank, model, attempts, pass_rate, pass_rate_low, cost_per_pass
FROM fleet.v_routing_window(since = {since:DateTime64(9)}, until = {until:DateTime64(9)}, min_pass_rate = {min:Float64}, z = 1.959963984540054)
ORDER BY tenant, spec_tier, rank LIMIT 500`;

/** The pass rate as a dot inside its Wilson 95 % interval. */
export function WilsonBar({ r }: { r: Row }) {
  const lo = num(r.pass_rate_low) ?? 0;
  const hi = num(r.pass_rate_high) ?? 1;
  const rate = num(r.pass_rate) ?? 0;
  const label = `pass rate ${pct(rate)}, Wilson 95% interval ${pct(lo)} to ${pct(hi)}`;
  return html`<span class="wilson" role="img" aria-label=${label} title=${label}>
    <span class="band" style=${`left:${lo * 100}%;width:${Math.max(0.5, (hi - lo) * 100)}%`}></span>
    <span class="dot" style=${`left:${rate * 100}%`}></span>
  </span>`;
}

export function Board({ live }: { live: Live }) {
  const [windowH, setWindowH] = useState(720);
  const [filters, setFilters] = useState<Filters>({});
  const [sort, setSort] = useState<Sort>({ col: 'cost_per_pass', dir: 'asc' });
  const [bar, setBar] = useState(0.7);
  const w = whereOf(filters);
  const window = { since: since(windowH), until: FAR_FUTURE };
  const board = useData(() => query(BOARD_SQL(w.sql), { ...window, ...w.params }), [live.tick, windowH, JSON.stringify(filters)]);
  const options = useData(() => query<Record<string, string[]>>(OPTIONS_SQL, window), [live.tick, windowH]);
  const routing = useData(() => query(ROUTING_SQL, { ...window, min: bar }), [live.tick, windowH, bar]);
  const opts = options.data?.[0] ?? {};
  const rows = sorted(board.data ?? [], sort);
  const head = (col: string, label: string, numeric = true) => html`<${SortHeader} col=${col} label=${label} sort=${sort} onSort=${setSort} numeric=${numeric} />`;

  return html`
  <${Section} title="$/pass board">
    <form class="filters" aria-label="filters" onSubmit=${(e: Event) => e.preventDefault()}>
      <label>window <select id="f-window" value=${windowH} onChange=${(e: Event) => setWindowH(Number((e.target as HTMLSelectElement).value))}>
        ${WINDOWS.map(([l, h]) => html`<option value=${h}>${l}</option>`)}
      </select></label>
      ${FILTERS.map(([name]) => html`<label>${name} <select id=${`f-${name}`} value=${filters[name] ?? ''}
          onChange=${(e: Event) => setFilters({ ...filters, [name]: (e.target as HTMLSelectElement).value || undefined })}>
        <option value="">all</option>
        ${[...(opts[name] ?? [])].sort().map((v) => html`<option value=${v}>${v}</option>`)}
      </select></label>`)}
    </form>
    <${Problem} error=${board.error} />
    <table id="board">
      <thead><tr>
        ${head('tenant', 'tenant', false)}${head('spec_tier', 'tier', false)}${head('model', 'model', false)}${head('canary', 'canary', false)}${head('variant', 'variant', false)}
        ${head('input_price', 'in $/M')}${head('output_price', 'out $/M')}${head('cost_per_call', '$/call')}${head('attempts', 'N')}
        ${head('pass_rate', 'pass rate')}<th scope="col">Wilson 95%</th>${head('cost_per_pass', '$/pass')}<th scope="col">failures</th>
      </tr></thead>
      <tbody>${rows.map((r) => {
        const n = Number(r.attempts);
        return html`<tr data-model=${r.model} data-tier=${r.spec_tier} data-canary=${r.canary} data-variant=${r.variant} data-tenant=${r.tenant}>
          <td>${r.tenant}</td><td>${r.spec_tier}</td><td>${r.model}</td><td>${r.canary}</td><td>${r.variant}</td>
          <td class="num">${money(r.input_price)}</td><td class="num">${money(r.output_price)}</td>
          <td class="num">${money(r.cost_per_call)}</td>
          <td class="num">${n}${n < LOW_N ? html` <abbr class="lown" title=${`fewer than ${LOW_N} attempts: the pass rate is uncertain`}>low N</abbr>` : ''}</td>
          <td class="num">${pct(r.pass_rate)}</td><td><${WilsonBar} r=${r} /></td>
          <td class="num cpp" data-value=${r.cost_per_pass ?? ''}>${r.cost_per_pass === null ? '∞' : money(r.cost_per_pass)}${Number(r.unpriced_attempts) > 0 ? html` <abbr title=${`${r.unpriced_attempts} unpriced attempts`}>*</abbr>` : ''}</td>
          <td>${Number(r.passes) < n ? html`<a class="failures" href=${failingLink(r)}>${n - Number(r.passes)} failed</a>` : '—'}</td>
        </tr>`;
      })}</tbody>
    </table>
    ${board.data && rows.length === 0 ? html`<p>No attempts in this window.</p>` : ''}
  </${Section}>
  <${Section} title="Routing per tier">
    <label>pass-rate bar (Wilson lower bound) <input id="routing-bar" type="range" min="0" max="1" step="0.05" value=${bar}
      onInput=${(e: Event) => setBar(Number((e.target as HTMLInputElement).value))} /> <output>${pct(bar)}</output></label>
    <${Problem} error=${routing.error} />
    <table id="routing"><thead><tr><th scope="col">tenant</th><th scope="col">tier</th><th scope="col">rank</th><th scope="col">model</th>
      <th scope="col" class="num">N</th><th scope="col" class="num">pass rate</th><th scope="col" class="num">lower bound</th><th scope="col" class="num">$/pass</th></tr></thead>
      <tbody>${(routing.data ?? []).map((r) => html`<tr><td>${r.tenant}</td><td>${r.spec_tier}</td><td>${r.rank}</td><td>${r.model}</td>
        <td class="num">${r.attempts}</td><td class="num">${pct(r.pass_rate)}</td><td class="num">${pct(r.pass_rate_low)}</td><td class="num">${money(r.cost_per_pass)}</td></tr>`)}</tbody>
    </table>
  </${Section}>`;
}
