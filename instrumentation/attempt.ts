/**
 * The attempt span: one try of one spec by one agent configuration, the unit
 * $/pass is computed over (DESIGN.md "Wire contract"). withAttempt starts it,
 * makes it the active span so the LLM and tool spans inside become its
 * children, and ends it with the verdict the agent gave.
 */
import { context, createContextKey, diag, isSpanContextValid, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import { ATTR, type Outcome } from '../contract/attributes.ts';
import type { Catalog } from '../pricing/index.ts';
import { pipelineCatalog, previewCost, type CostPreview, type RecordedCall } from './cost-preview.ts';
import { recordError, tracer } from './spans.ts';
import { show } from './usage/fields.ts';

export interface AttemptOptions {
  /** `fleet.spec.id`: the unit of work (spec, ticket, canary run). */
  specId: string;
  /** `fleet.spec.tier`: work tier, low cardinality (e.g. `tier-2`). */
  tier: string;
  /** `fleet.attempt.number`: 1 for the first try of the spec, 2 for the first retry, … */
  attempt: number;
  /** `fleet.canary`: canary / benchmark shape. */
  canary?: string;
  /** `fleet.variant`: prompt / config variant. */
  variant?: string;
  /** `fleet.model`: the model the attempt is routed to (default: the model of its costliest call). */
  model?: string;
  /** `fleet.pool`: dispatch pool, when it is not a resource attribute. */
  pool?: string;
  /** `fleet.attempt.id`: idempotency key (default `<trace_id>-<span_id>`). */
  attemptId?: string;
}

/** The handle an attempt's code receives. */
export interface Attempt {
  /** The attempt span, for attributes or events of your own. */
  readonly span: Span;
  /** The attempt's idempotency key: `attemptId` if given, else `<trace_id>-<span_id>` as the pipeline derives it. */
  readonly id: string;
  /** The verdict so far (undefined until one is given). */
  readonly outcome: Outcome | undefined;
  /** The attempt's result was accepted: the only passing verdict. */
  pass(): void;
  /** The result was produced and rejected (tests failed, review said no). */
  fail(reason?: string): void;
  /** The agent broke (crash, provider error) before producing a judgeable result. */
  error(reason?: string): void;
  timeout(reason?: string): void;
  cancelled(reason?: string): void;
  /**
   * Running cost of the attempt's LLM calls so far, priced locally with the
   * pipeline's engine and catalog (FLEET_PRICES, else the shipped one), or
   * with `catalog`. Never put on a span.
   */
  costPreview(catalog?: Catalog): CostPreview;
}

const ATTEMPT_KEY = createContextKey('perpass attempt');

/** The attempt whose context is active, if any (LLM calls report to it). */
export const activeAttempt = (): AttemptHandle | undefined => context.active().getValue(ATTEMPT_KEY) as AttemptHandle | undefined;

class AttemptHandle implements Attempt {
  readonly span: Span;
  readonly id: string;
  readonly #what: string;
  readonly #calls: RecordedCall[] = [];
  #outcome: Outcome | undefined;
  #reason: string | undefined;
  #ended = false;

  constructor(span: Span, options: AttemptOptions) {
    this.span = span;
    const { traceId, spanId } = span.spanContext();
    this.id = options.attemptId ?? `${traceId}-${spanId}`;
    this.#what = `attempt ${options.attempt} of spec ${JSON.stringify(options.specId)} (trace ${traceId})`;
  }

  get outcome(): Outcome | undefined {
    return this.#outcome;
  }

  get running(): boolean {
    return !this.#ended;
  }

  get description(): string {
    return this.#what;
  }

  pass(): void {
    this.#verdict('pass', undefined);
  }
  fail(reason?: string): void {
    this.#verdict('fail', reason);
  }
  error(reason?: string): void {
    this.#verdict('error', reason);
  }
  timeout(reason?: string): void {
    this.#verdict('timeout', reason);
  }
  cancelled(reason?: string): void {
    this.#verdict('cancelled', reason);
  }

  costPreview(catalog: Catalog = pipelineCatalog()): CostPreview {
    return previewCost(this.#calls, catalog);
  }

  /** Called by the LLM calls made inside the attempt. */
  addCall(call: RecordedCall): void {
    this.#calls.push(call);
  }

  #verdict(outcome: Outcome, reason: string | undefined): void {
    if (reason !== undefined && typeof reason !== 'string') {
      throw new TypeError(`attempt.${outcome}(reason): reason must be a string, got ${show(reason)}`);
    }
    if (this.#ended) {
      diag.warn(`perpass: ${this.#what} has already ended; verdict ${outcome} ignored`);
      return;
    }
    if (this.#outcome !== undefined && this.#outcome !== outcome) {
      diag.warn(`perpass: ${this.#what}: verdict changed from ${this.#outcome} to ${outcome}`);
    }
    this.#outcome = outcome;
    this.#reason = reason === '' ? undefined : reason;
  }

  /**
   * fn threw. The attempt becomes `error` unless the agent already gave a
   * non-passing verdict (say `timeout` before its abort error propagated),
   * which is the more precise account.
   */
  thrown(err: unknown): void {
    const error = recordError(this.span, err);
    if (this.#outcome === undefined || this.#outcome === 'pass') {
      this.#outcome = 'error';
      this.#reason = error.message || error.name;
    }
  }

  end(): void {
    if (this.#outcome === undefined) {
      diag.warn(
        `perpass: ${this.#what} ended without a verdict: it is exported without ${ATTR.ATTEMPT_OUTCOME}, so the pipeline records outcome "unknown" (counted as not passing). Call attempt.pass() or attempt.fail(reason) before the attempt returns.`,
      );
    } else {
      this.span.setAttribute(ATTR.ATTEMPT_OUTCOME, this.#outcome);
      if (this.#reason !== undefined) this.span.setAttribute(ATTR.ATTEMPT_REASON, this.#reason);
      if (this.#outcome === 'error') this.span.setStatus({ code: SpanStatusCode.ERROR, ...(this.#reason !== undefined && { message: this.#reason }) });
    }
    this.#ended = true;
    this.span.end();
  }
}

let warnedNotRecording = false;

/**
 * Head sampling that drops attempts biases $/pass: the dropped ones are
 * neither counted nor priced. A valid span context that is not recording is
 * exactly that (a disabled SDK gives an invalid one). Warned once.
 */
function warnIfSampledOut(span: Span, what: string): void {
  if (warnedNotRecording || span.isRecording() || !isSpanContextValid(span.spanContext())) return;
  warnedNotRecording = true;
  diag.warn(
    `perpass: ${what} is not recorded: the tracer provider's sampler dropped it (head sampling), so the pipeline never sees it and $/pass is biased. Sample every attempt (OTEL_TRACES_SAMPLER=parentbased_always_on): perpass keeps or drops traces itself, after the verdict. Warned once.`,
  );
}

/** The attempt's attributes, or a TypeError naming the option (and the attribute it becomes) that is wrong. */
function attemptAttributes(options: AttemptOptions): Attributes {
  if (typeof options !== 'object' || options === null) throw new TypeError(`withAttempt: options must be an object, got ${show(options)}`);
  const attributes: Attributes = {};
  const label = (key: keyof AttemptOptions, attribute: string, required: boolean) => {
    const v = options[key];
    if (v === undefined && !required) return;
    if (typeof v !== 'string' || v === '') throw new TypeError(`withAttempt: ${key} (${attribute}) must be a non-empty string, got ${show(v)}`);
    attributes[attribute] = v;
  };
  label('specId', ATTR.SPEC_ID, true);
  label('tier', ATTR.SPEC_TIER, true);
  if (typeof options.attempt !== 'number' || !Number.isSafeInteger(options.attempt) || options.attempt < 1) {
    throw new TypeError(`withAttempt: attempt (${ATTR.ATTEMPT_NUMBER}) must be an integer ≥ 1 (1 for the first try of the spec), got ${show(options.attempt)}`);
  }
  attributes[ATTR.ATTEMPT_NUMBER] = options.attempt;
  label('canary', ATTR.CANARY, false);
  label('variant', ATTR.VARIANT, false);
  label('model', ATTR.MODEL, false);
  label('pool', ATTR.POOL, false);
  label('attemptId', ATTR.ATTEMPT_ID, false);
  return attributes;
}

/**
 * Runs `fn` as one attempt: starts the span `attempt {specId}` as a child of
 * the active span (a new trace when there is none), makes it active while fn
 * runs, and ends it when fn settles. fn's value is returned; an exception
 * ends the attempt as `error` (recorded on the span) and is re-thrown.
 */
export async function withAttempt<T>(options: AttemptOptions, fn: (attempt: Attempt) => T | Promise<T>): Promise<T> {
  const attributes = attemptAttributes(options);
  if (typeof fn !== 'function') throw new TypeError(`withAttempt: fn must be a function, got ${show(fn)}`);
  const parent = context.active();
  const outer = parent.getValue(ATTEMPT_KEY) as AttemptHandle | undefined;
  if (outer?.running) {
    // Every span below an attempt belongs to it; an attempt inside an attempt would be counted in both.
    throw new Error(`withAttempt: attempts cannot nest, and ${outer.description} is still running; start the retry after it returns`);
  }
  const span = tracer().startSpan(`attempt ${options.specId}`, { kind: SpanKind.INTERNAL, attributes }, parent);
  const attempt = new AttemptHandle(span, options);
  warnIfSampledOut(span, attempt.description);
  try {
    return await context.with(trace.setSpan(parent, span).setValue(ATTEMPT_KEY, attempt), () => fn(attempt));
  } catch (err) {
    attempt.thrown(err);
    throw err;
  } finally {
    attempt.end();
  }
}

export type { AttemptHandle };
