/** The bound on concurrent queries of the embedded query endpoint (query/endpoint.ts). */
import { ClickHouseHttpError } from './errors.ts';

/** Bounds concurrent queries: chDB runs each on a libuv worker the rest of the process needs too. */
export class Gate {
  #active = 0;
  readonly #waiting: Array<{ grant: () => void; timer: NodeJS.Timeout | undefined }> = [];
  readonly #max: number;
  readonly #maxQueued: number;
  readonly #timeoutMs: number;

  constructor(max: number, maxQueued: number, timeoutMs: number) {
    this.#max = max;
    this.#maxQueued = maxQueued;
    this.#timeoutMs = timeoutMs;
  }

  get active(): number {
    return this.#active;
  }

  acquire(): Promise<() => void> {
    const release = () => {
      const next = this.#waiting.shift();
      if (next) {
        clearTimeout(next.timer);
        next.grant();
      } else this.#active--;
    };
    if (this.#active < this.#max) {
      this.#active++;
      return Promise.resolve(once(release));
    }
    const busy = () =>
      ClickHouseHttpError.of('TOO_MANY_SIMULTANEOUS_QUERIES', `Too many simultaneous queries: ${this.#max} running, ${this.#waiting.length} waiting`, {
        status: 503,
        headers: { 'Retry-After': '1' },
      });
    if (this.#waiting.length >= this.#maxQueued) return Promise.reject(busy());
    return new Promise((resolve, reject) => {
      const entry: { grant: () => void; timer: NodeJS.Timeout | undefined } = { grant: () => resolve(once(release)), timer: undefined };
      entry.timer = setTimeout(() => {
        const i = this.#waiting.indexOf(entry);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(busy());
      }, this.#timeoutMs);
      this.#waiting.push(entry);
    });
  }
}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      f();
    }
  };
}
