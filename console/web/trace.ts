/** Failing attempts, and one attempt's kept spans as a waterfall with its LLM calls' models, tokens, cards and costs. */
import { money, query, since, type Row } from './api.ts';
import { html, Problem, Section, Time, useData, type Live } from './ui.ts';

/** Columns a link (a board row, an alert's labels) may narrow the failing attempts by. */
export const FAILING_FILTERS = ['tenant', 'spec_tier', 'model', 'canary', 'variant'] as const;

const FAILING_SQL = `
SELECT attempt_id, tenant, spec_id, spec_tier, model, attempt_number, outcome, reason, started_at, cost_usd, decision
FROM fleet.attempts FINAL
WHERE started_at >= {since:DateTime64(9)} AND outcome != 'pass'
  ${FAILING_FILTERS.map((c) => `AND ({${c}:String} = '' OR ${c} = {${c}:String})`).join(' ')}
ORDER BY started_at DESC LIMIT 200`;

/** `#/failing?model=…&spec_tier=…`: the failing attempts of one series. */
export function failingLink(labels: Record<string, unknown>): string {
  const q = new URLSearchParams();
  for (const c of FAILING_FILTERS) if (typeof labels[c] === 'string' && labels[c] !== '') q.set(c, labels[c] as string);
  return `#/failing${q.size ? `?${q}` : ''}`;
}

export function Failing({ live, filters }: { live: Live; filters: URLSearchParams }) {
  const params = Object.fromEntries(FAILING_FILTERS.map((c) => [c, filters.get(c) ?? '']));
  const narrowed = FAILING_FILTERS.filter((c) => params[c]).map((c) => `${c} ${params[c]}`).join(', ');
  const r = useData(() => query(FAILING_SQL, { since: since(720), ...params }), [live.tick, filters.toString()]);
  return html`<${Section} title=${`Failing attempts${narrowed ? ` of ${narrowed}` : ''} (30 days, newest 200)`}>
    ${narrowed ? html`<p><a href="#/failing">all failing attempts</a></p>` : ''}
    <${Problem} error=${r.error} />
    <table id="failing"><thead><tr><th scope="col">started</th><th scope="col">tenant</th><th scope="col">spec</th><th scope="col">tier</th>
      <th scope="col">model</th><th scope="col">#</th><th scope="col">outcome</th><th scope="col" class="num">cost</th><th scope="col">kept</th></tr></thead>
    <tbody>${(r.data ?? []).map((a) => html`<tr>
      <td><${Time} v=${a.started_at} /></td><td>${a.tenant}</td><td>${a.spec_id}</td><td>${a.spec_tier}</td><td>${a.model}</td><td>${a.attempt_number}</td>
      <td><a href=${`#/attempt/${encodeURIComponent(String(a.attempt_id))}`} data-attempt=${a.attempt_id}>${a.outcome}${a.reason ? `: ${a.reason}` : ''}</a></td>
      <td class="num">${money(a.cost_usd)}</td><td>${a.decision}</td></tr>`)}</tbody></table>
  </${Section}>`;
}

const ATTEMPT_SQL = `
SELECT attempt_id, tenant, spec_id, spec_tier, canary, variant, model, attempt_number, outcome, reason, started_at, duration_ms,
       llm_calls, tool_calls, cost_usd, unpriced_calls, trace_id, sampled, sampling_rate, decision
FROM fleet.attempts FINAL WHERE attempt_id = {a:String} LIMIT 1`;

const SPANS_SQL = `
SELECT s.span_id AS span_id, s.parent_span_id AS parent_span_id, s.name AS name, toString(s.kind) AS kind,
       toUnixTimestamp64Nano(s.start_time) AS start_ns, s.duration_ns AS duration_ns, toString(s.status_code) AS status,
       s.status_message AS status_message, s.sample_reason AS sample_reason,
       mapFilter((k, v) -> startsWith(k, 'gen_ai.tool') OR k = 'fleet.tool', s.attributes) AS tool_attrs,
       arrayMap(e -> tuple(toString(e.time), e.name), s.events) AS events,
       c.model AS model, c.input_tokens AS input_tokens, c.cache_read_tokens AS cache_read_tokens, c.cache_write_tokens AS cache_write_tokens,
       c.output_tokens AS output_tokens, c.reasoning_tokens AS reasoning_tokens, c.cost_usd AS cost_usd,
       c.price_provider AS price_provider, c.price_model AS price_model, c.unpriced_reason AS unpriced_reason, c.span_id != '' AS is_llm
FROM (SELECT * FROM fleet.spans FINAL WHERE attempt_id = {a:String} AND start_time >= {from:DateTime64(9)} LIMIT 2000) AS s
LEFT JOIN (SELECT span_id, model, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_usd,
                  price_provider, price_model, unpriced_reason
           FROM fleet.llm_calls FINAL WHERE attempt_id = {a:String} AND started_at >= {from:DateTime64(9)} LIMIT 2000) AS c
  ON c.span_id = s.span_id
ORDER BY start_ns, span_id`;

interface SpanRow extends Row {
  span_id: string;
  parent_span_id: string;
  start_ns: number;
  duration_ns: number;
}

