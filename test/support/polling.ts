/**
 * Small waiting helpers for tests that drive real processes: a free local
 * port for a tool that must be told one, and polling until a probe holds.
 */
import { createServer, type AddressInfo } from 'node:net';

/** A TCP port free on 127.0.0.1 right now (for tools that cannot pick their own). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });

/**
 * Polls `probe` every `everyMs` until it returns something other than
 * undefined or false (a probe that throws counts as not yet), and returns it;
 * after `timeoutMs` throws naming `what`.
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
