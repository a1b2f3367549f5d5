/**
 * The collector's limits that do not depend on the transport, so the
 * OTLP/HTTP receiver and a gRPC one apply the same: the connection cap,
 * the per-tenant shares of the queue, the memory guard, the span cap, and
 * the memory budget every bound of a process is derived from.
 */
import os from 'node:os';
import type { BusMessage } from '../bus/types.ts';
import { BudgetExhaustedError } from './budget.ts';

const MiB = 1024 * 1024;

/** A request that can never be accepted as sent (too many spans, more bytes than a share can ever hold): 413, not retryable. */
export class RequestTooLargeError extends Error {
  override name = 'RequestTooLargeError';
}

/** The process is near its memory budget: 503 + Retry-After (gRPC: UNAVAILABLE), before any of the body is read. */
export class MemoryPressureError extends Error {
  override name = 'MemoryPressureError';
}

// ---------------------------------------------------------------- memory budget

/**
 * The process's real memory limit: its cgroup's (`process.constrainedMemory()`,
 * e.g. a container's `--memory`) when one is set below the machine's memory,
 * else the machine's total memory.
 */
export function memoryLimitBytes(): number {
  const total = os.totalmem();
  const constrained = process.constrainedMemory();
  return constrained > 0 && constrained < total ? constrained : total;
}

/** The default memory budget (the RSS the process must stay under): half the real limit, leaving the rest to the OS and page cache. */
export const defaultMemoryBudget = (limit = memoryLimitBytes()): number => Math.floor(limit / 2);

/** How one process's memory budget is divided (bytes). */
export interface MemoryPlan {
  /** The RSS the process stays under. */
  budgetBytes: number;
  /** Request bodies being received and processed (InflightBudget total). */
  inflightBytes: number;
  /** Messages published and not yet committed by the consumers (in-process queue). */
  queueBytes: number;
  /** Spans the consumers buffer until their attempt is decided (assembler limits). */
  consumerBytes: number;
  /** RSS above which receivers refuse new requests (503), before the budget is reached. */
  refuseAboveBytes: number;
}

/**
 * The budget's shares. Counted bytes are wire bytes plus a per-item
 * overhead, and decoded objects cost a multiple of them (a request's frames
 * and messages, a buffered span's record), so each share is an eighth of
 * the budget; the rest is the runtime, chDB and that multiple. Receivers
 * refuse new requests once RSS passes 85 % of the budget, so the shares'
 * backpressure and this guard act before the budget is reached.
 */
export function planMemory(budgetBytes: number, maxBodyBytes: number): MemoryPlan {
  const eighth = Math.floor(budgetBytes / 8);
  return {
    budgetBytes,
    inflightBytes: Math.max(maxBodyBytes, Math.min(256 * MiB, eighth)),
    queueBytes: Math.max(MiB, Math.min(256 * MiB, eighth)),
    consumerBytes: Math.max(4 * MiB, Math.min(256 * MiB, eighth)),
    refuseAboveBytes: Math.floor(budgetBytes * 0.85),
  };
}

/**
 * Refuses new requests while the process's RSS is above a threshold. RSS is
 * sampled on a timer (reading it costs a syscall), which is frequent enough:
 * a request admitted between samples is bounded by the in-flight budget.
 */
export class MemoryGuard {
  private rss = 0;
  private readonly timer: NodeJS.Timeout;
  readonly refuseAboveBytes: number;

  constructor(refuseAboveBytes: number, intervalMs = 200, sample: () => number = () => process.memoryUsage.rss()) {
    this.refuseAboveBytes = refuseAboveBytes;
    this.rss = sample();
    this.timer = setInterval(() => (this.rss = sample()), intervalMs);
    this.timer.unref();
  }

