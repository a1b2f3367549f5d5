/**
 * Trends over a window, in time buckets: pass rate with its Wilson 95 %
 * band, $/pass, cost per token kind (stacked), the cache hit rate, and alert
 * firings/resolutions marked on the time axis. Charts: uPlot (small, fast,
 * canvas; no dependencies).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { num, query, since, type Row } from './api.ts';
import { WINDOWS } from './board.ts';
import { html, Problem, Section, useData, type Live } from './ui.ts';

/** Buckets per window: enough to see a fall, few enough to stay cheap. */
const BUCKETS = 60;

const ATTEMPTS_SQL = `
SELECT toUnixTimestamp(toStartOfInterval(started_at, toIntervalSecond({b:UInt32}))) AS t, count() AS n, countIf(outcome = 'pass') AS p, sum(cost_usd) AS cost
FROM fleet.attempts FINAL
WHERE started_at >= {since:DateTime64(9)} AND (model = {model:String} OR {model:String} = '') AND (spec_tier = {tier:String} OR {tier:String} = '')
GROUP BY t ORDER BY t LIMIT 1000`;

const TOKENS_SQL = `
SELECT toUnixTimestamp(toStartOfInterval(started_at, toIntervalSecond({b:UInt32}))) AS t,
       sum(input_tokens) AS input, sum(cache_read_tokens) AS cache_read, sum(cache_write_tokens) AS cache_write,
       sum(output_tokens) AS output, sum(reasoning_tokens) AS reasoning
FROM fleet.llm_calls FINAL
WHERE started_at >= {since:DateTime64(9)} AND (model = {model:String} OR {model:String} = '')
GROUP BY t ORDER BY t LIMIT 1000`;

/**
 * Cost per token kind: each call's tokens of a kind at its card's price for
 * that kind, scaled by the call's actual cost over its list-price total (so
 * a service-tier multiplier is kept and the kinds add up to the exact cost).
 */
const KIND_COST_SQL = `
SELECT t, sum(i * r) AS input, sum(cr * r) AS cache_read, sum(cw * r) AS cache_write, sum(o * r) AS output, sum(rs * r) AS reasoning, sum(cost) AS cost
FROM (
  SELECT toUnixTimestamp(toStartOfInterval(c.started_at, toIntervalSecond({b:UInt32}))) AS t,
         c.input_tokens * toFloat64(p.input) / 1e6 AS i, c.cache_read_tokens * toFloat64(p.cache_read) / 1e6 AS cr,
         ((c.cache_write_tokens - c.cache_write_1h_tokens) * toFloat64(p.cache_write) + c.cache_write_1h_tokens * toFloat64(p.cache_write_1h)) / 1e6 AS cw,
         c.output_tokens * toFloat64(p.output) / 1e6 AS o, c.reasoning_tokens * toFloat64(p.reasoning) / 1e6 AS rs,
         toFloat64(c.cost_usd) AS cost, if(i + cr + cw + o + rs > 0, cost / (i + cr + cw + o + rs), 0) AS r
  FROM (SELECT started_at, input_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens, cost_usd,
               price_provider, price_model, toDateTime64(assumeNotNull(price_from), 3, 'UTC') AS card_from
        FROM fleet.llm_calls FINAL
        WHERE started_at >= {since:DateTime64(9)} AND price_model != '' AND (model = {model:String} OR {model:String} = '') LIMIT 100000) AS c
  INNER JOIN (SELECT provider, model, valid_from, input, cache_read, cache_write, cache_write_1h, output, reasoning FROM fleet.prices) AS p
    ON p.provider = c.price_provider AND p.model = c.price_model AND p.valid_from = c.card_from)
GROUP BY t ORDER BY t LIMIT 1000`;

const ALERTS_SQL = `
SELECT toUnixTimestamp(at) AS t, toString(event) AS event, rule FROM fleet.alerts
WHERE at >= {since:DateTime64(9)} AND event IN ('firing', 'resolved') ORDER BY at LIMIT 500`;

