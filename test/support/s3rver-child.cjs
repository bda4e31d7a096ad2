/* global require, process */
'use strict';
// Runs s3rver in its own process, started by test/support/s3.ts. It is a separate process
// because s3rver's continuation tokens use DES, which Node 20's OpenSSL only allows with
// --openssl-legacy-provider, and that flag must not leak into the jest process.
//
// Usage: node s3rver-child.cjs <directory>. Talks to its parent over IPC only:
// sends { type: 'ready', port } once listening (or { type: 'failed', message }),
// answers { type: 'count', id } with { type: 'count', id, counts }, and exits on
// { type: 'close' } or when the parent goes away.
//
// Requests are counted as they arrive, from the path-style URL (the parent uses
// 127.0.0.1, so s3rver never treats the host as a virtual-host bucket):
// HEAD anything -> head; GET /bucket or /bucket/ -> list; GET /bucket/key -> get.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS script by design
const S3rver = require('s3rver');

const directory = process.argv[2];
const counts = { get: 0, list: 0, head: 0 };

function countRequest(req) {
  const path = (req.url || '/').split('?')[0];
  const segments = path.split('/').filter((s) => s !== '');
  if (req.method === 'HEAD') counts.head += 1;
  else if (req.method === 'GET' && segments.length === 1) counts.list += 1;
  else if (req.method === 'GET' && segments.length > 1) counts.get += 1;
}

const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });

server.run().then(
  (address) => {
    // prependListener: count before Koa handles (and possibly fails) the request.
    server.httpServer.prependListener('request', countRequest);
    process.send({ type: 'ready', port: address.port });
  },
  (err) => {
    process.send({ type: 'failed', message: String(err && err.stack ? err.stack : err) }, () => process.exit(1));
  },
);

function shutdown() {
  // Open keep-alive sockets would hold close() forever; the parent is done with them.
  if (server.httpServer && typeof server.httpServer.closeAllConnections === 'function') {
    server.httpServer.closeAllConnections();
  }
  server.close().then(
    () => process.exit(0),
    () => process.exit(0),
  );
}

process.on('message', (msg) => {
  if (msg && msg.type === 'count') process.send({ type: 'count', id: msg.id, counts: { ...counts } });
  else if (msg && msg.type === 'close') shutdown();
});
process.on('disconnect', shutdown);
