/**
 * Trace assembly and the per-attempt decision (DESIGN.md "Tail-based
 * sampling"), without I/O: spans go in, rows come out together with the
 * Kafka message references they release once written.
 *
 * - An attempt owns every span below it (nearest attempt ancestor wins).
 * - It is decided once its span has ended plus `decisionWaitMs` for late
 *   children; an attempt span that never ends is decided when its trace has
 *   been idle for `traceTimeoutMs` (outcome `unknown`).
 * - Buffers are bounded (traces, spans, bytes): on overflow the oldest trace
 *   is decided early and its attempts marked `overflow`, never dropped.
 * - A bounded decision cache lets spans that arrive after their attempt was
 *   decided join it: the attempt row is rolled up again (a higher version)
 *   and the span follows the sampling decision already taken.
 * - A decided attempt holds its messages uncommitted until it has been quiet
 *   for `settleMs` (seconds, not the trace timeout: consumers/offsets.ts):
 *   a consumer that dies before then is replaced by one that re-reads the
 *   whole attempt, late spans included, so the row it writes is complete
 *   again (and wins by its version). Undecided spans hold their messages
 *   until they are decided, so no crash skips them.
 * - Spans under no attempt (a trace without one, or above its attempts) are
 *   kept in `spans` once the trace has been idle, so nothing vanishes unseen.
 *   They stay in the decision cache as orphans: an attempt span that arrives
 *   after its children were written this way (its trace evicted on overflow,
 *   or idle) still rolls them up, so its row and calls are complete.
 */
import { isAttemptSpan, parseAttemptAttributes, ContractError } from '../contract/attempt.ts';
import { ATTR } from '../contract/attributes.ts';
import type { AttemptRow, Decision, LlmCallRow } from '../contract/rows.ts';
import type { SpanRecord } from '../otlp/codec.ts';
import type { KeptSpan, SpanSource } from '../forward/types.ts';
import type { Catalog } from '../pricing/catalog.ts';
import type { MessageRef } from './offsets.ts';
import { describeMember, rollUp, tenantOf, type AttemptHeader, type Member } from './rollup.ts';
import { decideSampling, type SampleDecision, type SamplingPolicy } from './sampling.ts';
import { spanRow } from './span-row.ts';

export interface AssemblerLimits {
  /** Traces buffered at most (default 20,000). */
  maxTraces: number;
  /** Spans buffered at most (default 500,000). */
  maxSpans: number;
  /** Encoded span bytes buffered at most (default 256 MiB). */
  maxBytes: number;
  /** Spans remembered in the decision cache, decided attempts' and orphans' (default 1,000,000). */
  decisionCacheSpans: number;
}

export const DEFAULT_LIMITS: AssemblerLimits = { maxTraces: 20_000, maxSpans: 500_000, maxBytes: 256 * 1024 * 1024, decisionCacheSpans: 1_000_000 };

export interface AssemblerOptions {
  catalog: Catalog;
  sampling: SamplingPolicy;
  /** Wait after an attempt span ended for late children (default 500 ms). */
  decisionWaitMs: number;
  /** Idle time after which a trace's undecided spans are decided (default 60 s). */
  traceTimeoutMs: number;
  /** How long decided spans keep their messages uncommitted after their last touch (DEFAULT_SETTLE_MS). */
  settleMs: number;
  limits: AssemblerLimits;
  now?: () => number;
  observer?: AssemblerObserver;
}

/** What the pipeline counts (metrics, logs). */
export interface AssemblerObserver {
  decided?(decision: Decision, sampling: SampleDecision): void;
  lateSpan?(): void;
  duplicateSpan?(): void;
  outsideAttempt?(spans: number): void;
  /** A span that broke the attempt contract: kept outside any attempt. */
  invalidSpan?(message: string): void;
  /** A span that cannot be stored at all (no valid trace or span id). */
  droppedSpan?(message: string): void;
}

/** Rows to write, and the message references to release once they are written. */
export interface Output {
  attempts: AttemptRow[];
  llmCalls: LlmCallRow[];
  spans: object[];
  /** The kept spans as received, for the forwarder: only spans that came with their source (forwarding on). */
  forward: KeptSpan[];
  refs: MessageRef[];
}