const MODELS_SQL = `SELECT groupUniqArray(100)(model) AS models FROM fleet.attempts WHERE started_at >= {since:DateTime64(9)}`;

/** Wilson score interval, z = 1.96 (as the views compute it). */
export function wilson(p: number, n: number, z = 1.959963984540054): [number, number] {
  if (n === 0) return [0, 1];
  const phat = p / n;
  const d = 1 + (z * z) / n;
  const c = phat + (z * z) / (2 * n);
  const m = z * Math.sqrt((phat * (1 - phat)) / n + (z * z) / (4 * n * n));
  return [(c - m) / d, (c + m) / d];
}

type Marks = Array<{ t: number; event: string; rule: string }>;

/** Vertical lines at alert events: red for firing, green for resolved. */
function markPlugin(marks: Marks): uPlot.Plugin {
  return {
    hooks: {
      draw: (u) => {
        const ctx = u.ctx;
        for (const m of marks) {
          const x = u.valToPos(m.t, 'x', true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.save();
          ctx.strokeStyle = m.event === 'firing' ? '#c00000' : '#0a6b0a';
          ctx.setLineDash([4, 3]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        }
      },
    },
  };
}

function Chart(p: { id: string; title: string; x: [number, number]; data: uPlot.AlignedData; series: uPlot.Series[]; bands?: uPlot.Band[]; marks: Marks; y?: (v: number) => string }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const plot = new uPlot(
      {
        title: p.title,
        width: Math.min(1200, el.current.clientWidth || 900),
        height: 240,
        series: [{ label: 'time', value: (_u, v) => (v === null ? '' : new Date(v * 1000).toLocaleString()) }, ...p.series],
        ...(p.bands && { bands: p.bands }),
        // The whole window, whatever the data covers: a fall shows where it happened in it.
        scales: { x: { time: true, range: () => p.x } },
        axes: [{}, { values: (_u, vals) => vals.map((v) => (p.y ? p.y(v) : String(v))), size: 70 }],
        plugins: [markPlugin(p.marks)],
      },
      p.data,
      el.current,
    );
    return () => plot.destroy();
  }, [JSON.stringify(p.data), JSON.stringify(p.marks), p.x[0]]);
  return html`<figure id=${p.id} class="chart" aria-label=${p.title}><div ref=${el}></div></figure>`;
}

