// The stand-in's HTTP server (node:http only).
//
// State: one `Store` per server (so parallel test files never share collections), the open
// sockets (so `close()` does not wait for the client's keep-alive pool), and request counters
// for `stats()`, keyed by "METHOD /path/{pattern}".

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { collectionRoutes } from './collection-routes.js';
import { QdrantHttpError } from './errors.js';
import { MAX_REQUEST_BYTES, errorReply, okReply, readJsonBody, type Reply } from './http.js';
import { payloadRoutes } from './payload-routes.js';
import { pointRoutes } from './point-routes.js';
import { matchPattern, type Route } from './routes.js';
import { Store } from './store.js';

export interface QdrantStandinOptions {
  port?: number;
  host?: string;
  /** Request body limit; Qdrant's default `max_request_size_mb` is 32. */
  maxRequestBytes?: number;
}

export interface QdrantStandin {
  url: string;
  close(): Promise<void>;
  stats(): { requests: number; byRoute: Record<string, number> };
}

const ROUTES: readonly Route[] = [...collectionRoutes, ...pointRoutes, ...payloadRoutes];

function findRoute(method: string, pathname: string): { route: Route; params: Record<string, string> } | undefined {
  for (const route of ROUTES) {
    if (route.method !== method) continue;
    const params = matchPattern(route.pattern, pathname);
    if (params !== undefined) return { route, params };
  }
  return undefined;
}

function send(res: ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, {
    'content-type': reply.contentType,
    'content-length': Buffer.byteLength(reply.body),
  });
  res.end(reply.body);
}

export async function startQdrantStandin(opts: QdrantStandinOptions = {}): Promise<QdrantStandin> {
  const store = new Store();
  const limit = opts.maxRequestBytes ?? MAX_REQUEST_BYTES;
  const counters = { requests: 0, byRoute: {} as Record<string, number> };
  const sockets = new Set<Socket>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const url = new URL(req.url ?? '/', 'http://qdrant-standin');
    const found = findRoute(req.method ?? 'GET', url.pathname);
    const routeKey = found ? `${found.route.method} ${found.route.pattern}` : 'unmatched';
    counters.requests += 1;
    counters.byRoute[routeKey] = (counters.byRoute[routeKey] ?? 0) + 1;
    if (found === undefined) {
      // actix's default service: 404 with an empty body.
      req.resume();
      res.writeHead(404, { 'content-length': 0 });
      res.end();
      return;
    }
    const { route, params } = found;
    let reply: Reply;
    try {
      let body: unknown;
      if (route.body) body = await readJsonBody(req, limit);
      else req.resume();
      const ctx = { store, params, query: url.searchParams, body };
      reply = route.raw ? route.raw(ctx) : okReply(route.handle?.(ctx), started);
    } catch (error) {
      const known =
        error instanceof QdrantHttpError
          ? error
          : new QdrantHttpError(
              500,
              `Service internal error: ${error instanceof Error ? error.message : String(error)}`,
            );
      reply = errorReply(known, started);
    }
    send(res, reply);
  }

  const server = createServer((req, res) => {
    void handle(req, res);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://${host}:${port}`,
    stats: () => ({ requests: counters.requests, byRoute: { ...counters.byRoute } }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        for (const socket of sockets) socket.destroy();
      }),
  };
}
