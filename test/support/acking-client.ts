/**
 * A client that keeps the OTLP exporter's promise: every request is re-sent
 * until it is answered 200 — through connection errors, 503s and restarts,
 * wherever `url` points now — so a test knows exactly what was acknowledged.
 */
import type { PlannedAttempt } from '../../demo/plan.ts';
import { encodeTraceRequest } from '../../otlp/codec.ts';
import { attemptSpans, traceRequest } from './otlp-fleet.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Requests of five attempts each (all spans of an attempt in one request), OTLP protobuf. */
export function requestsOf(plan: PlannedAttempt[], tenant: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < plan.length; i += 5) out.push(encodeTraceRequest(traceRequest(plan.slice(i, i + 5).flatMap(attemptSpans), tenant)));
  return out;
}

/**
 * The client: `concurrency` senders take the requests in order, one every
 * `paceMs` each, and re-send a request until it is answered 200 — through
 * connection errors, 503s and restarts, wherever `url` points now.
 */
export class AckingClient {
  url: string | undefined;
  readonly acked = new Set<number>();
  readonly statuses = new Map<string, number>();
  retryAfter = 0;
  private next = 0;
  private readonly requests: Uint8Array[];
  private readonly paceMs: number;
  readonly done: Promise<void>;
  constructor(requests: Uint8Array[], concurrency: number, paceMs: number) {
    this.requests = requests;
    this.paceMs = paceMs;
    this.done = Promise.all(Array.from({ length: concurrency }, () => this.worker())).then(() => {});
  }
  private count(what: string) {
    this.statuses.set(what, (this.statuses.get(what) ?? 0) + 1);
  }
  private async worker(): Promise<void> {
    while (this.next < this.requests.length) {
      const i = this.next++;
      for (;;) {
        const url = this.url;
        if (!url) {
          await sleep(20);
          continue;
        }
        try {
          const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: this.requests[i]!, signal: AbortSignal.timeout(15_000) });
          await res.arrayBuffer();
          this.count(String(res.status));
          if (res.status === 200) {
            this.acked.add(i);
            break;
          }
          if (res.headers.get('retry-after')) this.retryAfter++;
        } catch {
          this.count('connection error');
        }
        await sleep(50);
      }
      await sleep(this.paceMs);
    }
  }
}