export const emptyOutput = (): Output => ({ attempts: [], llmCalls: [], spans: [], forward: [], refs: [] });

interface Buffered {
  span: SpanRecord;
  ref: MessageRef;
  bytes: number;
  source?: SpanSource | undefined;
}

interface PendingAttempt {
  header: AttemptHeader;
}

interface TraceState {
  traceId: string;
  partition: number;
  spans: Map<string, Buffered>;
  children: Map<string, Set<string>>;
  attempts: Map<string, PendingAttempt>;
  /** Attempt-looking spans that broke the contract: kept, with the reason. */
  invalid: Set<string>;
  bytes: number;
  lastSeen: number;
}

interface DecidedAttempt {
  key: string;
  header: AttemptHeader;
  members: Map<string, Member>;
  sampling: SampleDecision;
  decision: Decision;
  partition: number;
  /** Messages held uncommitted until `settleAt`. */
  refs: MessageRef[];
  settleAt: number;
}

/** Spans of a trace written outside any attempt, remembered for an attempt span that may still come. */
interface Orphans {
  traceId: string;
  members: Map<string, Member>;
  /** Attempt-looking spans that broke the contract: no attempt adopts through them. */
  invalid: Set<string>;
  refs: MessageRef[];
  settleAt: number;
}

/** A kept span: its row for `spans`, and the span as received for the forwarder when it came with it. */
function keep(out: Output, b: Buffered, attemptId: string, sampling: { rate: number; reason: string }): void {
  out.spans.push(spanRow(b.span, { attemptId, rate: sampling.rate, reason: sampling.reason }));
  if (b.source) out.forward.push({ traceId: b.span.traceId, tenant: tenantOf(b.span), source: b.source, rate: sampling.rate, reason: sampling.reason });
}

const spanKey = (traceId: string, spanId: string) => `${traceId}/${spanId}`;
const hasEnded = (s: SpanRecord) => s.endTimeUnixNano > 0n && s.endTimeUnixNano >= s.startTimeUnixNano;

export class Assembler {
  private readonly traces = new Map<string, TraceState>();
  /** The same traces, least recently seen first (tick stops at the first one not idle). */
  private readonly idle = new Map<string, TraceState>();
  /** Ended attempt spans waiting for late children, in arrival order (tick stops at the first one not due). */
  private readonly ended = new Map<string, { trace: TraceState; spanId: string; arrival: number }>();
  /** Decided attempts, least recently touched first. */
  private readonly decided = new Map<string, DecidedAttempt>();
  /** Those still holding their messages, least recently touched first (so tick stops at the first unsettled). */
  private readonly unsettled = new Map<string, DecidedAttempt>();
  /** trace id → span id → the decided attempt that owns the span (no per-span key strings: this is the largest map). */
  private readonly decidedSpans = new Map<string, Map<string, DecidedAttempt>>();
  private decidedSpanCount = 0;
  /** trace id → its orphans, least recently touched first. */
  private readonly orphans = new Map<string, Orphans>();
  private readonly unsettledOrphans = new Map<string, Orphans>();
  private orphanSpans = 0;
  private bufferedSpans = 0;
  private bufferedBytes = 0;
  private readonly now: () => number;
  private readonly options: AssemblerOptions;

