/**
 * Delivery: one bounded queue and one worker per sink, so a slow or failing
 * sink never holds up evaluation or the other sinks. A notification is
 * retried with exponential backoff (equal jitter, Retry-After honoured) up to
 * maxAttempts, then reported failed; a full queue drops its oldest entry
 * (reported). Order is kept per sink (a resolution never overtakes its
 * firing). For a stateful sink (Alertmanager) only the newest state of an
 * alert waits in the queue: a keep-alive is dropped when a newer post of the
 * same alert is queued, and a queued resolution when the alert fires again,
 * so a recovered receiver never gets a stale state. stop() abandons what is still queued without reporting it, so
 * the next start can send it (the alerts table is the outbox).
 */
import { DeliveryError, type Notification, type Sink } from './sinks.ts';

export interface DeliveryOptions {
  queueSize: number;
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  timeoutMs: number;
}

export interface DeliveryOutcome {
  sink: string;
  notification: Notification;
  status: 'delivered' | 'failed' | 'dropped';
  attempts: number;
  error?: string;
}

export interface DeliveryHooks {
  onOutcome(outcome: DeliveryOutcome): void;
  onRetry(sink: string, notification: Notification, attempt: number, error: string, delayMs: number): void;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export function backoffMs(attempt: number, options: Pick<DeliveryOptions, 'initialBackoffMs' | 'maxBackoffMs'>, random = Math.random): number {
  const base = Math.min(options.maxBackoffMs, options.initialBackoffMs * 2 ** (attempt - 1));
  return Math.round(base / 2 + (random() * base) / 2);
}

export class SinkQueue {
  readonly sink: Sink;
  private readonly options: DeliveryOptions;
  private readonly hooks: DeliveryHooks;
  private readonly queue: Notification[] = [];
  private worker: Promise<void> | undefined;
  private stopping = false;
  private readonly abort = new AbortController();
  private idleWaiters: (() => void)[] = [];

  constructor(sink: Sink, options: DeliveryOptions, hooks: DeliveryHooks) {
    this.sink = sink;
    this.options = options;
    this.hooks = hooks;
  }

  get length(): number {
    return this.queue.length;
  }

  /** Queues a notification (never blocks); false once stopped. */
  enqueue(n: Notification): boolean {
    if (this.stopping) return false;
    if (this.sink.stateful && !this.supersede(n)) return true;
    if (this.queue.length >= this.options.queueSize) {
      // the head is in flight while the worker runs: drop the oldest one waiting behind it
      const i = this.worker ? 1 : 0;
      if (this.queue.length > i) {
        const [dropped] = this.queue.splice(i, 1);
        this.hooks.onOutcome({ sink: this.sink.name, notification: dropped!, status: 'dropped', attempts: 0, error: `queue full (${this.options.queueSize})` });
      }
    }
    this.queue.push(n);
    this.kick();
    return true;
  }

  /**
   * Drops the waiting (not in-flight) posts of `n`'s alert that `n` makes
   * stale; false when `n` itself is redundant (a keep-alive behind a queued
   * firing post, which is sent with a fresh endsAt anyway).
   */
  private supersede(n: Notification): boolean {
    const first = this.worker ? 1 : 0;
    const waiting = (i: number) => i >= first && this.queue[i]!.fingerprint === n.fingerprint;
    if (n.event === 'resend' && this.queue.some((q, i) => waiting(i) && q.status === 'firing')) return false;
    for (let i = this.queue.length - 1; i >= first; i--) {
      const q = this.queue[i]!;
      if (!waiting(i)) continue;
      if (q.event === 'resend') this.queue.splice(i, 1); // keep-alives are not notifications: nothing to report
      else if (q.status === 'resolved' && n.status === 'firing') {
        this.queue.splice(i, 1);
        this.hooks.onOutcome({ sink: this.sink.name, notification: q, status: 'dropped', attempts: 0, error: 'superseded: the alert fired again before its resolution was sent' });
      }
    }
    return true;
  }

  private kick(): void {
    if (this.worker || this.stopping) return;
    this.worker = (async () => {
      while (this.queue.length && !this.stopping) await this.deliverHead();
    })().finally(() => {
      this.worker = undefined;
      // something queued between the loop's last check and now
      if (this.queue.length && !this.stopping) this.kick();
      else this.notifyIdle();
    });
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once nothing is queued or in flight (or the queue stopped). */
  idle(): Promise<void> {
    if (!this.worker) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async deliverHead(): Promise<void> {
    const n = this.queue[0]!;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.sink.send(n, AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.timeoutMs)]));
        this.queue.shift();
        this.hooks.onOutcome({ sink: this.sink.name, notification: n, status: 'delivered', attempts: attempt });
        return;
      } catch (err) {
        if (this.stopping) return; // abandoned: stays queued, handed back by stop()
        const message = err instanceof Error ? err.message : String(err);
        const retryable = !(err instanceof DeliveryError) || err.retryable;
        if (!retryable || attempt >= this.options.maxAttempts) {
          this.queue.shift();
          this.hooks.onOutcome({ sink: this.sink.name, notification: n, status: 'failed', attempts: attempt, error: message });
          return;
        }
        const hinted = err instanceof DeliveryError ? err.retryAfterMs : undefined;
        const delay = hinted !== undefined ? Math.min(hinted, this.options.maxBackoffMs) : backoffMs(attempt, this.options);
        this.hooks.onRetry(this.sink.name, n, attempt, message, delay);
        await sleep(delay, this.abort.signal);
        if (this.stopping) return;
      }
    }
  }

  /**
   * Waits up to `drainMs` for the queue to empty, then stops: the request in
   * flight is aborted and what is left is returned, unreported.
   */
  async stop(drainMs: number): Promise<Notification[]> {
    if (drainMs > 0 && (this.queue.length || this.worker)) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)))]);
      clearTimeout(timer);
    }
    this.stopping = true;
    this.abort.abort();
    await this.worker;
    this.notifyIdle();
    return this.queue.splice(0);
  }
}
