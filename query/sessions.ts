/**
 * chDB sessions kept open between requests: opening one costs tens of
 * milliseconds, more than most queries. A session is keyed by its
 * connection arguments (its settings) and handed to one request at a time;
 * it goes back only when nothing of that request can outlive it — the
 * caller says so (no query parameters, temporary tables, SET or USE of its
 * own) and its last query ended in the engine, not in a timeout that left
 * it running.
 *
 *     const rows = await pool.use(args, (s) => s.queryAsync(sql), { reuse: !hasParams });
 */
import { Session } from 'chdb';

export class SessionPool {
  readonly #dataDir: string;
  readonly #maxIdle: number;
  /** Idle sessions by their connection arguments, oldest first within each. */
  readonly #idle = new Map<string, Session[]>();
  #idleCount = 0;

  constructor(dataDir: string, maxIdle: number) {
    this.#dataDir = dataDir;
    this.#maxIdle = maxIdle;
  }

  /** Runs `f` on a session with `args`; throws what opening the session throws (chDB's "Failed to create connection" for a bad argument). */
  async use<T>(args: readonly string[], f: (s: Session) => Promise<T>, o: { reuse: boolean }): Promise<T> {
    const key = args.join('\0');
    const session = (o.reuse && this.#take(key)) || new Session(this.#dataDir, { connectionArgs: [...args] });
    let finished = false;
    try {
      const out = await f(session);
      finished = true;
      return out;
    } catch (err) {
      // An error of the engine ends its query; chDB's own early timeout does not.
      finished = typeof (err as { clickhouseCode?: unknown } | null)?.clickhouseCode === 'number' || /Code: \d+\. /.test((err as Error)?.message ?? '');
      throw err;
    } finally {
      if (o.reuse && finished) this.#give(key, session);
      else session.close();
    }
  }

  #take(key: string): Session | undefined {
    const s = this.#idle.get(key)?.pop();
    if (s) this.#idleCount--;
    return s;
  }

  #give(key: string, s: Session): void {
    const list = this.#idle.get(key) ?? [];
    this.#idle.set(key, list);
    list.push(s);
    this.#idleCount++;
    while (this.#idleCount > this.#maxIdle) {
      // The key used least recently (Map order: insertion; re-inserted on use below) gives up its oldest.
      const [oldestKey, oldest] = this.#idle.entries().next().value as [string, Session[]];
      oldest.shift()?.close();
      this.#idleCount--;
      if (oldest.length === 0) this.#idle.delete(oldestKey);
    }
    // Most recently used last.
    this.#idle.delete(key);
    if (list.length) this.#idle.set(key, list);
  }

  close(): void {
    for (const list of this.#idle.values()) for (const s of list.splice(0)) s.close();
    this.#idle.clear();
    this.#idleCount = 0;
  }
}
