/**
 * An HTTP proxy in front of a real test server (the API simulator, the Qdrant stand-in),
 * for faults the server itself does not make: it forwards every request as it is, and a
 * test's `intercept` may answer a request itself instead (a quota the provider says is
 * gone, a write Qdrant refuses), or `rewrite` may change a forwarded answer's body (an
 * answer of the wrong shape). Both see the request's method, path and JSON body. A test
 * can also hold requests at a gate (`holdAfter`, `release`): the run then waits at a point
 * the test chose, instead of the test racing the server's latency.
 */
import { createServer, request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly body: unknown;
}

export interface ProxyAnswer {
  readonly status: number;
  readonly body: unknown;
}

export interface HttpProxy {
  readonly url: string;
  /** Answers a request instead of the server when it returns an answer. */
  intercept: (req: SeenRequest) => ProxyAnswer | undefined;
  /** Changes the body of a forwarded answer (JSON). */
  rewrite: (req: SeenRequest, status: number, body: unknown) => unknown;
  /** Requests answered by `intercept`. */
  intercepted(): number;
  /** Requests forwarded to the server so far (held ones count once let through). */
  forwarded(): number;
  /**
   * A gate: lets `n` forwarded requests through in all, then keeps the next ones waiting,
   * unanswered, until `release()` (a paused server, at a known point of the run).
   */
  holdAfter(n: number): void;
  /** Requests waiting at the gate (a request whose client closed its connection is dropped from it). */
  held(): number;
  /** Opens the gate: the waiting requests go on, and so do later ones. */
  release(): void;
  close(): Promise<void>;
}

function json(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

export async function startHttpProxy(target: string): Promise<HttpProxy> {
  const upstream = new URL(target);
  let intercepted = 0;
  let forwarded = 0;
  let holdAfter = Infinity;
  const waiting: (() => void)[] = [];
  const proxy: HttpProxy = {
    url: '',
    intercept: () => undefined,
    rewrite: (_req, _status, body) => body,
    intercepted: () => intercepted,
    forwarded: () => forwarded,
    holdAfter: (n) => void (holdAfter = n),
    held: () => waiting.length,
    release: () => {
      holdAfter = Infinity;
      for (const go of waiting.splice(0)) go();
    },
    close: async () => {
      holdAfter = Infinity;
      waiting.splice(0);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const seen: SeenRequest = {
        method: req.method ?? 'GET',
        path: (req.url ?? '/').split('?')[0] ?? '/',
        body: json(raw),
      };
      const answer = proxy.intercept(seen);
      if (answer) {
        intercepted += 1;
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
        return;
      }
      const headers: IncomingHttpHeaders = { ...req.headers, host: upstream.host };
      const forward = (): void => {
        forwarded += 1;
        const out = request(
          { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
          (answerStream) => {
            const parts: Buffer[] = [];
            answerStream.on('data', (c: Buffer) => parts.push(c));
            answerStream.on('end', () => {
              const body = Buffer.concat(parts);
              const parsed = json(body);
              const changed =
                parsed === undefined
                  ? body
                  : Buffer.from(JSON.stringify(proxy.rewrite(seen, answerStream.statusCode ?? 502, parsed)));
              const h = { ...answerStream.headers, 'content-length': String(changed.length) };
              delete h['transfer-encoding'];
              res.writeHead(answerStream.statusCode ?? 502, h).end(changed);
            });
          },
        );
        out.on('error', () => res.destroy());
        out.end(raw);
      };
      if (forwarded >= holdAfter) {
        waiting.push(forward);
        // a client that goes away while held (a killed worker) is dropped, never forwarded
        res.once('close', () => {
          const at = waiting.indexOf(forward);
          if (at >= 0) waiting.splice(at, 1);
        });
      } else forward();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(proxy, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
}
