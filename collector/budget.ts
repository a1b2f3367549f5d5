/**
 * The in-flight budget: bytes of request bodies (after decompression) the
 * collector holds at once, from the first byte read until the bus has
 * acknowledged them. A request that would push the total past the budget is
 * refused (429 + Retry-After) instead of letting memory grow with the number
 * of clients; the decoded objects cost a small multiple of these bytes.
 */

/** Thrown by Reservation.grow when the budget has no room; the server answers 429. */
export class BudgetExhaustedError extends Error {
  override name = 'BudgetExhaustedError';
}

export class InflightBudget {
  readonly maxBytes: number;
  private heldBytes = 0;
  private openRequests = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  get requests(): number {
    return this.openRequests;
  }

  /** Starts accounting for one request; release() the reservation when the request is answered. */
  open(): Reservation {
    this.openRequests += 1;
    let held = 0;
    let released = false;
    return {
      grow: (total: number) => {
        if (released || total <= held) return;
        if (this.heldBytes + (total - held) > this.maxBytes) {
          throw new BudgetExhaustedError(
            `collector busy: ${this.heldBytes} of ${this.maxBytes} in-flight bytes in use, this request needs ${total}`,
          );
        }
        this.heldBytes += total - held;
        held = total;
      },
      release: () => {
        if (released) return;
        released = true;
        this.heldBytes -= held;
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
