/**
 * Keeps the pre-aggregated attempt blocks current (sql/migrations/
 * 0007_attempt_rollups.sql says what they are and why reads stay exact;
 * 0008 adds the alert rules' cost moments).
 *
 * A refresh reads every block's live fingerprint once, then per level:
 *
 *   - level 0 (a day): dirty days are summed from `attempts FINAL`, after
 *     their fingerprints were read, so the sums hold at least the rows the
 *     fingerprint counts; if rows came in between, the live fingerprint
 *     already differs from the stored one and the day stays raw;
 *   - level L > 0: a dirty block whose children are all clean is summed
 *     from the children's rows, and stored with the sum of their
 *     fingerprints.
 *
 * Each computation's rows are written first, under a new id, and then the
 * block's row naming it: a reader sees either the old computation or the
 * complete new one. Only closed blocks (every day before today, UTC) are
 * computed: today is read raw. Rows of superseded computations are deleted
 * a cleanup period after they were first seen superseded, when no query can
 * still be reading them.
 *
 * Every process that writes attempts may run one: two refreshers computing
 * the same block write two valid computations, and the newer row wins.
 */
import { randomBytes } from 'node:crypto';
import type { Store } from './store.ts';

/** Levels 0–5: blocks of 1 to 32 days (the views' windows are 30 days by default). */
export const MAX_LEVEL = 5;

export interface RefreshOptions {
  /** The instant "today" is taken from (tests move it). */
  now?: Date;
  /** Raw attempt rows (every version) summed per refresh at most; the rest waits for the next one. */
  maxRawRows?: number;
}

export interface RefreshResult {
  /** Blocks computed per level. */
  computed: number[];
  /** Raw rows (every version) behind the days summed from `attempts`. */
  rawRows: number;
  /** Dirty closed blocks left for a later refresh. */
  pending: number;
}

interface Fingerprint {
  tenant: string;
  spec_tier: string;
  level: number;
  first_day: string;
  rows: string;
  hash: string;
}

interface Stored extends Fingerprint {
  computation: string;
}

const key = (b: { tenant: string; spec_tier: string; level: number; first_day: string }) => `${b.tenant}\0${b.spec_tier}\0${b.level}\0${b.first_day}`;
const DAY_MS = 86_400_000;
const dayNumber = (day: string) => Date.parse(`${day}T00:00:00Z`) / DAY_MS;
const dayText = (n: number) => new Date(n * DAY_MS).toISOString().slice(0, 10);
/** 64-bit values (hashes, ids) as text: JSON numbers would round them. */
const EXACT = { output_format_json_quote_64bit_integers: 1 } as const;

/** The id of a block's computation in this refresh: derived in SQL the same way for its rows and its block row. */
const computationSql = (level: string, firstDay: string) => `cityHash64(toString(tenant), toString(spec_tier), toUInt8(${level}), toDate(${firstDay}), {nonce:UInt64})`;

/**
 * A group of attempts' sums, as the rollup rows hold them (the raw read of
 * attempt_window_sums in sql/migrations/0008_rollup_moments.sql computes the
 * same). Σ cost² is exact: Decimal(76, 36).
 */
export const ATTEMPT_SUMS = `
    count() AS n_attempts, countIf(outcome = 'pass') AS n_passes, sum(cost_usd) AS sum_cost,
    countIf(cost_usd IS NULL) AS n_unpriced, sum(unpriced_calls) AS sum_unpriced_calls,
    sum(reported_cost_usd) AS sum_reported_cost, sum(llm_calls) AS sum_llm_calls, sum(tool_calls) AS sum_tool_calls,
    sum(input_tokens) AS sum_input, sum(cache_read_tokens) AS sum_cache_read, sum(cache_write_tokens) AS sum_cache_write,
    sum(output_tokens) AS sum_output, sum(reasoning_tokens) AS sum_reasoning,
    countIf(cost_usd IS NOT NULL AND outcome = 'pass') AS n_priced_passes, sumIf(cost_usd, outcome = 'pass') AS sum_pass_cost,
    sum(toDecimal256(cost_usd, 18) * cost_usd) AS sum_cost_sq,
    min(started_at) AS first_started_at, max(started_at) AS last_started_at`;

const RESUMS = `
    sum(n_attempts), sum(n_passes), sum(sum_cost), sum(n_unpriced), sum(sum_unpriced_calls), sum(sum_reported_cost),
    sum(sum_llm_calls), sum(sum_tool_calls), sum(sum_input), sum(sum_cache_read), sum(sum_cache_write), sum(sum_output),
    sum(sum_reasoning), sum(n_priced_passes), sum(sum_pass_cost), sum(sum_cost_sq), min(first_started_at), max(last_started_at)`;

