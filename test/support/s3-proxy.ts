/**
 * An HTTP proxy in front of a test's S3 server, for a producer that must meet a store
 * that goes away or stalls at a known point of its listing: it forwards every request
 * as it is (the Host header too, so signatures stay valid) and counts listings, and the
 * test can
 * - `holdAfterLists(n)`: let n listings through, then keep the next ones waiting (the
 *   scanner is then blocked between two pages, at a known place) until `release()`;
 * - `dieAfterLists(n)`: after n listings, reset every new connection (the endpoint is
 *   gone) until `revive()`;
 * - `respond`: answer a request itself (an error the store would send, as S3 sends it).
 */
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An answer the proxy sends instead of the store's. */
export interface S3Answer {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface S3Proxy {
  /** `http://127.0.0.1:<port>`: use it as S3_ENDPOINT. */
  readonly endpoint: string;
  /** Listing requests forwarded so far. */
  lists(): number;
  /** How many keys each forwarded listing answered with (its KeyCount), in order. */
  listKeyCounts(): number[];
  /** Listing requests waiting at a hold. */
  held(): number;
  holdAfterLists(n: number): void;
  release(): void;
  dieAfterLists(n: number): void;
  revive(): void;
  /** Answers a request (method, path, query string) instead of the store when it returns an answer. */
  respond: (method: string, path: string, query: string) => S3Answer | undefined;
  /** Requests answered by `respond`. */
  responded(): number;
  close(): Promise<void>;
}

const isList = (method: string | undefined, url: string | undefined): boolean => {
  const path = (url ?? '/').split('?')[0] ?? '/';
  return method === 'GET' && path.split('/').filter((s) => s !== '').length === 1;
};

export async function startS3Proxy(target: string): Promise<S3Proxy> {
  const upstream = new URL(target);
  let lists = 0;
  const keyCounts: number[] = [];
  let dieAfter = Infinity;
  let holdAfter = Infinity;
  const waiting: (() => void)[] = [];
  let responded = 0;
  const hooks = { respond: (() => undefined) as S3Proxy['respond'] };

  const server = createServer((req, res) => {
    const list = isList(req.method, req.url);
    const [path = '/', query = ''] = (req.url ?? '/').split('?');
    const answer = hooks.respond(req.method ?? 'GET', decodeURIComponent(path), query);
    if (answer) {
      responded += 1;
      req.resume();
      res.writeHead(answer.status, { 'content-type': 'application/xml', ...answer.headers }).end(answer.body);
      return;
    }
    if (lists >= dieAfter) {
      req.socket.destroy();
      return;
    }
    const forward = (): void => {
      if (list) lists += 1;
      const out = request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          if (list) {
            const parts: Buffer[] = [];
            answer.on('data', (c: Buffer) => parts.push(c));
            answer.on('end', () =>
              keyCounts.push(
                Number(/<KeyCount>(\d+)<\/KeyCount>/.exec(Buffer.concat(parts).toString('utf8'))?.[1] ?? -1),
              ),
            );
          }
          answer.pipe(res);
        },
      );
      out.on('error', () => res.destroy());
      req.pipe(out);
    };
    if (list && lists >= holdAfter) waiting.push(forward);
    else forward();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get respond() {
      return hooks.respond;
    },
    set respond(fn) {
      hooks.respond = fn;
    },
    responded: () => responded,
    lists: () => lists,
    listKeyCounts: () => [...keyCounts],
    held: () => waiting.length,
    holdAfterLists: (n) => void (holdAfter = n),
    release: () => {
      holdAfter = Infinity;
      for (const go of waiting.splice(0)) go();
    },
    dieAfterLists: (n) => void (dieAfter = n),
    revive: () => void (dieAfter = Infinity),
    close: async () => {
      holdAfter = Infinity;
      waiting.splice(0);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
