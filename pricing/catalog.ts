/**
 * The price catalog (DESIGN.md "Prices"): cards of USD per million tokens
 * per token kind, effective-dated, validated with zod. Prices become exact
 * integers here so the arithmetic in engine.ts never rounds.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { SERVICE_TIERS, type ServiceTier } from '../contract/attributes.ts';
import { TOKEN_KINDS, type TokenKind } from '../contract/tokens.ts';
import { toScaled } from './decimal.ts';

/**
 * Decimal places kept: prices per million tokens up to 1e-9 USD and
 * multipliers up to 1e-3, so tokens × price × multiplier / 1e6 is an exact
 * number of atto-dollars (9 + 3 + 6 = 18 = USD_SCALE).
 */
export const PRICE_SCALE = 9;
export const MULTIPLIER_SCALE = 3;

const date = z.union([
  z.iso.date(), // midnight UTC
  z.iso.datetime({ offset: true }),
]);

const decimalPlaces = (places: number) => (v: number) => {
  try {
    toScaled(v, places);
    return true;
  } catch {
    return false;
  }
};
const price = z
  .number()
  .nonnegative('must be ≥ 0')
  .refine(decimalPlaces(PRICE_SCALE), `must have at most ${PRICE_SCALE} decimal places (USD per million tokens)`);
const multiplier = z
  .number()
  .nonnegative('must be ≥ 0')
  .refine(decimalPlaces(MULTIPLIER_SCALE), `must have at most ${MULTIPLIER_SCALE} decimal places`);

const PeriodSchema = z.strictObject({
  from: date,
  to: date.optional(),
  input: price,
  output: price,
  cache_read: price.optional(),
  cache_write: price.optional(),
  /** Writes to a 1-hour cache (Anthropic bills them at 2× input, 5-minute writes at 1.25×). */
  cache_write_1h: price.optional(),
  reasoning: price.optional(),
  batch_multiplier: multiplier.optional(),
  flex_multiplier: multiplier.optional(),
  priority_multiplier: multiplier.optional(),
  note: z.string().optional(),
});

const CardSchema = z.strictObject({
  provider: z.string().min(1),
  model: z.string().min(1),
  aliases: z.array(z.string().min(1)).optional(),
  /** Other `gen_ai.provider.name` values whose calls this card prices: resellers that charge the same. */
  providers: z.array(z.string().min(1)).optional(),
  /** API hosts (`host`, `host:port`, `*.domain`) whose calls are this card's provider's: self-hosted vLLM, gateways (pricing/providers.ts). */
  hosts: z.array(z.string().min(1).transform((h) => h.toLowerCase())).optional(),
  source: z.string().optional(),
  periods: z.array(PeriodSchema).min(1, 'needs at least one period'),
});

export const CatalogSchema = z.strictObject({
  $schema: z.string().optional(),
  description: z.string().optional(),
  cards: z.array(CardSchema),
});
export type CatalogJson = z.infer<typeof CatalogSchema>;
export type CardJson = z.infer<typeof CardSchema>;

/** A period of a card as exact integers: prices in nano-USD per million tokens, multipliers in thousandths. */
export interface PricePeriod {
  /** Epoch milliseconds, inclusive. */
  from: number;
  /** Epoch milliseconds, exclusive; Infinity when open-ended. */
  to: number;
  /** The period's `from` as written in the catalog (reported with each priced call). */
  fromText: string;
  prices: Record<TokenKind, bigint>;
  /** Price of the 1-hour subset of the cache writes (default: the cache_write price). */
  cacheWrite1h: bigint;
  multipliers: Partial<Record<ServiceTier, bigint>>;
}

export interface PriceCard {
  provider: string;
  model: string;
  aliases: string[];
  /** Providers besides `provider` whose calls the card prices. */
  providers: string[];
  /** API hosts whose calls are `provider`'s. */
  hosts: string[];
  source?: string;
  /** Sorted by `from`, non-overlapping. */
  periods: PricePeriod[];
}

export interface Catalog {
  cards: PriceCard[];
  /** Model name or alias → the cards answering to it (several when providers share a name). */
  byName: Map<string, PriceCard[]>;
}

/** A catalog that cannot be used; the message says where and what. */
export class CatalogError extends Error {
  override name = 'CatalogError';
}

const DEFAULT_MULTIPLIERS: Partial<Record<ServiceTier, number>> = { standard: 1, batch: 0.5 };

