/**
 * The in-flight budget: bytes of request bodies (after decompression) the
 * collector holds at once, from the first byte read until the bus has
 * acknowledged them. It counts the bytes actually received, never a
 * declared Content-Length (a client announcing 64 MiB and trickling one
 * byte holds one byte), and it is divided three ways: in total, per tenant
 * and per connection, so a few slow or huge requests, one tenant or one
 * multiplexed connection (HTTP/2, gRPC) cannot take all of it. A request
 * that would push any of them past its limit is refused (429 + Retry-After)
 * instead of letting memory grow with the number of clients; the decoded
 * objects cost a small multiple of these bytes.
 *
 * Transport-independent: the OTLP/HTTP receiver and any other receiver
 * (gRPC) open a reservation per request and grow it as bytes arrive.
 */

/** Thrown by Reservation.grow when a limit has no room; the receiver answers 429 (gRPC: RESOURCE_EXHAUSTED). */
export class BudgetExhaustedError extends Error {
  override name = 'BudgetExhaustedError';
  /** Which limit was hit. */
  readonly scope: 'total' | 'tenant' | 'connection';
  constructor(scope: 'total' | 'tenant' | 'connection', message: string) {
    super(message);
    this.scope = scope;
  }
}

export interface BudgetLimits {
  /** All requests together. */
  totalBytes: number;
  /** All requests of one tenant (with auth on; without, requests have no tenant and only the other limits apply). */
  tenantBytes: number;
  /** All requests of one connection. */
  connectionBytes: number;
}

/** Whose bytes a request holds. `connection` is any object identifying it (a socket, an HTTP/2 session). */
export interface BudgetOwner {
  tenant?: string | undefined;
  connection?: object | undefined;
}

export class InflightBudget {
  readonly limits: BudgetLimits;
  /** Kept for the metric and for callers that only know the total. */
  readonly maxBytes: number;
  private heldBytes = 0;
  private openRequests = 0;
  private readonly byTenant = new Map<string, number>();
  private readonly byConnection = new WeakMap<object, number>();

  constructor(limits: BudgetLimits | number) {
    this.limits = typeof limits === 'number' ? { totalBytes: limits, tenantBytes: limits, connectionBytes: limits } : limits;
    this.maxBytes = this.limits.totalBytes;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  get requests(): number {
    return this.openRequests;
  }

  /** Bytes held now by requests of `tenant`. */
  tenantBytes(tenant: string): number {
    return this.byTenant.get(tenant) ?? 0;
  }

  /** Starts accounting for one request; release() the reservation when the request is answered. */
  open(owner: BudgetOwner = {}): Reservation {
    this.openRequests += 1;
    const { tenant, connection } = owner;
    let held = 0;
    let released = false;
    const move = (delta: number) => {
      this.heldBytes += delta;
      if (tenant !== undefined) {
        const t = (this.byTenant.get(tenant) ?? 0) + delta;
        if (t === 0) this.byTenant.delete(tenant);
        else this.byTenant.set(tenant, t);
      }
      if (connection) this.byConnection.set(connection, (this.byConnection.get(connection) ?? 0) + delta);
    };
    return {
      grow: (total: number) => {
        if (released || total <= held) return;
        const more = total - held;
        const { totalBytes, tenantBytes, connectionBytes } = this.limits;
        if (this.heldBytes + more > totalBytes) {
          throw new BudgetExhaustedError('total', `collector busy: ${this.heldBytes} of ${totalBytes} in-flight bytes in use, this request needs ${total}`);
        }
        if (tenant !== undefined && this.tenantBytes(tenant) + more > tenantBytes) {
          throw new BudgetExhaustedError(
            'tenant',
            `tenant ${tenant} busy: its requests hold ${this.tenantBytes(tenant)} of its ${tenantBytes} in-flight bytes, this request needs ${total}`,
          );
        }
        const onConnection = connection ? (this.byConnection.get(connection) ?? 0) : 0;
        if (connection && onConnection + more > connectionBytes) {
          throw new BudgetExhaustedError('connection', `connection busy: its requests hold ${onConnection} of its ${connectionBytes} in-flight bytes, this request needs ${total}`);
        }
        move(more);
        held = total;
      },
      release: () => {
        if (released) return;
        released = true;
        move(-held);
        this.openRequests -= 1;
      },
    };
  }
}

export interface Reservation {
  /** Raises this request's share to `total` bytes; throws BudgetExhaustedError when that does not fit. */
  grow(total: number): void;
  release(): void;
}