const ROLLUP_COLUMNS = `tenant, spec_tier, level, first_day, computation, model, canary, variant, n_attempts, n_passes, sum_cost,
    n_unpriced, sum_unpriced_calls, sum_reported_cost, sum_llm_calls, sum_tool_calls, sum_input, sum_cache_read,
    sum_cache_write, sum_output, sum_reasoning, n_priced_passes, sum_pass_cost, sum_cost_sq, first_started_at, last_started_at, computed_at`;

/**
 * Which sums a block's computation holds; the plan (0008) uses blocks of
 * this version only, so blocks from before the alert moments are recomputed.
 */
const SUMS_VERSION = 1;

/** Computes the dirty closed blocks, lowest level first. */
export async function refreshRollups(store: Store, options: RefreshOptions = {}): Promise<RefreshResult> {
  const db = store.database;
  const today = Math.floor((options.now ?? new Date()).getTime() / DAY_MS);
  const maxRawRows = options.maxRawRows ?? 2_000_000;
  const live = await store.query<Fingerprint>(
    `SELECT tenant, spec_tier, level, toString(first_day) AS first_day, rows, hash
     FROM ${db}.attempt_block_fingerprints(since_day = toDate('1970-01-01'))`,
    undefined,
    EXACT,
  );
  const readStored = async () =>
    new Map(
      (
        await store.query<Stored>(
          `SELECT tenant, spec_tier, level, toString(first_day) AS first_day, rows, hash, computation FROM ${db}.attempt_rollup_blocks FINAL
           WHERE sums_version = ${SUMS_VERSION}`,
          undefined,
          EXACT,
        )
      ).map((s) => [key(s), s]),
    );
  let stored = await readStored();
  const liveByKey = new Map(live.map((f) => [key(f), f]));
  const clean = (f: Fingerprint) => {
    const s = stored.get(key(f));
    return s !== undefined && s.rows === f.rows && s.hash === f.hash;
  };
  const result: RefreshResult = { computed: [], rawRows: 0, pending: 0 };
  for (let level = 0; level <= MAX_LEVEL; level++) {
    const dirty = live.filter((f) => f.level === level && dayNumber(f.first_day) + 2 ** level <= today && !clean(f));
    // Level 0 from raw rows (newest first, up to the budget); above, once every child with attempts is clean.
    const ready =
      level === 0
        ? dirty.sort((a, b) => b.first_day.localeCompare(a.first_day)).filter((f) => {
            const rows = Number(f.rows);
            if (result.rawRows > 0 && result.rawRows + rows > maxRawRows) return false;
            result.rawRows += rows;
            return true;
          })
        : dirty.filter((f) => children(f).every((c) => !liveByKey.has(key(c)) || clean(liveByKey.get(key(c))!)));
    result.pending += dirty.length - ready.length;
    result.computed.push(ready.length);
    if (ready.length === 0) continue;
    const nonce = randomBytes(8).readBigUInt64BE().toString();
    if (level === 0) {
      await store.command(
        `INSERT INTO ${db}.attempt_rollups (${ROLLUP_COLUMNS})
         SELECT tenant, spec_tier, 0, toDate(started_at) AS day, ${computationSql('0', 'day')}, model, canary, variant, ${ATTEMPT_SUMS}, now64(3)
         FROM ${db}.attempts FINAL
         WHERE (tenant, spec_tier, toDate(started_at)) IN (SELECT arrayJoin(arrayZip({tenants:Array(String)}, {tiers:Array(String)}, {days:Array(Date)})))
         GROUP BY tenant, spec_tier, day, model, canary, variant
         SETTINGS do_not_merge_across_partitions_select_final = 1`,
        { ...columnsOf(ready), nonce },
      );
    } else {
      const parts = ready.flatMap((f) => children(f).flatMap((c) => (liveByKey.has(key(c)) ? [stored.get(key(c))!] : [])));
      const parentDay = `toDate(bitShiftLeft(bitShiftRight(toUInt16(first_day), ${level}), ${level}))`;
      await store.command(
        `INSERT INTO ${db}.attempt_rollups (${ROLLUP_COLUMNS})
         SELECT tenant, spec_tier, ${level}, ${parentDay} AS parent_day, ${computationSql(String(level), 'parent_day')}, model, canary, variant, ${RESUMS}, now64(3)
         FROM ${db}.attempt_rollups
         WHERE computation IN (SELECT arrayJoin(arrayMap(x -> toUInt64(x), {computations:Array(String)})))
         GROUP BY tenant, spec_tier, parent_day, model, canary, variant`,
        { computations: parts.map((c) => c.computation), nonce },
      );
    }
    // The blocks' rows last: from now on readers may use the computations.
    await store.command(
      `INSERT INTO ${db}.attempt_rollup_blocks (tenant, spec_tier, level, first_day, rows, hash, computation, computed_at, sums_version)
       SELECT b.1 AS tenant, b.2 AS spec_tier, ${level}, b.3 AS first_day, b.4, b.5, ${computationSql(String(level), 'first_day')}, now64(3), ${SUMS_VERSION}
       FROM (SELECT arrayJoin(arrayZip({tenants:Array(String)}, {tiers:Array(String)}, {days:Array(Date)}, arrayMap(x -> toUInt64(x), {rows:Array(String)}), arrayMap(x -> toUInt64(x), {hashes:Array(String)}))) AS b)`,
      { ...columnsOf(ready), rows: ready.map((f) => f.rows), hashes: ready.map((f) => f.hash), nonce },
    );
    // With their computations and the live fingerprints read above, the next level sees them clean.
    stored = await readStored();
  }
  return result;
}

