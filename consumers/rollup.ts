/**
 * The arithmetic of one attempt, pure: each member span priced once
 * (describeMember), then the attempt row rolled up from its members. Late
 * spans re-run the same roll-up over the grown member set, so a row is the
 * same function of its spans however they arrived.
 */
import { DEFAULT_TENANT, ATTR } from '../contract/attributes.ts';
import type { AttemptAttributes } from '../contract/attempt.ts';
import { formatInstant, type AttemptRow, type LlmCallRow } from '../contract/rows.ts';
import { addTokens, zeroTokens, type TokenCounts } from '../contract/tokens.ts';
import type { SpanRecord } from '../otlp/codec.ts';
import { formatUsd, parseUsd } from '../pricing/decimal.ts';
import { INVALID_USAGE_PREFIX, priceWithEvidence } from '../pricing/engine.ts';
import { resolveProvider, type ProviderSource } from '../pricing/providers.ts';
import type { Catalog } from '../pricing/catalog.ts';
import { spanRole, type LlmCall } from './dialects.ts';

/** An LLM call priced with the card in force at its start. */
export interface PricedCall {
  spanId: string;
  traceId: string;
  startNs: bigint;
  endNs: bigint;
  /** The provider the call is priced under, how it was found, and the evidence it was resolved from (pricing/providers.ts). */
  provider: string;
  providerSource: ProviderSource;
  instrumentedProvider: string;
  serverAddress: string;
  /** The billed (response) model, and the model the agent asked for ('' when not reported). */
  model: string;
  requestModel: string;
  serviceTier: LlmCall['serviceTier'];
  dialect: string;
  tokens: TokenCounts;
  /** Of tokens.cache_write, the 1-hour cache writes. */
  cacheWrite1hTokens: number;
  /** null = unpriced. */
  costAtto: bigint | null;
  reportedAtto: bigint | null;
  priceProvider: string;
  /** The card that priced the call ('' when unpriced). */
  priceModel: string;
  priceFromNs: bigint | null;
  unpricedReason: string;
}

/** What an attempt needs to remember of each of its spans. */
export interface Member {
  spanId: string;
  parentSpanId: string;
  role: 'llm_call' | 'tool_call' | 'other';
  call?: PricedCall;
}

/** The attempt span's part of the row. */
export interface AttemptHeader {
  attemptId: string;
  tenant: string;
  pool: string;
  attrs: AttemptAttributes;
  traceId: string;
  spanId: string;
  startNs: bigint;
  /** 0n when the attempt span never ended. */
  endNs: bigint;
}

export const tenantOf = (span: SpanRecord): string => {
  const t = span.resource[ATTR.TENANT];
  return typeof t === 'string' && t !== '' ? t : DEFAULT_TENANT;
};

const nsToMs = (ns: bigint) => Number(ns / 1_000_000n);

function decimalAttribute(v: unknown): bigint | null {
  if (typeof v !== 'number' && typeof v !== 'string') return null;
  try {
    return parseUsd(v);
  } catch {
    return null;
  }
}

/** Prices a call as the SDK's cost preview does, under the provider its span's evidence resolves to. */
function priceLlmCall(catalog: Catalog, call: LlmCall, startedAtMs: number) {
  const { provider, model, requestModel, serviceTier, tokens, cacheWrite1hTokens, explicitProvider, serverAddress } = call;
  return priceWithEvidence(catalog, { model, requestModel, startedAtMs, serviceTier, tokens, cacheWrite1hTokens }, { explicit: explicitProvider ?? '', serverAddress: serverAddress ?? '', instrumented: provider });
}

