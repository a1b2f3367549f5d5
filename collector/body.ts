/**
 * Reading a request body under a size cap, decompressing it (any coding of
 * decompress.ts) as it streams in. The cap applies to the bytes on the wire
 * and again to the decompressed bytes, and decompression stops as soon as
 * the output passes it, so a decompression bomb costs at most the cap plus
 * one decoder chunk of memory.
 */
import type { IncomingMessage } from 'node:http';
import { createDecoder, DeclaredTooLargeError, type ContentCoding } from './decompress.ts';
import { CONTENT_CODINGS } from './encoding.ts';

/** A body the collector refuses; `status` is the HTTP status to answer with. */
export class BodyError extends Error {
  override name = 'BodyError';
  readonly status: 400 | 408 | 413 | 415;
  constructor(status: 400 | 408 | 413 | 415, message: string) {
    super(message);
    this.status = status;
  }
}

/** The client went away before the body was complete: there is no one to answer. */
export class ClientAbortedError extends Error {
  override name = 'ClientAbortedError';
}

export type { ContentCoding } from './decompress.ts';

/** The request's Content-Encoding; BodyError 415 for codings the collector does not decode. */
export function contentCoding(header: string | undefined): ContentCoding {
  const coding = CONTENT_CODINGS[(header ?? '').trim().toLowerCase()];
  if (coding !== undefined) return coding;
  const known = Object.keys(CONTENT_CODINGS).filter((k) => k !== '').join(', ');
  throw new BodyError(415, `unsupported Content-Encoding ${JSON.stringify(header)}: use one of ${known}`);
}

export interface ReadBodyOptions {
  coding: ContentCoding;
  maxBytes: number;
  /**
   * Called with the running total of (decompressed) bytes held. May throw to
   * abort the read (the in-flight budget does); the read rejects with that error.
   */
  onBytes?: (total: number) => void;
  /**
   * The declared Content-Length, if any: an uncompressed body is then read
   * into one buffer of that size as it arrives, instead of a chunk list
   * joined at the end (one copy of up to maxBytes in a single turn of the
   * event loop). Untouched pages of the buffer take no memory; the budget
   * counts bytes received.
   */
  expectedBytes?: number;
  /** Whole body by this time (ms since the epoch), else BodyError 408. */
  deadline?: number;
  /** After the first BODY_RATE_GRACE_MS, the body's average rate on the wire must stay at least this (bytes/s), else BodyError 408. */
  minBytesPerSecond?: number;
}

/** Time a body may take to get going before its rate is judged (TCP slow start, a client building the rest). */
const BODY_RATE_GRACE_MS = 2_000;
/** How often a body's deadline and rate are checked. */
const BODY_CHECK_INTERVAL_MS = 500;

/**
 * The whole (decompressed) body and its size on the wire. Rejects with BodyError (413 past the cap on
 * either side of decompression, 400 for a corrupt or truncated compressed body),
 * ClientAbortedError, or whatever onBytes threw. On rejection the rest of the
 * body is left to be discarded by the caller (see server.ts).
 */
export function readBody(req: IncomingMessage, options: ReadBodyOptions): Promise<{ body: Buffer; wireBytes: number }> {
  const { maxBytes, onBytes } = options;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    // Node's parser never delivers more than the declared length.
    const into = options.coding === 'identity' ? (options.expectedBytes ?? 0) : 0;
    const whole = into > 0 && into <= maxBytes ? Buffer.allocUnsafeSlow(into) : undefined;
    let wireBytes = 0;
    let bodyBytes = 0;
    let settled = false;
    const gunzip = createDecoder(options.coding, maxBytes);
    const started = Date.now();
    const { deadline, minBytesPerSecond = 0 } = options;
    // Slow clients are cut by the collector itself: Node's own requestTimeout answers without an OTLP Status and checks rarely.
    const checkPace = () => {
      const now = Date.now();
      if (deadline !== undefined && now > deadline) return fail(new BodyError(408, `request body not complete within the collector's body timeout (${wireBytes} bytes received)`));
      const elapsed = now - started;
      if (elapsed > BODY_RATE_GRACE_MS && wireBytes < (minBytesPerSecond * elapsed) / 1000) {
        fail(new BodyError(408, `request body arrives too slowly: ${wireBytes} bytes in ${elapsed} ms, below the minimum of ${minBytesPerSecond} bytes/s`));
      }
    };
    const pace = deadline === undefined && minBytesPerSecond === 0 ? undefined : setInterval(checkPace, BODY_CHECK_INTERVAL_MS);
    pace?.unref();

    const cleanup = () => {
      clearInterval(pace);
      req.off('data', onWireData);
      req.off('end', onWireEnd);
      req.off('error', onWireError);
      req.off('close', onClose);
      gunzip?.destroy();
    };
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(err);
    };
    const finish = () => {
      if (settled) return;
      settled = true;
      cleanup();
      const body = whole ? whole.subarray(0, bodyBytes) : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bodyBytes);
      resolve({ body, wireBytes });
    };
    const take = (chunk: Buffer) => {
      bodyBytes += chunk.length;
      if (bodyBytes > maxBytes) {
        const which = gunzip ? 'decompressed request body' : 'request body';
        return fail(new BodyError(413, `${which} exceeds the limit of ${maxBytes} bytes`));
      }
      try {
        onBytes?.(bodyBytes);
      } catch (err) {
        return fail(err as Error);
      }
      if (whole) whole.set(chunk, bodyBytes - chunk.length);
      else chunks.push(chunk);
    };

    function onWireData(chunk: Buffer) {
      wireBytes += chunk.length;
      if (wireBytes > maxBytes) return fail(new BodyError(413, `request body exceeds the limit of ${maxBytes} bytes`));
      if (!gunzip) return take(chunk);
      // Backpressure: stop reading the socket while zlib works through its input.
      if (!gunzip.write(chunk)) {
        req.pause();
        gunzip.once('drain', () => settled || req.resume());
      }
    }
    function onWireEnd() {
      if (gunzip) gunzip.end();
      else finish();
    }
    function onWireError(err: Error) {
      fail(new ClientAbortedError(`client connection failed while sending the body: ${err.message}`));
    }
    function onClose() {
      if (!req.complete) fail(new ClientAbortedError('client closed the connection before the body was complete'));
    }

    if (gunzip) {
      gunzip.on('data', (chunk: Buffer) => settled || take(chunk));
      gunzip.on('end', finish);
      gunzip.on('error', (err: Error) =>
        fail(err instanceof DeclaredTooLargeError ? new BodyError(413, err.message) : new BodyError(400, `invalid ${options.coding} body: ${err.message}`)),
      );
    }
    req.on('data', onWireData);
    req.on('end', onWireEnd);
    req.on('error', onWireError);
    req.on('close', onClose);
  });
}