  constructor(options: AssemblerOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  stats() {
    return {
      traces: this.traces.size,
      spans: this.bufferedSpans,
      bytes: this.bufferedBytes,
      decidedAttempts: this.decided.size,
      decidedSpans: this.decidedSpanCount,
      orphanSpans: this.orphanSpans,
    };
  }

  /**
   * Takes one span. Adds to `out` (and returns it) the rows that are ready at
   * once (late spans, overflow decisions). A span given with its `source`
   * (its encoding as received) is handed to the forwarder too if kept.
   */
  add(span: SpanRecord, ref: MessageRef, bytes: number, out: Output = emptyOutput(), source?: SpanSource): Output {
    if (!/^[0-9a-f]{32}$/.test(span.traceId) || !/^[0-9a-f]{16}$/.test(span.spanId)) {
      this.options.observer?.droppedSpan?.(`span ${span.spanId || '(no id)'} "${span.name}" of trace ${span.traceId || '(no id)'}: trace id must be 16 bytes and span id 8 bytes`);
      out.refs.push(ref);
      return out;
    }
    if (this.ownerOf(span.traceId, span.spanId)) {
      this.options.observer?.duplicateSpan?.();
      out.refs.push(ref);
      return out;
    }
    const trace = this.trace(span.traceId, ref.partition);
    trace.lastSeen = this.now();
    this.idle.delete(trace.traceId);
    this.idle.set(trace.traceId, trace);
    const existing = trace.spans.get(span.spanId);
    if (existing) {
      // Another span under a taken id (not a redelivery of the same one): said, not dropped silently. The collector
      // rejects such pairs within a request; across requests only the consumer sees them.
      if (existing.span.name !== span.name) {
        this.options.observer?.droppedSpan?.(
          `span ${span.spanId} "${span.name}" of trace ${span.traceId}: its span id is already taken by span "${existing.span.name}" of the trace; span ids must be unique within a trace`,
        );
        out.refs.push(ref);
        return out;
      }
      this.options.observer?.duplicateSpan?.();
      // keep the more complete copy (an exporter may re-send a span once it has ended)
      if (!hasEnded(existing.span) && hasEnded(span)) {
        out.refs.push(existing.ref);
        this.unbuffer(trace, span.spanId);
        this.buffer(trace, span, ref, bytes, source);
        this.noteAttempt(trace, span);
      } else {
        out.refs.push(ref);
      }
      return out;
    }
    this.buffer(trace, span, ref, bytes, source);
    this.noteAttempt(trace, span);
    this.adoptLate(trace, span.spanId, out);
    this.enforceLimits(out);
    return out;
  }

  /**
   * Decides what is due — attempts past their wait, traces idle past the
   * timeout — at most `maxDecisions` attempts (the rest on the next call).
   * Its cost is that of the decisions: both queues are in due order, so it
   * never walks the traces still waiting.
   */
  tick(maxDecisions = Infinity): Output {
    const out = emptyOutput();
    const now = this.now();
    let decisions = 0;
    // least recently touched first, and settleAt = last touch + timeout: stop at the first unsettled
    for (const entry of this.unsettled.values()) {
      if (entry.settleAt > now) break;
      out.refs.push(...entry.refs.splice(0));
      this.unsettled.delete(entry.key);
    }
    for (const o of this.unsettledOrphans.values()) {
      if (o.settleAt > now) break;
      out.refs.push(...o.refs.splice(0));
      this.unsettledOrphans.delete(o.traceId);
    }
    // deleting the entry being visited is safe in a Map iteration (decide removes it)
    for (const e of this.ended.values()) {
      if (now - e.arrival < this.options.decisionWaitMs) break;
      if (decisions++ >= maxDecisions) return out;
      this.decide(e.trace, e.spanId, 'ended', out);
    }
    for (const trace of this.idle.values()) {
      if (now - trace.lastSeen < this.options.traceTimeoutMs) break;
      for (const spanId of [...trace.attempts.keys()]) {
        if (decisions++ >= maxDecisions) return out;
        this.decide(trace, spanId, this.ended.has(spanKey(trace.traceId, spanId)) ? 'ended' : 'timeout', out);
      }
      this.releaseOutside(trace, out);
    }
    return out;
  }

  /** Decides everything buffered (shutdown of the embedded mode, where nothing is redelivered). */
  drainAll(): Output {
    const out = emptyOutput();
    for (const trace of [...this.traces.values()]) this.evict(trace, 'shutdown', out);
    for (const entry of this.unsettled.values()) out.refs.push(...entry.refs.splice(0));
    this.unsettled.clear();
    for (const o of this.unsettledOrphans.values()) out.refs.push(...o.refs.splice(0));
    this.unsettledOrphans.clear();
    return out;
  }

  /** Drops state of partitions this member no longer owns; their new owner re-reads them. */
  retainPartitions(keep: Set<number>): void {
    for (const trace of [...this.traces.values()]) {
      if (keep.has(trace.partition)) continue;
      this.bufferedSpans -= trace.spans.size;
      this.bufferedBytes -= trace.bytes;
      for (const spanId of trace.attempts.keys()) this.ended.delete(spanKey(trace.traceId, spanId));
      this.traces.delete(trace.traceId);
      this.idle.delete(trace.traceId);
    }
  }

  private trace(traceId: string, partition: number): TraceState {
    let t = this.traces.get(traceId);
    if (!t) {
      t = { traceId, partition, spans: new Map(), children: new Map(), attempts: new Map(), invalid: new Set(), bytes: 0, lastSeen: this.now() };
      this.traces.set(traceId, t);
    }
    return t;
  }

  private buffer(trace: TraceState, span: SpanRecord, ref: MessageRef, bytes: number, source: SpanSource | undefined): void {
    trace.spans.set(span.spanId, { span, ref, bytes, source });
    let siblings = trace.children.get(span.parentSpanId);
    if (!siblings) trace.children.set(span.parentSpanId, (siblings = new Set()));
    siblings.add(span.spanId);
    trace.bytes += bytes;
    this.bufferedSpans++;
    this.bufferedBytes += bytes;
  }

  private unbuffer(trace: TraceState, spanId: string): Buffered | undefined {
    const b = trace.spans.get(spanId);
    if (!b) return undefined;
    trace.spans.delete(spanId);
    trace.children.get(b.span.parentSpanId)?.delete(spanId);
    trace.bytes -= b.bytes;
    this.bufferedSpans--;
    this.bufferedBytes -= b.bytes;
    return b;
  }

  private noteAttempt(trace: TraceState, span: SpanRecord): void {
    if (!isAttemptSpan(span.attributes)) return;
    let attrs;
    try {
      attrs = parseAttemptAttributes(span, span.attributes);
    } catch (err) {
      if (!(err instanceof ContractError)) throw err;
      trace.invalid.add(span.spanId);
      this.options.observer?.invalidSpan?.(err.message);
      return;
    }
    const pool = attrs.pool ?? span.resource[ATTR.POOL];
    const header: AttemptHeader = {
      attemptId: attrs.attemptId ?? `${span.traceId}-${span.spanId}`,
      tenant: tenantOf(span),
      pool: typeof pool === 'string' ? pool : '',
      attrs,
      traceId: span.traceId,
      spanId: span.spanId,
      startNs: span.startTimeUnixNano,
      endNs: hasEnded(span) ? span.endTimeUnixNano : 0n,
    };
    trace.attempts.set(span.spanId, { header });
    const key = spanKey(span.traceId, span.spanId);
    // an attempt is ended exactly when it is queued here, re-queued at its (new) arrival: a re-sent attempt span waits its own decision wait
    this.ended.delete(key);
    if (hasEnded(span)) this.ended.set(key, { trace, spanId: span.spanId, arrival: this.now() });
  }

  /** The decided attempt a buffered span belongs to through its ancestors, if any. */
  private decidedOwner(trace: TraceState, spanId: string): DecidedAttempt | undefined {
    // a chain longer than the buffered spans is a cycle (a malformed trace)
    for (let id = spanId, steps = 0; steps <= trace.spans.size; steps++) {
      if (trace.attempts.has(id) || trace.invalid.has(id)) return undefined;
      const b = trace.spans.get(id);
      const parent = b?.span.parentSpanId;
      if (!parent) return undefined;
      const owner = this.ownerOf(trace.traceId, parent);
      if (owner) return owner;
      id = parent;
    }
    return undefined;
  }

  /** If the new span hangs below an attempt already decided, it (and any buffered spans below it) join that attempt now. */
  private adoptLate(trace: TraceState, spanId: string, out: Output): void {
    const owner = this.decidedOwner(trace, spanId);
    if (!owner) return;
    // walk up to the topmost buffered span on the path, then take its whole buffered subtree
    let top = spanId;
    for (let p = trace.spans.get(top)?.span.parentSpanId; p && trace.spans.has(p); p = trace.spans.get(p)?.span.parentSpanId) top = p;
    const late = this.subtree(trace, top);
    for (const b of late) {
      this.options.observer?.lateSpan?.();
      owner.members.set(b.span.spanId, describeMember(b.span, this.options.catalog));
      this.own(trace.traceId, b.span.spanId, owner);
      if (owner.sampling.keep) keep(out, b, owner.header.attemptId, owner.sampling);
      owner.refs.push(b.ref);
    }
    // orphans below the spans that joined now belong to the attempt too
    const orphans = this.adoptOrphans(trace.traceId, owner.header.spanId, owner.members);
    owner.refs.push(...orphans.refs);
    for (const id of orphans.adopted) this.own(trace.traceId, id, owner);
    // every call row again at the new version: a late inner call turns a billed call into a wrapper
    const { row, callRows } = rollUp(owner.header, owner.members);
    out.llmCalls.push(...callRows);
    out.attempts.push({ ...row, sampled: owner.sampling.keep, sampling_rate: owner.sampling.rate, decision: owner.decision });
    this.touch(owner);
    this.dropIfEmpty(trace);
  }

  /** Removes and returns a span and every buffered span below it, stopping at other attempts. */
  private subtree(trace: TraceState, rootId: string): Buffered[] {
    const out: Buffered[] = [];
    const stack = [rootId];
    while (stack.length) {
      const id = stack.pop()!;
      const b = this.unbuffer(trace, id);
      if (b) out.push(b);
      for (const child of trace.children.get(id) ?? []) {
        if (!trace.attempts.has(child)) stack.push(child);
      }
      trace.children.delete(id);
    }
    return out;
  }

  private decide(trace: TraceState, attemptSpanId: string, decision: Decision, out: Output): void {
    const pending = trace.attempts.get(attemptSpanId);
    if (!pending) return;
    trace.attempts.delete(attemptSpanId);
    const key = spanKey(trace.traceId, attemptSpanId);
    this.ended.delete(key);
    const memberSpans = this.subtree(trace, attemptSpanId);
    const members = new Map<string, Member>(memberSpans.map((b) => [b.span.spanId, describeMember(b.span, this.options.catalog)]));
    const orphans = this.adoptOrphans(trace.traceId, attemptSpanId, members);
    const { row, callRows } = rollUp(pending.header, members);
    const sampling = decideSampling(row, this.options.sampling);
    const entry: DecidedAttempt = {
      key,
      header: pending.header,
      members,
      sampling,
      decision,
      partition: trace.partition,
      refs: [...memberSpans.map((b) => b.ref), ...orphans.refs],
      settleAt: this.now() + this.options.settleMs,
    };
    this.decided.set(key, entry);
    this.unsettled.set(key, entry);
    for (const id of members.keys()) this.own(trace.traceId, id, entry);
    out.attempts.push({ ...row, sampled: sampling.keep, sampling_rate: sampling.rate, decision });
    out.llmCalls.push(...callRows);
    if (sampling.keep) {
      for (const b of memberSpans) keep(out, b, pending.header.attemptId, sampling);
    }
    this.options.observer?.decided?.(decision, sampling);
    this.evictDecisions(out);
    this.dropIfEmpty(trace);
  }

  /**
   * Spans of an idle or evicted trace that belong to no attempt: kept whole,
   * marked, and remembered as orphans (their messages held like a decided
   * attempt's) for an attempt span still to come.
   */
  private releaseOutside(trace: TraceState, out: Output): void {
    if (trace.spans.size === 0) return this.dropIfEmpty(trace);
    this.options.observer?.outsideAttempt?.(trace.spans.size);
    let orphans = this.orphans.get(trace.traceId);
    if (!orphans) {
      orphans = { traceId: trace.traceId, members: new Map(), invalid: new Set(), refs: [], settleAt: 0 };
      this.orphans.set(trace.traceId, orphans);
    }
    for (const id of [...trace.spans.keys()]) {
      const b = this.unbuffer(trace, id)!;
      const invalid = trace.invalid.has(id);
      keep(out, b, '', { rate: 1, reason: invalid ? 'invalid_attempt' : 'outside_attempt' });
      if (!orphans.members.has(id)) this.orphanSpans++;
      orphans.members.set(id, describeMember(b.span, this.options.catalog));
      if (invalid) orphans.invalid.add(id);
      orphans.refs.push(b.ref);
    }
    this.touchOrphans(orphans);
    this.evictDecisions(out);
    this.dropIfEmpty(trace);
  }

  /**
   * Moves the orphans an attempt span owns (nearest attempt ancestor) into
   * its members. Returns their ids, and the orphans' messages once none is
   * left, for the attempt to hold from then on.
   */
  private adoptOrphans(traceId: string, attemptSpanId: string, members: Map<string, Member>): { adopted: string[]; refs: MessageRef[] } {
    const orphans = this.orphans.get(traceId);
    if (!orphans) return { adopted: [], refs: [] };
    const ours = (id: string): boolean => {
      // a chain longer than the orphans is a cycle (a malformed trace)
      let p = orphans.members.get(id)?.parentSpanId;
      for (let steps = 0; p && steps <= orphans.members.size; steps++, p = orphans.members.get(p)?.parentSpanId) {
        if (p === attemptSpanId || members.has(p)) return true;
        if (!orphans.members.has(p) || orphans.invalid.has(p)) return false;
      }
      return false;
    };
    const adopted = [...orphans.members.keys()].filter((id) => !orphans.invalid.has(id) && ours(id));
    for (const id of adopted) {
      members.set(id, orphans.members.get(id)!);
      orphans.members.delete(id);
      this.orphanSpans--;
      this.options.observer?.lateSpan?.();
    }
    if (orphans.members.size > 0) return { adopted, refs: [] };
    this.orphans.delete(traceId);
    this.unsettledOrphans.delete(traceId);
    return { adopted, refs: orphans.refs.splice(0) };
  }

  private evict(trace: TraceState, decision: Decision, out: Output): void {
    for (const spanId of [...trace.attempts.keys()]) this.decide(trace, spanId, decision, out);
    this.releaseOutside(trace, out);
  }

  private enforceLimits(out: Output): void {
    const { maxTraces, maxSpans, maxBytes } = this.options.limits;
    for (const trace of this.traces.values()) {
      if (this.traces.size <= maxTraces && this.bufferedSpans <= maxSpans && this.bufferedBytes <= maxBytes) return;
      this.evict(trace, 'overflow', out);
    }
  }

  private dropIfEmpty(trace: TraceState): void {
    if (trace.spans.size > 0 || trace.attempts.size > 0) return;
    this.traces.delete(trace.traceId);
    this.idle.delete(trace.traceId);
  }

  private ownerOf(traceId: string, spanId: string): DecidedAttempt | undefined {
    return this.decidedSpans.get(traceId)?.get(spanId);
  }

  private own(traceId: string, spanId: string, entry: DecidedAttempt): void {
    let spans = this.decidedSpans.get(traceId);
    if (!spans) this.decidedSpans.set(traceId, (spans = new Map()));
    if (!spans.has(spanId)) this.decidedSpanCount++;
    spans.set(spanId, entry);
  }

  private disown(traceId: string, spanId: string): void {
    const spans = this.decidedSpans.get(traceId);
    if (!spans?.delete(spanId)) return;
    this.decidedSpanCount--;
    if (spans.size === 0) this.decidedSpans.delete(traceId);
  }

  private touch(entry: DecidedAttempt): void {
    entry.settleAt = this.now() + this.options.settleMs;
    for (const map of [this.decided, this.unsettled]) {
      map.delete(entry.key);
      map.set(entry.key, entry);
    }
  }

  private touchOrphans(orphans: Orphans): void {
    orphans.settleAt = this.now() + this.options.settleMs;
    for (const map of [this.orphans, this.unsettledOrphans]) {
      map.delete(orphans.traceId);
      map.set(orphans.traceId, orphans);
    }
  }

  /** Keeps the decision cache within its bound: least recently touched decided attempts go first, then orphans. */
  private evictDecisions(out: Output): void {
    const limit = this.options.limits.decisionCacheSpans;
    for (const entry of this.decided.values()) {
      if (this.decidedSpanCount + this.orphanSpans <= limit) return;
      out.refs.push(...entry.refs.splice(0));
      this.decided.delete(entry.key);
      this.unsettled.delete(entry.key);
      for (const id of entry.members.keys()) this.disown(entry.header.traceId, id);
    }
    for (const o of this.orphans.values()) {
      if (this.decidedSpanCount + this.orphanSpans <= limit) return;
      out.refs.push(...o.refs.splice(0));
      this.orphans.delete(o.traceId);
      this.unsettledOrphans.delete(o.traceId);
      this.orphanSpans -= o.members.size;
    }
  }
}
