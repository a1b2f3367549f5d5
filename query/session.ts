/**
 * HTTP sessions (`session_id`, `session_timeout`, `session_check`,
 * `close_session`) as the embedded endpoint answers them.
 *
 * A ClickHouse session keeps what one query leaves for the next: settings
 * changed with `SET`, temporary tables, the current database of `USE`. A
 * reader's session is `readonly=1`, where the engine refuses SET and
 * CREATE TEMPORARY TABLE, so the only state a reader's session could hold
 * is a `USE` — which the reader can as well send per request (`database`),
 * and which does not carry over here. So the endpoint accepts a reader's
 * `session_id` and keeps nothing for it: the request is analysed and
 * checked by the policy like one without it and runs on a pooled session
 * (query/sessions.ts) that is reused only when the request left nothing in
 * it.
 * clickhouse-connect sends a generated session_id by default. With nothing
 * kept, every reader session exists: `session_check=1` and `close_session`
 * are accepted as such.
 *
 * A writer's statements (SET, CREATE TEMPORARY TABLE) would be lost between
 * requests without a real session, so a writer's `session_id` is refused
 * rather than silently ignored.
 */
import { ClickHouseHttpError } from './errors.ts';

/** ClickHouse's max_session_timeout default: the longest session_timeout a server accepts. */
const MAX_SESSION_TIMEOUT_SEC = 3600;

/** Checks a request's session parameters; throws what a server would, or why the endpoint refuses. */
export function checkSession(params: URLSearchParams, role: 'reader' | 'writer'): void {
  const id = params.get('session_id');
  if (!id) return;
  if (role === 'writer') {
    throw ClickHouseHttpError.of(
      'NOT_IMPLEMENTED',
      "HTTP sessions (session_id) are not supported for the writer: each request runs on its own session, so what a session would keep (SET, temporary tables) would be lost",
    );
  }
  const timeout = params.get('session_timeout');
  if (timeout !== null) {
    const t = Number(timeout);
    if (timeout.trim() === '' || !Number.isInteger(t) || t < 0) throw ClickHouseHttpError.of('BAD_ARGUMENTS', `Invalid session timeout: '${timeout}'`);
    if (t > MAX_SESSION_TIMEOUT_SEC) {
      throw ClickHouseHttpError.of('BAD_ARGUMENTS', `Session timeout '${timeout}' is larger than max_session_timeout: ${MAX_SESSION_TIMEOUT_SEC}. Maximum session timeout could be modified in configuration file.`);
    }
  }
}
