/**
 * The running cost of an attempt's LLM calls, priced locally by the
 * pipeline's own engine (pricing/) with what the pipeline reads from the
 * same spans (normalised provider, billed and requested model, 1-hour cache
 * writes), so a preview and the pipeline's $/pass can never disagree about
 * a price. A preview only: it is never put on a span, because cost is the
 * pipeline's job (DESIGN.md "Wire contract").
 */
import type { ServiceTier } from '../contract/attributes.ts';
import type { TokenCounts } from '../contract/tokens.ts';
import { formatUsd, loadCatalogFile, loadDefaultCatalog, noUsageReason, priceCall, type Catalog } from '../pricing/index.ts';

/** One LLM call as the SDK recorded it. */
export interface RecordedCall {
  /** Normalised as the pipeline normalises gen_ai.provider.name. */
  provider: string;
  /** The response model when the provider named one (dated names resolve through card aliases), else the request model. */
  model: string;
  requestModel: string;
  serviceTier: ServiceTier;
  startedAtMs: number;
  /** Absent when the usage was missing or invalid, or the call failed; `problem` says why. */
  tokens?: TokenCounts;
  cacheWrite1hTokens?: number;
  problem?: string;
}

export interface UnpricedCall {
  provider: string;
  model: string;
  reason: string;
}

export interface CostPreview {
  /** Exact USD of the priced calls, as a decimal string (e.g. "0.0123"). */
  usd: string;
  /** LLM calls recorded in the attempt so far. */
  calls: number;
  /** Calls without a price: the attempt's true cost is unknown while this is > 0. */
  unpricedCalls: number;
  unpriced: UnpricedCall[];
}

let catalogOfPipeline: Catalog | undefined;

/** The catalog the pipeline uses by default: the file named by FLEET_PRICES, else the shipped one. */
export function pipelineCatalog(): Catalog {
  catalogOfPipeline ??= process.env.FLEET_PRICES ? loadCatalogFile(process.env.FLEET_PRICES) : loadDefaultCatalog();
  return catalogOfPipeline;
}

export function previewCost(calls: readonly RecordedCall[], catalog: Catalog): CostPreview {
  let atto = 0n;
  const unpriced: UnpricedCall[] = [];
  for (const call of calls) {
    const { provider, model, tokens, problem, ...rest } = call;
    if (!tokens) {
      // Worded as the pipeline's roll-up words an LLM span without usage (consumers/rollup.ts).
      unpriced.push({ provider, model, reason: `invalid usage: ${problem ?? noUsageReason()}` });
      continue;
    }
    const result = priceCall(catalog, { provider, model, tokens, ...rest });
    if (result.priced) atto += result.costAtto;
    else unpriced.push({ provider, model, reason: result.reason });
  }
  return { usd: formatUsd(atto), calls: calls.length, unpricedCalls: unpriced.length, unpriced };
}
