/**
 * Collector options, validated with zod so a bad value (from a flag, an
 * environment variable or an embedding program) fails at start with an
 * error naming the option, instead of misbehaving under traffic.
 */
import { Registry } from 'prom-client';
import { z } from 'zod';
import type { Publisher } from '../bus/types.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../otlp/split.ts';
import { QueueShares } from './limits.ts';

const MiB = 1024 * 1024;

const isPublisher = (v: unknown): v is Publisher =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as Publisher).publish === 'function' &&
  typeof (v as Publisher).isReady === 'function' &&
  typeof (v as Publisher).close === 'function';

const CollectorOptionsSchema = z
  .strictObject({
    /** Where accepted spans go; closed by RunningCollector.close(). */
    publisher: z.custom<Publisher>(isPublisher, 'must be a Publisher (publish, isReady and close functions)'),
    /** Interface to listen on; unset = all interfaces (otelcol's `:4318`). */
    host: z.string().min(1, 'must be a non-empty host name or address').optional(),
    /** 0 picks a free port (RunningCollector.port tells which). */
    port: z.number().int('must be an integer').min(0).max(65535).default(4318),
    /**
     * Port of the OTLP/gRPC receiver (0 picks a free one); unset = no gRPC
     * receiver (`fleet start` and `fleet collector` default to 4317).
     */
    grpcPort: z.number().int('must be an integer').min(0).max(65535).optional(),
    /** Bus topic; Kafka's legal topic names. */
    topic: z
      .string()
      .regex(/^[a-zA-Z0-9._-]{1,249}$/, 'must be 1–249 characters of a-z, A-Z, 0-9, ".", "_", "-"')
      .default('otlp_spans'),
    /** Cap on a request body, applied to the bytes on the wire and again after decompression. */
    maxBodyBytes: z.number().int('must be an integer').positive().default(64 * MiB),
    /**
     * Bound of one bus message (an OTLP protobuf of one trace's spans): a
     * trace with more is published as several messages, a span that does
     * not fit one with its resource and scope is rejected (partial success).
     * Keep it under the topic's max.message.bytes (Kafka's default 1 MiB
     * applies to the compressed record batch; the default here leaves room
     * for incompressible spans and batch overhead).
     */
    maxMessageBytes: z.number().int('must be an integer').min(1024).max(64 * MiB).default(DEFAULT_MAX_MESSAGE_BYTES),
    /**
     * Budget of request bytes (after decompression) being processed at once.
     * A request that would exceed it gets 429 + Retry-After. At least
     * maxBodyBytes, so that one request of the largest allowed size always fits.
     */
    maxInflightBytes: z.number().int('must be an integer').positive().default(256 * MiB),
    /**
     * Share of maxInflightBytes one tenant's requests may hold (with auth
     * on), so one tenant's slow or huge requests leave room for the others.
     * Default: half of maxInflightBytes, at least maxBodyBytes.
     */
    maxTenantInflightBytes: z.number().int('must be an integer').positive().optional(),
    /** Cap on spans in one request: 413 past it (OTLP exporters batch 512 by default). */
    maxSpansPerRequest: z.number().int('must be an integer').positive().default(100_000),
    /**
     * Cap on open connections. Past it, a new connection closes the one idle
     * longest (preferring connections that never sent a request), or is
     * closed itself when every connection has a request in progress;
     * decided on accept, before anything is parsed or authenticated.
     */
    maxConnections: z.number().int('must be an integer').positive().default(1024),
    /** Time a client has to send a request's headers (from connecting, or from the previous response): 408 after. */
    headersTimeoutMs: z.number().int('must be an integer').positive().default(10_000),
    /** Time a client has to send a whole request, headers and body: 408 after. */
    bodyTimeoutMs: z.number().int('must be an integer').positive().default(60_000),
    /**
     * Slowest body accepted: after a grace of 2 s, a body whose average rate
     * since its headers falls below this many bytes per second is cut with
     * 408 (a slow-loris upload would otherwise hold a request for bodyTimeoutMs).
     */
    minBodyBytesPerSecond: z.number().int('must be an integer').nonnegative().default(16 * 1024),
    /** How long an idle keep-alive connection stays open. */
    keepAliveTimeoutMs: z.number().int('must be an integer').positive().default(5_000),
    /** Bodies of at least this many bytes are decoded, validated and split on a worker thread, off the event loop. */
    workerThresholdBytes: z.number().int('must be an integer').nonnegative().default(64 * 1024),
    /** Worker threads for large bodies (default: the cores but one, 1 to 4). */
    ingestWorkers: z.number().int('must be an integer').positive().optional(),
    /** RSS above which new requests get 503 + Retry-After (the memory budget's guard); unset: no guard. */
    refuseAboveRssBytes: z.number().int('must be an integer').positive().optional(),
    /** Per-tenant shares of the queue the publisher writes to (the embedded queue meters them); unset: none. */
    queueShares: z.instanceof(QueueShares, { message: 'must be a QueueShares' }).optional(),
    /** Retry-After (seconds) sent with 429 when the in-flight budget is exhausted. */
    overloadRetryAfterSeconds: z.number().int('must be an integer').positive().default(1),
    /**
     * Bearer tokens → tenant. When set, every request needs one of the tokens
     * and its tenant is stamped as `fleet.tenant` on every resource.
     */
    authTokens: z
      .record(z.string().min(1, 'tokens must be non-empty'), z.string().min(1, 'tenants must be non-empty'))
      .refine((m) => Object.keys(m).length > 0, 'must hold at least one token (omit it to turn auth off)')
      .optional(),
    /** Prometheus registry to register on (e.g. one shared by an all-in-one process); default: a new one. */
    registry: z.instanceof(Registry, { message: 'must be a prom-client Registry' }).optional(),
    /** How long close() waits for in-flight requests before cutting connections. */
    shutdownTimeoutMs: z.number().int('must be an integer').nonnegative().default(30_000),
  })
  .refine((o) => o.maxInflightBytes >= o.maxBodyBytes, {
    path: ['maxInflightBytes'],
    message: 'must be at least maxBodyBytes',
  })
  .refine((o) => o.maxTenantInflightBytes === undefined || (o.maxTenantInflightBytes >= o.maxBodyBytes && o.maxTenantInflightBytes <= o.maxInflightBytes), {
    path: ['maxTenantInflightBytes'],
    message: 'must be at least maxBodyBytes and at most maxInflightBytes',
  })
  .transform((o) => ({ ...o, maxTenantInflightBytes: o.maxTenantInflightBytes ?? Math.max(o.maxBodyBytes, Math.floor(o.maxInflightBytes / 2)) }));

export type CollectorOptions = z.input<typeof CollectorOptionsSchema>;
export type ResolvedCollectorOptions = z.output<typeof CollectorOptionsSchema>;

/** An option with a bad value; the message names it. */
export class CollectorOptionsError extends Error {
  override name = 'CollectorOptionsError';
}

export function resolveCollectorOptions(options: CollectorOptions): ResolvedCollectorOptions {
  const parsed = CollectorOptionsSchema.safeParse(options);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => {
    if (i.code === 'unrecognized_keys') return `unknown option ${i.keys.join(', ')}`;
    // A path under authTokens would end in the token itself: never print secrets.
    const path = i.path[0] === 'authTokens' ? 'authTokens' : i.path.map(String).join('.');
    return `option ${path || '(options)'} ${i.message}`;
  });
  throw new CollectorOptionsError(`invalid collector options: ${problems.join('; ')}`);
}
