/**
 * A local OpenAI-compatible HTTP server for agent tests: real SDKs send real
 * requests (Chat Completions, streaming or not) and get a canned completion
 * with the usage the test chose, so every token count — and so every cost —
 * is known in advance. It also answers as an HTTP proxy (absolute-form
 * request targets), so an agent can address `http://api.deepseek.com/v1` or
 * an Azure resource by name and still reach it (absolute-form requests, or
 * CONNECT tunnels): the spans then carry the real provider's host.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Usage {
  prompt: number;
  /** Of prompt, read from the prompt cache (prompt_tokens_details.cached_tokens). */
  cached: number;
  completion: number;
  /** Of completion, reasoning (completion_tokens_details.reasoning_tokens). */
  reasoning: number;
}

export interface SeenRequest {
  /** Host the client addressed (the Host header; the real API's name when it came through the proxy). */
  host: string;
  path: string;
  model: string;
  stream: boolean;
}

export interface FakeOpenAi {
  /** Base URL to give an SDK directly (`…/v1`). */
  baseUrl: string;
  /** URL to give an SDK as its HTTP proxy. */
  proxyUrl: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

const body = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });

/** `usageOf(model)`: the usage reported for a request of that model. */
export async function startFakeOpenAi(usageOf: (model: string) => Usage): Promise<FakeOpenAi> {
  const requests: SeenRequest[] = [];
  let n = 0;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const target = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
      let request: { model?: unknown; stream?: unknown; stream_options?: { include_usage?: unknown } };
      try {
        request = JSON.parse(await body(req)) as typeof request;
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'body is not JSON' } }));
        return;
      }
      const model = typeof request.model === 'string' ? request.model : '';
      if (req.method !== 'POST' || !target.pathname.endsWith('/chat/completions') || model === '') {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `no ${req.method} ${target.pathname} for model ${JSON.stringify(model)}` } }));
        return;
      }
      const stream = request.stream === true;
      requests.push({ host: target.host, path: target.pathname, model, stream });
      const u = usageOf(model);
      const usage = {
        prompt_tokens: u.prompt,
        completion_tokens: u.completion,
        total_tokens: u.prompt + u.completion,
        prompt_tokens_details: { cached_tokens: u.cached },
        completion_tokens_details: { reasoning_tokens: u.reasoning },
      };
      const id = `chatcmpl-${++n}`;
      const created = Math.floor(Date.now() / 1000);
      const text = 'All tests pass.';
      if (!stream) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            id,
            object: 'chat.completion',
            created,
            model,
            choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
            usage,
          }),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const chunk = (delta: object, finish: string | null, extra: object = {}) =>
        res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`);
      chunk({ role: 'assistant', content: '' }, null);
      for (const word of text.split(/(?<= )/)) chunk({ content: word }, null);
      chunk({}, 'stop');
      // OpenAI sends usage in a last chunk without choices when stream_options.include_usage is set.
      if (request.stream_options?.include_usage === true) res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`);
      res.end('data: [DONE]\n\n');
    })().catch((err: unknown) => {
      res.writeHead(500).end(String(err));
    });
  });
  // Proxies that tunnel even plain HTTP (undici's, under NODE_USE_ENV_PROXY) send CONNECT first: serve the tunnel ourselves.
  server.on('connect', (_req, socket, head) => {
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) socket.unshift(head);
    server.emit('connection', socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    proxyUrl: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
