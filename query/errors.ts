/**
 * Errors of the embedded query endpoint in ClickHouse's HTTP form: the body
 * `Code: N. DB::Exception: <message>. (NAME) (version V)`, the header
 * `X-ClickHouse-Exception-Code: N` and the HTTP status a ClickHouse server
 * gives that code (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), so
 * `@clickhouse/client` raises a `ClickHouseError` with the right `code` and
 * `type`, and curl users see what they would see from a server.
 */

/** The ClickHouse error codes the endpoint itself raises (numbers from the engine's errorCodeToName). */
export const CODES = {
  UNSUPPORTED_METHOD: 1,
  BAD_ARGUMENTS: 36,
  CHECKSUM_DOESNT_MATCH: 40,
  UNKNOWN_FUNCTION: 46,
  NOT_IMPLEMENTED: 48,
  UNKNOWN_TABLE: 60,
  SYNTAX_ERROR: 62,
  UNKNOWN_DATABASE: 81,
  UNKNOWN_COMPRESSION_METHOD: 89,
  UNKNOWN_SETTING: 115,
  UNKNOWN_QUERY_PARAMETER: 456,
  TIMEOUT_EXCEEDED: 159,
  READONLY: 164,
  REQUIRED_PASSWORD: 194,
  TOO_MANY_SIMULTANEOUS_QUERIES: 202,
  QUERY_IS_TOO_LARGE: 229,
  CANNOT_DECOMPRESS: 271,
  SUPPORT_IS_DISABLED: 344,
  INTO_OUTFILE_NOT_ALLOWED: 358,
  HTTP_LENGTH_REQUIRED: 381,
  SETTING_CONSTRAINT_VIOLATION: 452,
  ACCESS_DENIED: 497,
  AUTHENTICATION_FAILED: 516,
  UNKNOWN_EXCEPTION: 1002,
} as const;

export type ErrorName = keyof typeof CODES;

/**
 * chDB re-wraps some errors in their own text ("Code: 73. DB::Exception:
 * Code: 73. DB::Exception: Unknown format X. (UNKNOWN_FORMAT) (version V).
 * (UNKNOWN_FORMAT) (version V)"): the innermost one, as a server says it.
 */
function unnested(message: string): string {
  for (;;) {
    const m = /^Code: (\d+)\. DB::Exception: (Code: \1\. DB::Exception: [\s\S]*?)(?: \(version [^()]*\))?\. \([A-Z][A-Z0-9_]+\)(?: \(version [^()]*\))?$/.exec(message);
    if (!m) return message;
    message = m[2]!;
  }
}

/** exceptionCodeToHTTPStatus of ClickHouse, by code; everything else is 500. */
const STATUS_BY_CODE = new Map<number, number>([
  [194, 401],
  ...[192, 193, 516, 512, 497].map((c) => [c, 403] as const),
  ...[36, 427, 6, 25, 26, 38, 41, 72, 441, 675, 676, 27, 376, 15, 44, 37, 123, 8, 167, 168, 223, 62, 117, 53, 321].map((c) => [c, 400] as const),
  ...[60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511].map((c) => [c, 404] as const),
  [229, 413],
  [48, 501],
  ...[209, 76, 439].map((c) => [c, 503] as const),
  [381, 411],
  [159, 408],
  [779, 415],
]);

export function httpStatusFor(code: number): number {
  return STATUS_BY_CODE.get(code) ?? 500;
}

/** An error answered to the client; `status` defaults to ClickHouse's status for the code. */
export class ClickHouseHttpError extends Error {
  override name = 'ClickHouseHttpError';
  readonly code: number;
  readonly type: string;
  readonly status: number;
  /** The body line in ClickHouse's form, without the version suffix. */
  readonly text: string;
  readonly headers: Record<string, string>;

  constructor(fields: { code: number; type: string; message: string; text: string; status?: number; headers?: Record<string, string>; cause?: unknown }) {
    super(fields.message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.code = fields.code;
    this.type = fields.type;
    this.text = fields.text;
    this.status = fields.status ?? httpStatusFor(fields.code);
    this.headers = fields.headers ?? {};
  }

  /** An error of the endpoint itself. */
  static of(type: ErrorName, message: string, options: { status?: number; headers?: Record<string, string>; cause?: unknown } = {}): ClickHouseHttpError {
    const code = CODES[type];
    const text = `Code: ${code}. DB::Exception: ${message.replace(/\.\s*$/, '')}. (${type})`;
    return new ClickHouseHttpError({ code, type, message, text, ...options });
  }

  /** An error the engine raised, kept verbatim: chDB already words it as ClickHouse does. */
  static fromEngine(err: unknown): ClickHouseHttpError {
    if (err instanceof ClickHouseHttpError) return err;
    const message = (err instanceof Error ? err.message : String(err)).trim();
    const engineCode = (err as { clickhouseCode?: unknown } | null)?.clickhouseCode;
    const match = /Code: (\d+)\. /.exec(message);
    const code = typeof engineCode === 'number' ? engineCode : match ? Number(match[1]) : undefined;
    if (code === undefined) {
      const chdbCode = (err as { code?: unknown } | null)?.code;
      if (chdbCode === 'CHDB_TIMEOUT' || chdbCode === 'CHDB_ABORT') return ClickHouseHttpError.of('TIMEOUT_EXCEEDED', `Timeout exceeded: ${message}`, { cause: err });
      return ClickHouseHttpError.of('UNKNOWN_EXCEPTION', message, { cause: err });
    }
    const types = [...message.matchAll(/\(([A-Z][A-Z0-9_]{2,})\)/g)];
    const type = types.at(-1)?.[1] ?? 'UNKNOWN_EXCEPTION';
    const text = message.startsWith('Code: ') ? unnested(message) : `Code: ${code}. DB::Exception: ${message} (${type})`;
    return new ClickHouseHttpError({ code, type, message, text, cause: err });
  }

  /**
   * The same error without the engine's "In scope <query>" where that query
   * is the endpoint's own wrapper around the client's statement (beginning
   * `wrapper`): the client never sent it.
   */
  withoutScope(wrapper: string): ClickHouseHttpError {
    const at = this.text.indexOf(`In scope ${wrapper}`);
    if (at < 0) return this;
    const tail = /\. \([A-Z][A-Z0-9_]+\)(?: \(version [^()]*\))?$/.exec(this.text);
    if (!tail || tail.index < at) return this;
    const text = `${this.text.slice(0, at).replace(/[\s.:]+$/, '')}${tail[0]}`;
    return new ClickHouseHttpError({ code: this.code, type: this.type, message: text, text, status: this.status, headers: this.headers, cause: this.cause });
  }

  /** The response body: the text, the server version as ClickHouse appends it, a newline. */
  body(version: string): string {
    return `${/\(version [^()]*\)\s*$/.test(this.text) ? this.text : `${this.text} (version ${version})`}\n`;
  }
}
