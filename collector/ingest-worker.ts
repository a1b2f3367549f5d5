/**
 * Worker thread of the ingest pool (collector/workers.ts): runs
 * prepareRequest for bodies too large to decode on the event loop, and
 * sends back the result or the error's kind and message.
 */
import { parentPort } from 'node:worker_threads';
import { OtlpDecodeError } from '../otlp/codec.ts';
import { prepareRequest, type IngestInput } from './ingest.ts';
import { RequestTooLargeError } from './limits.ts';

export interface WorkerRequest {
  id: number;
  input: IngestInput;
}

export type WorkerReply =
  | { id: number; result: ReturnType<typeof prepareRequest> }
  | { id: number; error: { kind: 'decode' | 'too-large' | 'internal'; message: string } };

parentPort!.on('message', ({ id, input }: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    reply = { id, result: prepareRequest(input) };
  } catch (err) {
    const kind = err instanceof OtlpDecodeError ? 'decode' : err instanceof RequestTooLargeError ? 'too-large' : 'internal';
    reply = { id, error: { kind, message: (err as Error)?.message ?? String(err) } };
  }
  parentPort!.postMessage(reply);
});
