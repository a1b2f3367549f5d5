/**
 * The attempt half of the wire contract: which span is an attempt, and its
 * `fleet.*` attributes validated with zod. Errors name the span and the
 * field, because the people reading them are debugging someone else's agent.
 */
import { z } from 'zod';
import { ATTR, OUTCOMES, UNKNOWN_OUTCOME, type RecordedOutcome } from './attributes.ts';

const label = z.string().min(1, 'must be a non-empty string');
const optionalLabel = z.string().optional();

const AttemptAttributesSchema = z.object({
  [ATTR.SPEC_ID]: label,
  [ATTR.SPEC_TIER]: label,
  [ATTR.ATTEMPT_NUMBER]: z.number().int('must be an integer').min(1, 'must be ≥ 1'),
  [ATTR.ATTEMPT_OUTCOME]: z.enum(OUTCOMES, { error: `must be one of ${OUTCOMES.join(', ')}` }).optional(),
  [ATTR.ATTEMPT_REASON]: optionalLabel,
  [ATTR.ATTEMPT_ID]: label.optional(),
  [ATTR.CANARY]: optionalLabel,
  [ATTR.VARIANT]: optionalLabel,
  [ATTR.POOL]: optionalLabel,
  [ATTR.MODEL]: optionalLabel,
});

/** The attempt attributes of one span, normalised. */
export interface AttemptAttributes {
  specId: string;
  tier: string;
  attemptNumber: number;
  /** `unknown` when the span ended without a verdict. */
  outcome: RecordedOutcome;
  reason: string;
  /** Explicit idempotency key, when the agent set one. */
  attemptId?: string;
  canary: string;
  variant: string;
  /** `fleet.pool` of the span, if set there (the resource may carry it instead). */
  pool?: string;
  /** `fleet.model` when the agent routed the attempt explicitly. */
  model?: string;
}

/** Where a span sits, for error messages. */
export interface SpanRef {
  traceId: string;
  spanId: string;
  name: string;
}

export const describeSpan = (s: SpanRef): string => `span ${s.spanId || '(no id)'} "${s.name}" of trace ${s.traceId || '(no id)'}`;

/** A span that breaks the wire contract; the message names the span and the field. */
export class ContractError extends Error {
  override name = 'ContractError';
}

/** True when the span claims to be an attempt (carries either identifying attribute). */
export const isAttemptSpan = (attributes: Record<string, unknown>): boolean =>
  attributes[ATTR.SPEC_ID] !== undefined || attributes[ATTR.ATTEMPT_NUMBER] !== undefined;

/**
 * The attempt attributes of a span that claims to be an attempt. Throws
 * ContractError listing every wrong field of the span.
 */
export function parseAttemptAttributes(span: SpanRef, attributes: Record<string, unknown>): AttemptAttributes {
  const picked = Object.fromEntries(
    Object.keys(AttemptAttributesSchema.shape)
      .filter((k) => attributes[k] !== undefined && attributes[k] !== null)
      .map((k) => [k, attributes[k]]),
  );
  const parsed = AttemptAttributesSchema.safeParse(picked);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const field = String(i.path[0]);
      const got = attributes[field];
      const message = got === undefined || got === null ? 'is required' : i.message;
      return `${field} ${message}${got === undefined || got === null ? '' : `, got ${JSON.stringify(typeof got === 'bigint' ? got.toString() : got)}`}`;
    });
    throw new ContractError(`${describeSpan(span)}: ${problems.join('; ')}`);
  }
  const a = parsed.data;
  return {
    specId: a[ATTR.SPEC_ID],
    tier: a[ATTR.SPEC_TIER],
    attemptNumber: a[ATTR.ATTEMPT_NUMBER],
    outcome: a[ATTR.ATTEMPT_OUTCOME] ?? UNKNOWN_OUTCOME,
    reason: a[ATTR.ATTEMPT_REASON] ?? '',
    ...(a[ATTR.ATTEMPT_ID] !== undefined && { attemptId: a[ATTR.ATTEMPT_ID] }),
    canary: a[ATTR.CANARY] ?? '',
    variant: a[ATTR.VARIANT] ?? '',
    ...(a[ATTR.POOL] !== undefined && { pool: a[ATTR.POOL] }),
    ...(a[ATTR.MODEL] !== undefined && { model: a[ATTR.MODEL] }),
  };
}