export function Trends({ live }: { live: Live }) {
  const [windowH, setWindowH] = useState(24);
  const [model, setModel] = useState('');
  const [tier, setTier] = useState('');
  const params = { since: since(windowH), b: Math.max(60, Math.round((windowH * 3600) / BUCKETS)), model, tier };
  const a = useData(() => query(ATTEMPTS_SQL, params), [live.tick, windowH, model, tier]);
  const t = useData(() => query(TOKENS_SQL, params), [live.tick, windowH, model]);
  const kc = useData(() => query(KIND_COST_SQL, params), [live.tick, windowH, model]);
  // A tenant-scoped reader cannot read alerts (no tenant column): the charts then go without marks.
  const al = useData(() => query<{ t: string; event: string; rule: string }>(ALERTS_SQL, params).catch(() => []), [live.tick, windowH]);
  const models = useData(() => query<{ models: string[] }>(MODELS_SQL, params), [live.tick, windowH]);
  const x: [number, number] = [Math.floor(Date.now() / 1000) - windowH * 3600, Math.ceil(Date.now() / 1000)];
  const marks: Marks = (al.data ?? []).map((m) => ({ t: Number(m.t), event: m.event, rule: m.rule }));
  const rows: Row[] = a.data ?? [];
  const ts = rows.map((r) => Number(r.t));
  const n = rows.map((r) => Number(r.n));
  const p = rows.map((r) => Number(r.p));
  const w = rows.map((_, i) => wilson(p[i]!, n[i]!));
  const tok = t.data ?? [];
  const kinds = ['input', 'cache_read', 'cache_write', 'output', 'reasoning'] as const;
  const costs = kc.data ?? [];
  // Stacked: each series is the running sum of the kinds up to it; bands fill between neighbours.
  const stacked = kinds.map((_, k) => costs.map((r) => kinds.slice(0, k + 1).reduce((s, kk) => s + Number(r[kk]), 0)));
  const colors = ['#4a7ab8', '#7fb069', '#e0a458', '#c1666b', '#6c4f8a'];
  return html`<${Section} title="Trends">
    <form class="filters" aria-label="filters" onSubmit=${(e: Event) => e.preventDefault()}>
      <label>window <select id="t-window" value=${windowH} onChange=${(e: Event) => setWindowH(Number((e.target as HTMLSelectElement).value))}>
        ${WINDOWS.map(([l, h]) => html`<option value=${h}>${l}</option>`)}</select></label>
      <label>model <select id="t-model" value=${model} onChange=${(e: Event) => setModel((e.target as HTMLSelectElement).value)}>
        <option value="">all</option>${[...(models.data?.[0]?.models ?? [])].sort().map((m) => html`<option value=${m}>${m}</option>`)}</select></label>
      <label>tier <input id="t-tier" value=${tier} placeholder="all" onChange=${(e: Event) => setTier((e.target as HTMLInputElement).value)} /></label>
    </form>
    <p>Buckets of ${Math.round(params.b / 60)} min. Dashed lines: alert fired (red) / resolved (green).</p>
    <${Problem} error=${a.error ?? t.error ?? kc.error} />
    ${rows.length === 0 ? html`<p>No attempts in this window.</p>` : html`
    <${Chart} x=${x} id="chart-pass" title="Pass rate (Wilson 95% band)" marks=${marks} y=${(v: number) => `${Math.round(v * 100)}%`}
      data=${[ts, p.map((x, i) => x / n[i]!), w.map((x) => x[0]), w.map((x) => x[1])]}
      series=${[{ label: 'pass rate', stroke: '#14213d', width: 2 }, { label: 'low', stroke: '#4a7ab8' }, { label: 'high', stroke: '#4a7ab8' }]}
      bands=${[{ series: [3, 2], fill: 'rgba(74,122,184,0.2)' }]} />
    <${Chart} x=${x} id="chart-cpp" title="$/pass (cost ÷ passes per bucket)" marks=${marks} y=${(v: number) => `$${v.toPrecision(2)}`}
      data=${[ts, rows.map((r, i) => (p[i] ? (num(r.cost) ?? 0) / p[i]! : null))]} series=${[{ label: '$/pass', stroke: '#c1666b', width: 2 }]} />`}
    ${tok.length ? html`
    <${Chart} x=${x} id="chart-kinds" title="Cost per token kind (stacked)" marks=${marks} y=${(v: number) => `$${v.toPrecision(2)}`}
      data=${[costs.map((r) => Number(r.t)), ...stacked]}
      series=${kinds.map((k, i) => ({ label: k.replace('_', ' '), stroke: colors[i], fill: i === 0 ? colors[i] : undefined }))}
      bands=${kinds.slice(1).map((_, i) => ({ series: [i + 2, i + 1], fill: colors[i + 1] }))} />
    <${Chart} x=${x} id="chart-cache" title="Cache hit rate (cache read ÷ all input)" marks=${marks} y=${(v: number) => `${Math.round(v * 100)}%`}
      data=${[tok.map((r) => Number(r.t)), tok.map((r) => { const all = Number(r.input) + Number(r.cache_read) + Number(r.cache_write); return all ? Number(r.cache_read) / all : null; })]}
      series=${[{ label: 'cache hit rate', stroke: '#7fb069', width: 2 }]} />` : ''}
  </${Section}>`;
}
