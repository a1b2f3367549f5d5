/**
 * Which provider a call is priced under. Instrumentations of the `openai`
 * SDK say `openai` whoever served the request (DeepSeek, Moonshot, xAI,
 * OpenRouter, vLLM … reached through `base_url`), so the provider comes
 * from, in order:
 *
 *   1. `fleet.provider` on the call span: the agent says who bills it;
 *   2. the server the request went to (`server.address`, `url.full`, the
 *      instrumentations' base-URL attributes), through the hosts a catalog
 *      card declares and then API_HOSTS below;
 *   3. the instrumentation's provider name;
 *   4. inferred: when that name is only the SDK's (`openai`, host unknown)
 *      and the model has cards of exactly one other provider, that provider
 *      — recorded as `inferred`, visible in `llm_calls.provider_source`.
 *
 * A known host is never re-attributed: an Azure-hosted `gpt-5.4` stays
 * `azure.ai.openai` and unpriced unless a card answers for Azure.
 */
import type { Catalog, PriceCard } from './catalog.ts';

/** How the provider of a call was found. */
export const PROVIDER_SOURCES = ['fleet.provider', 'host', 'instrumentation', 'inferred'] as const;
export type ProviderSource = (typeof PROVIDER_SOURCES)[number];

/** What a call span says about who served it. */
export interface ProviderEvidence {
  /** `fleet.provider`, normalised; '' when absent. */
  explicit: string;
  /** Host the request went to (`host` or `host:port`), lowercase; '' when unknown. */
  serverAddress: string;
  /** The instrumentation's provider (normalised `gen_ai.provider.name` / `gen_ai.system` / …); '' when none. */
  instrumented: string;
}

/**
 * Known API hosts → `gen_ai.provider.name`. A leading `*.` matches any
 * subdomain. Extend it per deployment with a card's `hosts` (self-hosted
 * vLLM, gateways); add public endpoints here.
 */
export const API_HOSTS: Readonly<Record<string, string>> = {
  'api.openai.com': 'openai',
  '*.openai.azure.com': 'azure.ai.openai',
  '*.cognitiveservices.azure.com': 'azure.ai.openai',
  '*.services.ai.azure.com': 'azure.ai.inference',
  '*.models.ai.azure.com': 'azure.ai.inference',
  'models.inference.ai.azure.com': 'azure.ai.inference',
  'api.anthropic.com': 'anthropic',
  'api.deepseek.com': 'deepseek',
  'api.moonshot.ai': 'moonshot',
  'api.moonshot.cn': 'moonshot',
  'api.x.ai': 'x_ai',
  'openrouter.ai': 'openrouter',
  'api.together.xyz': 'together_ai',
  'api.together.ai': 'together_ai',
  'api.fireworks.ai': 'fireworks_ai',
  'api.groq.com': 'groq',
  'api.mistral.ai': 'mistral_ai',
  'api.perplexity.ai': 'perplexity',
  'api.cohere.com': 'cohere',
  'api.cohere.ai': 'cohere',
  'generativelanguage.googleapis.com': 'gcp.gemini',
  'aiplatform.googleapis.com': 'gcp.vertex_ai',
  '*-aiplatform.googleapis.com': 'gcp.vertex_ai',
  'api.cerebras.ai': 'cerebras',
  'api.deepinfra.com': 'deepinfra',
};

/** Provider names that are only an SDK's, not evidence of who served the call. */
const SDK_ONLY_PROVIDERS = new Set(['openai']);

/**
 * Remembers the answers of a pure function of a string: an agent fleet talks
 * to a handful of hosts, so per-call URL parsing and table scans are paid
 * once per host. Bounded: cleared when full.
 */
function memo<T>(fn: (key: string) => T, max = 4096): (key: string) => T {
  const seen = new Map<string, T>();
  return (key) => {
    if (seen.has(key)) return seen.get(key) as T;
    if (seen.size >= max) seen.clear();
    const value = fn(key);
    seen.set(key, value);
    return value;
  };
}

const parseHost = memo((v: string): string => {
  try {
    return new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(v) ? v : `http://${v}`).host.toLowerCase();
  } catch {
    return '';
  }
});

/** `host[:port]` of a URL or bare host attribute value, lowercase; '' when it is neither. */
export function hostOf(value: string | undefined): string {
  const v = (value ?? '').trim();
  return v === '' ? '' : parseHost(v);
}

const hostname = (address: string) => address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');

function matches(pattern: string, address: string): boolean {
  const name = hostname(address);
  if (pattern === address || pattern === name) return true;
  if (pattern.startsWith('*.')) return name.endsWith(pattern.slice(1));
  if (pattern.startsWith('*-')) return name.endsWith(pattern.slice(1));
  return false;
}

const knownHost = memo((address: string): string | undefined => {
  for (const [pattern, provider] of Object.entries(API_HOSTS)) if (matches(pattern, address)) return provider;
  return undefined;
});

/** Per catalog, the provider of each host seen (the cards' declared hosts are scanned once per host). */
const byCatalog = new WeakMap<Catalog, (address: string) => string | undefined>();

/** The provider of a host: a card that declares it first, then API_HOSTS; undefined when unknown. */
export function providerOfHost(catalog: Catalog | undefined, address: string): string | undefined {
  if (address === '') return undefined;
  if (!catalog) return knownHost(address);
  let lookup = byCatalog.get(catalog);
  if (!lookup) {
    lookup = memo((a: string) => catalog.cards.find((card) => card.hosts.some((p) => matches(p, a)))?.provider ?? knownHost(a));
    byCatalog.set(catalog, lookup);
  }
  return lookup(address);
}

/** Steps 1–3: the provider the span's evidence names, and where from. */
export function resolveProvider(catalog: Catalog | undefined, e: ProviderEvidence): { provider: string; source: ProviderSource } {
  if (e.explicit !== '') return { provider: e.explicit, source: 'fleet.provider' };
  const byHost = providerOfHost(catalog, e.serverAddress);
  if (byHost !== undefined) return { provider: byHost, source: 'host' };
  return { provider: e.instrumented, source: 'instrumentation' };
}

/**
 * Step 4: the one other provider whose cards answer to `model` when the
 * call names only its SDK; undefined when there is none or several.
 */
export function inferredProvider(catalog: Catalog, resolved: { provider: string; source: ProviderSource }, model: string): string | undefined {
  if (resolved.source !== 'instrumentation' || !SDK_ONLY_PROVIDERS.has(resolved.provider)) return undefined;
  const cards: PriceCard[] = catalog.byName.get(model) ?? [];
  const providers = new Set(cards.map((c) => c.provider));
  if (providers.size !== 1) return undefined;
  const [only] = providers;
  return only === resolved.provider ? undefined : only;
}