export function describeMember(span: SpanRecord, catalog: Catalog): Member {
  const role = spanRole(span.name, span.attributes);
  const member = { spanId: span.spanId, parentSpanId: span.parentSpanId };
  if (role.role === 'tool_call') return { ...member, role: 'tool_call' };
  if (role.role === 'other') return { ...member, role: 'other' };
  const base = { spanId: span.spanId, traceId: span.traceId, startNs: span.startTimeUnixNano, endNs: span.endTimeUnixNano };
  if (role.role === 'llm_call_invalid') {
    const resolved = resolveProvider(catalog, { explicit: role.explicitProvider ?? '', serverAddress: role.serverAddress ?? '', instrumented: role.provider });
    return {
      ...member,
      role: 'llm_call',
      call: {
        ...base,
        provider: resolved.provider,
        providerSource: resolved.source,
        instrumentedProvider: role.provider,
        serverAddress: role.serverAddress ?? '',
        model: role.model,
        requestModel: '',
        serviceTier: 'standard',
        dialect: role.dialect,
        tokens: zeroTokens(),
        cacheWrite1hTokens: 0,
        costAtto: null,
        reportedAtto: null,
        priceProvider: '',
        priceModel: '',
        priceFromNs: null,
        unpricedReason: `${INVALID_USAGE_PREFIX}${role.reason}`,
      },
    };
  }
  const c = role.call;
  const { provider, providerSource, result: priced } = priceLlmCall(catalog, c, nsToMs(span.startTimeUnixNano));
  return {
    ...member,
    role: 'llm_call',
    call: {
      ...base,
      provider,
      providerSource,
      instrumentedProvider: c.provider,
      serverAddress: c.serverAddress ?? '',
      model: c.model,
      requestModel: c.requestModel,
      serviceTier: c.serviceTier,
      dialect: c.dialect,
      tokens: c.tokens,
      cacheWrite1hTokens: c.cacheWrite1hTokens ?? 0,
      costAtto: priced.priced ? priced.costAtto : null,
      reportedAtto: c.reportedCostUsd === undefined ? null : decimalAttribute(c.reportedCostUsd),
      priceProvider: priced.priced ? priced.card.provider : '',
      priceModel: priced.priced ? priced.card.model : '',
      priceFromNs: priced.priced ? BigInt(priced.period.from) * 1_000_000n : null,
      unpricedReason: priced.priced ? '' : priced.reason,
    },
  };
}

/**
 * The LLM calls of an attempt, billed or not: an LLM-call span with another
 * LLM-call span below it is a wrapper (a framework span around the provider
 * client's span), and counting both would count the tokens twice — the
 * leaves are billed, the wrappers are not.
 */
function llmCalls(members: ReadonlyMap<string, Member>): { billed: PricedCall[]; wrappers: PricedCall[] } {
  const wrappers = new Set<string>();
  for (const m of members.values()) {
    if (m.role !== 'llm_call') continue;
    const seen = new Set<string>();
    for (let p = members.get(m.parentSpanId); p && !seen.has(p.spanId); p = members.get(p.parentSpanId)) {
      seen.add(p.spanId);
      if (p.role === 'llm_call') wrappers.add(p.spanId);
    }
  }
  const out: { billed: PricedCall[]; wrappers: PricedCall[] } = { billed: [], wrappers: [] };
  for (const m of members.values()) if (m.call) (wrappers.has(m.spanId) ? out.wrappers : out.billed).push(m.call);
  return out;
}

export type AttemptFigures = Omit<AttemptRow, 'sampled' | 'sampling_rate' | 'decision'>;

/**
 * Versions an assembly leaves room for above it: a roll-up of N members is
 * version N × REPRICE_SLOTS, and a re-pricing (storage/reprice.ts) writes
 * version + 1. So a re-priced row wins over the row it re-prices and over a
 * redelivery of it, yet never over a more complete re-assembly of the
 * attempt (N + 1 members), however many re-pricings came before it.
 */
export const REPRICE_SLOTS = 1 << 20;

/**
 * The attempt's row and the rows of its LLM calls, all at one version (the
 * members counted, in REPRICE_SLOTS): billed calls, and a tombstone for each wrapper, so a
 * partial re-assembly that billed a wrapper (its inner call missing) loses
 * to the complete one in ClickHouse as the attempt row does.
 */