function toPeriod(p: z.infer<typeof PeriodSchema>): PricePeriod {
  const per = (v: number) => toScaled(v, PRICE_SCALE);
  const input = per(p.input);
  const output = per(p.output);
  const prices: Record<TokenKind, bigint> = {
    input,
    output,
    cache_read: p.cache_read === undefined ? input : per(p.cache_read),
    cache_write: p.cache_write === undefined ? input : per(p.cache_write),
    reasoning: p.reasoning === undefined ? output : per(p.reasoning),
  };
  const cacheWrite1h = p.cache_write_1h === undefined ? prices.cache_write : per(p.cache_write_1h);
  const given: Partial<Record<ServiceTier, number | undefined>> = {
    batch: p.batch_multiplier,
    flex: p.flex_multiplier,
    priority: p.priority_multiplier,
  };
  const multipliers: Partial<Record<ServiceTier, bigint>> = {};
  for (const tier of SERVICE_TIERS) {
    const m = given[tier] ?? DEFAULT_MULTIPLIERS[tier];
    if (m !== undefined) multipliers[tier] = toScaled(m, MULTIPLIER_SCALE);
  }
  return { from: Date.parse(p.from), to: p.to === undefined ? Infinity : Date.parse(p.to), fromText: p.from, prices, cacheWrite1h, multipliers };
}

const formatIssues = (error: z.ZodError): string =>
  error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');

/** Validates a catalog (parsed JSON) and indexes it. Throws CatalogError naming every problem. */
export function buildCatalog(json: unknown, origin = 'price catalog'): Catalog {
  const parsed = CatalogSchema.safeParse(json);
  if (!parsed.success) throw new CatalogError(`${origin}: ${formatIssues(parsed.error)}`);

  const problems: string[] = [];
  const cards: PriceCard[] = parsed.data.cards.map((c, i) => {
    const where = `cards.${i} (${c.provider}/${c.model})`;
    const periods = c.periods.map(toPeriod).sort((a, b) => a.from - b.from);
    for (const p of periods) {
      if (!(p.to > p.from)) problems.push(`${where}: period from ${p.fromText} ends before it starts`);
    }
    for (let k = 1; k < periods.length; k++) {
      const prev = periods[k - 1]!;
      const cur = periods[k]!;
      if (cur.from < prev.to) problems.push(`${where}: periods from ${prev.fromText} and from ${cur.fromText} overlap`);
    }
    const providers = c.providers ?? [];
    if (providers.includes(c.provider)) problems.push(`${where}: providers repeats the card's own provider ${c.provider}`);
    return { provider: c.provider, model: c.model, aliases: c.aliases ?? [], providers, hosts: c.hosts ?? [], ...(c.source && { source: c.source }), periods };
  });

  const byName = new Map<string, PriceCard[]>();
  const seen = new Map<string, string>();
  for (const card of cards) {
    for (const name of new Set([card.model, ...card.aliases])) {
      // A call of any provider the card answers for must find one card, whichever provider it names.
      for (const provider of new Set([card.provider, ...card.providers])) {
        const key = `${provider}\u0000${name}`;
        const other = seen.get(key);
        if (other) problems.push(`${provider}/${name} is named by two cards (${other} and ${card.model})`);
        seen.set(key, card.model);
      }
      byName.set(name, [...(byName.get(name) ?? []), card]);
    }
  }
  const hostOwner = new Map<string, string>();
  for (const card of cards) {
    for (const host of card.hosts) {
      const other = hostOwner.get(host);
      if (other !== undefined && other !== card.provider) problems.push(`host ${host} is declared by cards of two providers (${other} and ${card.provider})`);
      hostOwner.set(host, card.provider);
    }
  }
  if (problems.length) throw new CatalogError(`${origin}: ${problems.join('; ')}`);
  return { cards, byName };
}

/** Reads and validates a catalog file (`--prices` / `FLEET_PRICES`). */
export function loadCatalogFile(path: string): Catalog {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CatalogError(`${path}: ${(err as Error).message}`);
  }
  return buildCatalog(json, path);
}

/** The catalog shipped with perpass (pricing/prices.json). */
export function loadDefaultCatalog(): Catalog {
  // fileURLToPath, not URL.pathname: the latter keeps %20 and breaks on paths with spaces.
  return loadCatalogFile(fileURLToPath(new URL('./prices.json', import.meta.url)));
}
