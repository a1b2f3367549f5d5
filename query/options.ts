/** The options of the embedded query endpoint (query/endpoint.ts), checked at start. */
import { hostname, totalmem } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { Store } from '../storage/store.ts';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** The writer's user name (option `writeUser`) unless configured otherwise. */
export const WRITER_USER = 'perpass_writer';

/** The process's memory limit: its cgroup's (`process.constrainedMemory()`), else the machine's. */
export function memoryLimit(): number {
  const constrained = process.constrainedMemory();
  return constrained > 0 && constrained < totalmem() ? constrained : totalmem();
}

const storeSchema = z.custom<Store>(
  (v) => typeof v === 'object' && v !== null && typeof (v as Store).query === 'function' && typeof (v as Store).database === 'string',
  'must be a Store from openStore()',
);

export const optionsSchema = z
  .strictObject({
    /** The process's embedded store: its chDB directory is the one queried (or give `dataDir`). */
    store: storeSchema.optional(),
    /** The chDB directory, when there is no Store object at hand. */
    dataDir: z.string().min(1).optional(),
    host: z.string().min(1).default('127.0.0.1'),
    /** 0 = a free port. */
    port: z.number().int().min(0).max(65535).default(8123),
    /** Database of unqualified names when the request names none (default: the store's, else `default`). */
    database: z.string().regex(IDENTIFIER, 'must be a plain identifier').optional(),
    /** Password readers must send (unset: none, unless `tenantTokens` are given). */
    readToken: z.string().min(1).optional(),
    /** Read passwords bound to a tenant (token → tenant): such a reader sees only that tenant's rows. */
    tenantTokens: z.record(z.string().min(1), z.string().min(1)).optional(),
    /** Host header names accepted besides the bound address (and loopback names when bound to loopback or all interfaces). */
    allowedHosts: z.array(z.string().min(1)).default([]),
    /** Password of the writer user; enables write mode. */
    writeToken: z.string().min(16, 'must be at least 16 characters').optional(),
    /** Asks for write mode explicitly: refused without `writeToken`. Default: on iff `writeToken` is set. */
    write: z.boolean().optional(),
    writeUser: z.string().regex(IDENTIFIER, 'must be a plain identifier').default(WRITER_USER),
    maxBodyBytes: z.number().int().min(1).default(64 * 1024 * 1024),
    maxQuerySize: z.number().int().min(1024).default(262_144),
    /** Cap on a reader's result (the engine's max_result_bytes); 0 = none. */
    maxResultBytes: z.number().int().min(0).default(256 * 1024 * 1024),
    /**
     * Cap on the memory of one reader query (the engine's max_memory_usage),
     * so a dashboard cannot starve the pipeline in the same process; 0 = none.
     * Default: a quarter of the process's memory limit (its cgroup's, else the machine's).
     */
    maxMemoryUsageBytes: z.number().int().min(0).default(Math.floor(memoryLimit() / 4)),
    /** Cap on a query's max_threads, whatever the core count (a request may ask for fewer). */
    maxThreads: z.number().int().min(1).max(256).default(4),
    maxExecutionTimeSec: z.number().positive().max(86_400).default(60),
    maxConcurrentQueries: z.number().int().min(1).max(64).default(2),
    maxQueuedQueries: z.number().int().min(0).default(64),
    queueTimeoutMs: z.number().int().min(0).default(30_000),
    /** Time to receive a whole request (headers and body). */
    requestTimeoutMs: z.number().int().min(1000).default(120_000),
    displayName: z.string().min(1).default(hostname()),
    /** Where request failures of the endpoint itself are reported (default: stderr). */
    log: z.custom<(message: string) => void>((v) => typeof v === 'function', 'must be a function').optional(),
  })
  .superRefine((o, ctx) => {
    if (!o.store && !o.dataDir) ctx.addIssue({ code: 'custom', path: ['store'], message: 'give the embedded store (or its dataDir)' });
    if (o.store && !o.store.dataDir) {
      ctx.addIssue({ code: 'custom', path: ['store'], message: `is a ClickHouse server (${o.store.location}), not embedded chDB: query that server directly` });
    }
    if (o.store?.dataDir && o.dataDir && path.resolve(o.dataDir) !== o.store.dataDir) {
      ctx.addIssue({ code: 'custom', path: ['dataDir'], message: `differs from the store's directory ${o.store.dataDir}` });
    }
    if (o.write && !o.writeToken) ctx.addIssue({ code: 'custom', path: ['writeToken'], message: 'write mode needs a write token' });
    if (o.writeToken !== undefined && o.write === false) ctx.addIssue({ code: 'custom', path: ['write'], message: 'is false but a writeToken is given' });
    if (o.writeToken !== undefined && o.writeToken === o.readToken) ctx.addIssue({ code: 'custom', path: ['writeToken'], message: 'must differ from readToken' });
    for (const token of Object.keys(o.tenantTokens ?? {})) {
      if (token === o.readToken || token === o.writeToken) ctx.addIssue({ code: 'custom', path: ['tenantTokens'], message: 'a tenant token must differ from readToken and writeToken' });
    }
  });

export type QueryEndpointOptions = z.input<typeof optionsSchema>;