export function rollUp(header: AttemptHeader, members: ReadonlyMap<string, Member>): { row: AttemptFigures; callRows: LlmCallRow[] } {
  const { billed: calls, wrappers } = llmCalls(members);
  let tokens = zeroTokens();
  let cost: bigint | null = 0n;
  let reported: bigint | null = null;
  let unpriced = 0;
  for (const c of calls) {
    tokens = addTokens(tokens, c.tokens);
    if (c.costAtto === null) unpriced++;
    cost = cost === null || c.costAtto === null ? null : cost + c.costAtto;
    if (c.reportedAtto !== null) reported = (reported ?? 0n) + c.reportedAtto;
  }
  const ended = header.endNs >= header.startNs && header.endNs > 0n;
  const lastEnd = [...members.values()].reduce((max, m) => (m.call && m.call.endNs > max ? m.call.endNs : max), header.startNs);
  const endNs = ended ? header.endNs : lastEnd;
  const a = header.attrs;
  const version = members.size * REPRICE_SLOTS;
  return {
    callRows: [...calls.map((c) => llmCallRow(header, c, version, 0)), ...wrappers.map((c) => llmCallRow(header, c, version, 1))],
    row: {
      attempt_id: header.attemptId,
      tenant: header.tenant,
      spec_id: a.specId,
      spec_tier: a.tier,
      canary: a.canary,
      variant: a.variant,
      pool: header.pool,
      model: a.model ?? costliestModel(calls),
      attempt_number: a.attemptNumber,
      outcome: ended ? a.outcome : 'unknown',
      reason: ended ? a.reason : a.reason || 'attempt span never ended',
      started_at: formatInstant(header.startNs),
      ended_at: formatInstant(endNs),
      duration_ms: Number(endNs - header.startNs) / 1e6,
      llm_calls: calls.length,
      tool_calls: [...members.values()].filter((m) => m.role === 'tool_call').length,
      input_tokens: tokens.input,
      cache_read_tokens: tokens.cache_read,
      cache_write_tokens: tokens.cache_write,
      output_tokens: tokens.output,
      reasoning_tokens: tokens.reasoning,
      cost_usd: cost === null ? null : formatUsd(cost),
      reported_cost_usd: reported === null ? null : formatUsd(reported),
      unpriced_calls: unpriced,
      trace_id: header.traceId,
      span_id: header.spanId,
      version,
    },
  };
}

const totalTokens = (t: TokenCounts) => t.input + t.cache_read + t.cache_write + t.output + t.reasoning;

/**
 * DESIGN.md: the model of the attempt's costliest call (unpriced calls rank
 * below priced ones, then by tokens, then by name) — named as the agent
 * requested it, the name it routes by, rather than a dated response model.
 */
function costliestModel(calls: PricedCall[]): string {
  let best: PricedCall | undefined;
  for (const c of calls) {
    if (!best) {
      best = c;
      continue;
    }
    const byCost = (c.costAtto ?? -1n) - (best.costAtto ?? -1n);
    const byTokens = totalTokens(c.tokens) - totalTokens(best.tokens);
    if (byCost > 0n || (byCost === 0n && (byTokens > 0 || (byTokens === 0 && c.model < best.model)))) best = c;
  }
  return best ? best.requestModel || best.model : '';
}

function llmCallRow(header: AttemptHeader, c: PricedCall, version: number, isDeleted: 0 | 1): LlmCallRow {
  return {
    tenant: header.tenant,
    attempt_id: header.attemptId,
    trace_id: c.traceId,
    span_id: c.spanId,
    started_at: formatInstant(c.startNs),
    ended_at: formatInstant(c.endNs >= c.startNs ? c.endNs : c.startNs),
    provider: c.provider,
    provider_source: c.providerSource,
    instrumented_provider: c.instrumentedProvider,
    server_address: c.serverAddress,
    model: c.model,
    request_model: c.requestModel,
    service_tier: c.serviceTier,
    input_tokens: c.tokens.input,
    cache_read_tokens: c.tokens.cache_read,
    cache_write_tokens: c.tokens.cache_write,
    output_tokens: c.tokens.output,
    reasoning_tokens: c.tokens.reasoning,
    cache_write_1h_tokens: c.cacheWrite1hTokens,
    cost_usd: c.costAtto === null ? null : formatUsd(c.costAtto),
    reported_cost_usd: c.reportedAtto === null ? null : formatUsd(c.reportedAtto),
    price_provider: c.priceProvider,
    price_model: c.priceModel,
    price_from: c.priceFromNs === null ? null : formatInstant(c.priceFromNs),
    unpriced_reason: c.unpricedReason,
    dialect: c.dialect,
    version,
    is_deleted: isDeleted,
  };
}
