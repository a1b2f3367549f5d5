/**
 * A child `fleet start` for tests that drive real third-party agents (Python
 * OpenLLMetry / OpenInference, the Vercel AI SDK) at it, and the queries
 * those tests check the stored result with.
 */
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import type { Usage } from './fake-openai.ts';
import { startFleet, type Child } from './processes.ts';

/** The usage the fake OpenAI-compatible server reports per model in the agent tests. */
export const CANNED_USAGE: Readonly<Record<string, Usage>> = {
  'kimi-k2.6': { prompt: 1000, cached: 200, completion: 300, reasoning: 100 },
  'deepseek-v4-flash': { prompt: 2000, cached: 1500, completion: 500, reasoning: 0 },
  'gpt-5.4': { prompt: 100, cached: 0, completion: 10, reasoning: 0 },
  'kimi-k2.7-preview': { prompt: 4000, cached: 0, completion: 1000, reasoning: 0 },
};

export function cannedUsage(model: string): Usage {
  const u = CANNED_USAGE[model];
  if (!u) throw new Error(`no canned usage for ${model}`);
  return u;
}

/*
 * Their cost by hand, with the shipped cards in force now (USD per million tokens):
 *   kimi-k2.6 (moonshot: in 0.95, cache read 0.16, out 4; reasoning billed as output):
 *     800 × 0.95 + 200 × 0.16 + (200 + 100) × 4 = 1992 µ$        → 0.001992
 *   deepseek-v4-flash (deepseek: in 0.28, cache read 0.0028, out 1.1):
 *     500 × 0.28 + 1500 × 0.0028 + 500 × 1.1 = 694.2 µ$            → 0.0006942
 * Spec A of the agent tests: two attempts (fail, pass) of one kimi-k2.6 and
 * one deepseek call each: 2 × (0.001992 + 0.0006942) = 0.0053724 for one pass.
 */
export const BY_HAND = { kimi: '0.001992', deepseek: '0.0006942', specA: '0.0053724' } as const;

export interface RunningFleet {
  child: Child;
  otlp: string;
  query: string;
  client: ClickHouseClient;
  rows<T>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
  /** Waits until `sql` (a single `n` count) reaches `n`. */
  waitForCount(sql: string, n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startAgentFleet(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningFleet> {
  const child = startFleet(['start', '--collector-port', '0', '--query-port', '0', ...args], env);
  const m = await child.waitFor(/OTLP\/HTTP (http:\/\/\S+?)\/v1\/traces · query (http:\/\/[\d.]+:\d+)/, 120_000);
  const client = createClient({ url: m[2]!, clickhouse_settings: { output_format_json_quote_decimals: 1, output_format_json_quote_64bit_integers: 0 } });
  const rows = async <T>(sql: string, params?: Record<string, unknown>) =>
    (await client.query({ query: sql, format: 'JSONEachRow', ...(params && { query_params: params }) })).json<T>();
  return {
    child,
    otlp: m[1]!,
    query: m[2]!,
    client,
    rows,
    async waitForCount(sql, n, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let seen = -1;
      while (Date.now() < deadline) {
        [{ n: seen = -1 } = { n: -1 }] = await rows<{ n: number }>(sql);
        if (Number(seen) >= n) return;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`${sql}: ${seen} after ${timeoutMs} ms, waiting for ${n}; fleet start output tail:\n${child.output().slice(-3000)}`);
    },
    async stop() {
      await client.close();
      await child.kill();
    },
  };
}