  /** Throws MemoryPressureError while RSS is above the threshold. */
  check(): void {
    if (this.rss > this.refuseAboveBytes) {
      throw new MemoryPressureError(`collector near its memory budget: RSS ${this.rss} bytes is above ${this.refuseAboveBytes} bytes; retry shortly`);
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

// ---------------------------------------------------------------- queue shares

/** Header the collector puts on the messages of an authenticated tenant, so the queue's bytes can be counted per tenant. */
export const TENANT_HEADER = 'fleet.tenant';

/**
 * Each tenant's share of the queue (with auth on): the bytes of its
 * messages published and not yet committed. A tenant past its share gets
 * 429 while the others keep getting 200, and since the queue is first in,
 * first out, no tenant has more than its share queued ahead of another's
 * spans — that bounds how stale a flood can make the others' results.
 * The queue tells it what enters and leaves through `meter`.
 */
export class QueueShares {
  readonly shareBytes: number;
  private readonly byTenant = new Map<string, number>();
  private readonly weigh: (message: BusMessage) => number;

  /**
   * `tenants`: how many tenants share the queue (the distinct tenants of the
   * auth tokens); `weigh`: the bytes a message holds in the queue, as the
   * queue counts them for its meter (default: its value).
   */
  constructor(queueBytes: number, tenants: number, weigh: (message: BusMessage) => number = (m) => m.value.byteLength) {
    this.shareBytes = Math.floor(queueBytes / Math.max(1, tenants));
    this.weigh = weigh;
  }

  /** The queue's hook: `bytes` > 0 when a message enters, < 0 when it leaves. */
  readonly meter = (message: BusMessage, bytes: number): void => {
    const tenant = message.headers?.[TENANT_HEADER];
    if (tenant === undefined) return;
    const held = (this.byTenant.get(tenant) ?? 0) + bytes;
    if (held <= 0) this.byTenant.delete(tenant);
    else this.byTenant.set(tenant, held);
  };

  queuedBytes(tenant: string): number {
    return this.byTenant.get(tenant) ?? 0;
  }

  /**
   * Before reading a body of `expectedBytes` (its declared length; its
   * messages take about as much): refuses a tenant whose share cannot take
   * it now, so a flood is turned away before any decoding work.
   */
  admit(tenant: string, expectedBytes = 0): void {
    const held = this.queuedBytes(tenant);
    if (held > 0 && held + Math.min(expectedBytes, this.shareBytes) > this.shareBytes) {
      throw new BudgetExhaustedError('tenant', `tenant ${tenant} has ${held} of its ${this.shareBytes} queue bytes awaiting the consumers, this request needs about ${expectedBytes} more; retry later`);
    }
  }

  /** Before publishing `messages` of `tenant`. */
  admitPublish(tenant: string, messages: BusMessage[]): void {
    const bytes = messages.reduce((n, m) => n + this.weigh(m), 0);
    if (bytes > this.shareBytes) {
      throw new RequestTooLargeError(`the request's spans take ${bytes} bytes in the queue, more than tenant ${tenant}'s whole share of ${this.shareBytes} bytes: send them in smaller requests`);
    }
    const held = this.queuedBytes(tenant);
    if (held + bytes > this.shareBytes) {
      throw new BudgetExhaustedError('tenant', `tenant ${tenant} has ${held} of its ${this.shareBytes} queue bytes awaiting the consumers, this request needs ${bytes} more; retry later`);
    }
  }
}

// ---------------------------------------------------------------- connection cap

export interface CappedConnection {
  /** When it became idle (no request in progress), or undefined while a request is in progress. */
  idleSince(): number | undefined;
  /** Whether it ever carried a request. */
  served(): boolean;
  close(): void;
}

/**
 * At most `max` connections. A new connection past the cap closes the one
 * idle longest, preferring connections that never sent a request (what a
 * connection flood holds), and is itself closed only when every connection
 * has a request in progress. Decided on accept, before any byte is parsed
 * or any token checked.
 */
export class ConnectionCap {
  readonly max: number;
  private readonly open = new Set<CappedConnection>();

  constructor(max: number) {
    this.max = max;
  }

  get size(): number {
    return this.open.size;
  }

  /** False: refused (the caller closes it). */
  admit(conn: CappedConnection): boolean {
    if (this.open.size >= this.max) {
      const victim = this.idlest();
      if (!victim) return false;
      this.open.delete(victim);
      victim.close();
    }
    this.open.add(conn);
    return true;
  }

  remove(conn: CappedConnection): void {
    this.open.delete(conn);
  }

  private idlest(): CappedConnection | undefined {
    let best: CappedConnection | undefined;
    let bestKey: [number, number] = [2, Infinity];
    for (const c of this.open) {
      const since = c.idleSince();
      if (since === undefined) continue;
      const key: [number, number] = [c.served() ? 1 : 0, since];
      if (key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])) {
        best = c;
        bestKey = key;
      }
    }
    return best;
  }
}
