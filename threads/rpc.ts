/**
 * Calls between the main thread and the consumer thread over a MessagePort:
 * `call` resolves with what the other side's handler returned (or rejects
 * with its error's message), `notify` expects no answer. Large payloads go
 * as transferred ArrayBuffers, never copied twice.
 */
import type { MessagePort, Transferable, Worker } from 'node:worker_threads';

type Port = MessagePort | Worker;
export type Handlers = Record<string, (args: never) => unknown>;

type Message =
  | { kind: 'call'; id: number; method: string; args: unknown }
  | { kind: 'notify'; method: string; args: unknown }
  | { kind: 'reply'; id: number; value: unknown }
  | { kind: 'fail'; id: number; name: string; message: string };

export class Rpc {
  private readonly port: Port;
  private readonly handlers: Handlers;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private nextId = 1;

  constructor(port: Port, handlers: Handlers) {
    this.port = port;
    this.handlers = handlers;
    port.on('message', (m: Message) => void this.receive(m));
  }

  call<T = unknown>(method: string, args?: unknown, transfer: Transferable[] = []): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.port.postMessage({ kind: 'call', id, method, args } satisfies Message, transfer);
    });
  }

  notify(method: string, args?: unknown): void {
    this.port.postMessage({ kind: 'notify', method, args } satisfies Message, []);
  }

  /** Fails every call still waiting (the other side is gone). */
  abandon(why: Error): void {
    for (const p of this.pending.values()) p.reject(why);
    this.pending.clear();
  }

  private async receive(m: Message): Promise<void> {
    if (m.kind === 'reply' || m.kind === 'fail') {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.kind === 'reply') p?.resolve(m.value);
      else p?.reject(Object.assign(new Error(m.message), { name: m.name }));
      return;
    }
    const handler = this.handlers[m.method] as ((args: unknown) => unknown) | undefined;
    if (m.kind === 'notify') {
      handler?.(m.args);
      return;
    }
    try {
      if (!handler) throw new Error(`no handler for ${m.method}`);
      const value = await handler(m.args);
      this.port.postMessage({ kind: 'reply', id: m.id, value } satisfies Message, []);
    } catch (err) {
      const e = err as Error;
      this.port.postMessage({ kind: 'fail', id: m.id, name: e.name ?? 'Error', message: e.message ?? String(err) } satisfies Message, []);
    }
  }
}

/** Copies byte arrays into one fresh buffer (its own ArrayBuffer, safe to transfer) and returns each one's length. */
export function pack(parts: readonly Uint8Array[]): { body: Uint8Array<ArrayBuffer>; lengths: number[] } {
  const body = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    body.set(p, at);
    at += p.byteLength;
  }
  return { body, lengths: parts.map((p) => p.byteLength) };
}

/** The parts `pack` joined, as views into `body`. */
export function unpack(body: Uint8Array, lengths: readonly number[]): Uint8Array[] {
  let at = 0;
  return lengths.map((n) => body.subarray(at, (at += n)));
}