/** Blocks as the parallel arrays a query zips back into tuples. */
const columnsOf = (blocks: readonly Fingerprint[]) => ({
  tenants: blocks.map((b) => b.tenant),
  tiers: blocks.map((b) => b.spec_tier),
  days: blocks.map((b) => b.first_day),
});

/** The two halves of a block one level down. */
function children(f: Fingerprint): Fingerprint[] {
  const half = 2 ** (f.level - 1);
  const first = dayNumber(f.first_day);
  return [first, first + half].map((d) => ({ ...f, level: f.level - 1, first_day: dayText(d) }));
}

/**
 * Deletes the rows of computations no block names any more, once they were
 * seen so at least `graceMs` earlier: a query that chose one before it was
 * superseded has finished by then, and a computation whose block row was
 * still being written (another refresher) is named by it by then. `seen`
 * carries the first sightings from one sweep to the next. Returns how many
 * computations it deleted.
 */
export async function sweepRollups(store: Store, seen: Map<string, number>, graceMs: number, nowMs = Date.now()): Promise<number> {
  const db = store.database;
  const superseded = await store.query<{ computation: string }>(
    `SELECT DISTINCT computation FROM ${db}.attempt_rollups
     WHERE computation NOT IN (SELECT computation FROM ${db}.attempt_rollup_blocks FINAL)`,
    undefined,
    EXACT,
  );
  const due: string[] = [];
  const current = new Set<string>();
  for (const { computation } of superseded) {
    current.add(computation);
    const first = seen.get(computation);
    if (first === undefined) seen.set(computation, nowMs);
    else if (nowMs - first >= graceMs) due.push(computation);
  }
  for (const k of seen.keys()) if (!current.has(k)) seen.delete(k);
  if (due.length === 0) return 0;
  await store.command(
    `DELETE FROM ${db}.attempt_rollups WHERE computation IN (SELECT arrayJoin(arrayMap(x -> toUInt64(x), {computations:Array(String)})))`,
    { computations: due },
  );
  for (const c of due) seen.delete(c);
  return due.length;
}

export interface RollupRefresher {
  /** One refresh and sweep now (also what the timer runs). */
  tick(): Promise<RefreshResult>;
  /** Stops the timer and waits for a tick under way. */
  stop(): Promise<void>;
}

/**
 * Refreshes every `intervalMs` (the first time right away: a restart
 * catches up) and sweeps superseded computations. A failed tick is logged
 * and the next one tries again: until then the views read more raw days,
 * never a wrong number.
 */
export function startRollupRefresher(store: Store, o: { intervalMs: number; graceMs?: number; log: (message: string) => void }): RollupRefresher {
  const seen = new Map<string, number>();
  let running: Promise<RefreshResult> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = () =>
    (running ??= (async () => {
      try {
        const result = await refreshRollups(store);
        await sweepRollups(store, seen, o.graceMs ?? 10 * 60_000);
        return result;
      } finally {
        running = undefined;
      }
    })());
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      tick().then(
        // a backlog (a first start over a long history) is worked through without waiting a whole interval
        (r) => schedule(r.pending > 0 ? 0 : o.intervalMs),
        (err: unknown) => {
          o.log(`rollups: refresh failed, retrying in ${Math.round(o.intervalMs / 1000)} s: ${err instanceof Error ? err.message : String(err)}`);
          schedule(o.intervalMs);
        },
      );
    }, ms);
    timer.unref();
  };
  schedule(0);
  return {
    tick,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => undefined);
    },
  };
}