/** Depth-first order with depth, so children sit under their parent. */
function tree(spans: SpanRow[]): Array<{ s: SpanRow; depth: number }> {
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map<string, SpanRow[]>();
  for (const s of spans) {
    const p = ids.has(s.parent_span_id) ? s.parent_span_id : '';
    children.set(p, [...(children.get(p) ?? []), s]);
  }
  const out: Array<{ s: SpanRow; depth: number }> = [];
  const walk = (p: string, depth: number) => {
    for (const s of children.get(p) ?? []) {
      out.push({ s, depth });
      walk(s.span_id, depth + 1);
    }
  };
  walk('', 0);
  return out;
}

const ms = (ns: number) => `${(ns / 1e6).toFixed(ns < 1e7 ? 1 : 0)} ms`;

export function Attempt({ id, live }: { id: string; live: Live }) {
  const a = useData(() => query(ATTEMPT_SQL, { a: id }), [id, live.tick]);
  const attempt = a.data?.[0];
  // The spans' partitions are daily: a bound a day before the attempt keeps the read to its parts.
  const from = attempt ? String(attempt.started_at).slice(0, 10) + ' 00:00:00' : '';
  const s = useData(() => (from ? query<SpanRow>(SPANS_SQL, { a: id, from: since(24, new Date(`${from.replace(' ', 'T')}Z`).getTime()) }) : Promise.resolve([])), [id, from, live.tick]);
  if (a.data && !attempt) return html`<${Section} title="Attempt"><p role="alert">No attempt ${id} (or not visible to this token).</p></${Section}>`;
  if (!attempt) return html`<${Problem} error=${a.error} />`;
  const spans = s.data ?? [];
  const t0 = Math.min(...spans.map((x) => Number(x.start_ns)));
  const t1 = Math.max(...spans.map((x) => Number(x.start_ns) + Number(x.duration_ns)));
  const span = Math.max(1, t1 - t0);
  const reasons = [...new Set(spans.map((x) => x.sample_reason).filter(Boolean))].join(', ');
  const llmCost = spans.reduce((c, x) => c + (x.is_llm ? Number(x.cost_usd ?? 0) : 0), 0);
  return html`<${Section} title=${`Attempt ${id}`}>
    <dl class="facts">
      <dt>spec</dt><dd>${attempt.spec_id} (${attempt.spec_tier}, attempt #${attempt.attempt_number})</dd>
      <dt>outcome</dt><dd class=${attempt.outcome === 'pass' ? 'ok' : 'bad'}>${attempt.outcome}${attempt.reason ? `: ${attempt.reason}` : ''}</dd>
      <dt>model</dt><dd>${attempt.model} · ${attempt.canary} / ${attempt.variant}</dd>
      <dt>started</dt><dd><${Time} v=${attempt.started_at} /> · ${Number(attempt.duration_ms).toFixed(0)} ms</dd>
      <dt>cost</dt><dd id="attempt-cost" data-value=${attempt.cost_usd ?? ''}>${money(attempt.cost_usd)}${Number(attempt.unpriced_calls) > 0 ? ` (${attempt.unpriced_calls} unpriced calls)` : ''} · ${attempt.llm_calls} LLM calls, ${attempt.tool_calls} tool calls</dd>
      <dt>kept because</dt><dd id="sample-reason">${reasons || attempt.decision} (sampling rate ${attempt.sampling_rate})</dd>
      <dt>spans</dt><dd id="span-count">${spans.length} spans · LLM cost ${money(llmCost)}</dd>
    </dl>
    <${Problem} error=${s.error} />
    <table id="waterfall" class="waterfall"><thead><tr><th scope="col">span</th><th scope="col">timeline</th><th scope="col">details</th></tr></thead>
    <tbody>${tree(spans).map(({ s: x, depth }) => html`<tr class=${`span ${x.status === 'ERROR' ? 'bad' : ''}`} data-span=${x.span_id}>
      <th scope="row" style=${`padding-left:${0.5 + depth * 1.1}em`}>${x.name}<br /><small>${x.kind}${x.status !== 'UNSET' ? ` · ${x.status}` : ''}${x.status_message ? `: ${x.status_message}` : ''}</small></th>
      <td class="bar-cell"><span class=${`bar ${x.is_llm ? 'llm' : 'other'}`} title=${ms(Number(x.duration_ns))}
        style=${`left:${((Number(x.start_ns) - t0) / span) * 100}%;width:${Math.max(0.3, (Number(x.duration_ns) / span) * 100)}%`}></span></td>
      <td>${ms(Number(x.duration_ns))}${x.is_llm
        ? html` · <b>${x.model}</b> · in ${x.input_tokens} · cache r ${x.cache_read_tokens} / w ${x.cache_write_tokens} · out ${x.output_tokens} · reasoning ${x.reasoning_tokens}${' '}
           · card ${x.price_provider ? `${x.price_provider}/${x.price_model}` : `unpriced: ${x.unpriced_reason}`} · <span class="cost">${money(x.cost_usd)}</span>`
        : Object.entries((x.tool_attrs ?? {}) as Record<string, string>).map(([k, v]) => html` · ${k}=${v}`)}
        ${(x.events as Array<[string, string]>).length ? html`<br /><small>events: ${(x.events as Array<[string, string]>).map(([t, n]) => html`<span title=${`${t} UTC`}>${n} </span>`)}</small>` : ''}</td>
    </tr>`)}</tbody></table>
  </${Section}>`;
}
