/**
 * A child `fleet start` for tests that drive real third-party agents (Python
 * OpenLLMetry / OpenInference, the Vercel AI SDK) at it, and the queries
 * those tests check the stored result with.
 */
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { startFleet, type Child } from './processes.ts';

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
  const client = createClient({ url: m[2]!, clickhouse_settings: { output_format_json_quote_decimals: 1 } });
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
