/**
 * Turns of the event loop for long pieces of consumer work (a batch being
 * decoded and assembled, the due decisions), taken in slices of about
 * SLICE_MS. Yielding with setImmediate alone is not enough: every
 * immediate queued in one iteration of the loop runs in that iteration's
 * check phase, so N loops yielding at once ran N slices back to back, and
 * with a partition's batches, the decisions and the writer all busy a turn
 * grew to hundreds of milliseconds. Here waiters are let through one per
 * iteration, in the order they asked, so between any two slices the loop
 * runs its timers and I/O: OTLP requests, /healthz, /metrics, queries.
 */

/** Work done before yielding, ms: long enough that yielding costs nothing measurable, short against a 50 ms p99 target. */
export const SLICE_MS = 5;

export class Turns {
  private readonly waiting: (() => void)[] = [];
  private scheduled = false;
  private sliceStart = performance.now();

  /** True once the current slice has run SLICE_MS: time to `next()`. */
  get due(): boolean {
    return performance.now() - this.sliceStart >= SLICE_MS;
  }

  /** Resolves on a later iteration of the event loop, after the waiters before it, each on its own. */
  next(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(() => {
        this.sliceStart = performance.now();
        resolve();
      });
      if (!this.scheduled) this.schedule();
    });
  }

  private schedule(): void {
    this.scheduled = true;
    // queued while the check phase runs, so it fires on the next iteration
    setImmediate(() => {
      this.scheduled = false;
      this.waiting.shift()?.();
      if (this.waiting.length > 0) this.schedule();
    });
  }
}
