/**
 * A small S3-protocol server of the benchmark's own that serves generated buckets
 * (bench/lib/gen-store.ts): `gen-<count>` holds `count` short texts, listed in key order
 * 1,000 a page, read whole or by range. It answers only what the pipeline asks of a store
 * (HeadBucket, ListObjectsV2 with prefix, continuation token, max-keys and URL encoding,
 * HeadObject, GetObject) and checks no signature. Prints `gen-s3 listening on URL`; SIGTERM
 * stops it. Benchmark code, not product: it stands in for a store holding a million
 * objects, which cannot be filled on this machine in reasonable time.
 */
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import { GEN_MTIME, genBody, genCount, genEtag, genIndex, genKey } from './lib/gen-store.js';

const xml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const mtime = GEN_MTIME.toISOString();
const httpDate = GEN_MTIME.toUTCString();

function notFound(res: ServerResponse, code: string, head: boolean): void {
  res.writeHead(404, { 'content-type': 'application/xml' });
  res.end(
    head
      ? undefined
      : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`,
  );
}

/** The first object number whose key is >= `key` (keys grow with the number). */
function firstAtOrAfter(key: string, count: number): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (genKey(mid) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const [, bucket = '', ...rest] = url.pathname.split('/');
  const key = decodeURIComponent(rest.join('/'));
  const count = genCount(bucket);
  const head = req.method === 'HEAD';
  req.resume();
  if (count === undefined) return notFound(res, 'NoSuchBucket', head);
  if (key === '') {
    if (head) {
      res.writeHead(200);
      return res.end();
    }
    const prefix = url.searchParams.get('prefix') ?? '';
    const maxKeys = Math.min(1000, Math.max(1, Number(url.searchParams.get('max-keys') ?? 1000)));
    const token = url.searchParams.get('continuation-token');
    const encode = url.searchParams.get('encoding-type') === 'url';
    let i = token ? Number(token) : firstAtOrAfter(prefix, count);
    const parts: string[] = [];
    let n = 0;
    for (; i < count && n < maxKeys; i++) {
      const k = genKey(i);
      if (!k.startsWith(prefix)) {
        i = count;
        break;
      }
      const body = genBody(i);
      parts.push(
        `<Contents><Key>${encode ? encodeURIComponent(k) : xml(k)}</Key><LastModified>${mtime}</LastModified><ETag>&quot;${genEtag(body)}&quot;</ETag><Size>${body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
      );
      n++;
    }
    const truncated = i < count && genKey(i).startsWith(prefix);
    res.writeHead(200, { 'content-type': 'application/xml' });
    return res.end(
      `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${bucket}</Name><Prefix>${xml(prefix)}</Prefix><KeyCount>${n}</KeyCount><MaxKeys>${maxKeys}</MaxKeys>${encode ? '<EncodingType>url</EncodingType>' : ''}<IsTruncated>${truncated}</IsTruncated>${token ? `<ContinuationToken>${token}</ContinuationToken>` : ''}${truncated ? `<NextContinuationToken>${i}</NextContinuationToken>` : ''}${parts.join('')}</ListBucketResult>`,
    );
  }
  const i = genIndex(key, count);
  if (i === undefined) return notFound(res, 'NoSuchKey', head);
  const body = genBody(i);
  const headers = {
    'content-type': 'text/plain',
    etag: `"${genEtag(body)}"`,
    'last-modified': httpDate,
    'accept-ranges': 'bytes',
  };
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    if (start >= body.length) {
      res.writeHead(416, { 'content-type': 'application/xml' });
      return res.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message></Error>',
      );
    }
    const end = Math.min(body.length - 1, range[2] ? Number(range[2]) : body.length - 1);
    const slice = body.subarray(start, end + 1);
    res.writeHead(206, {
      ...headers,
      'content-length': slice.length,
      'content-range': `bytes ${start}-${end}/${body.length}`,
    });
    return res.end(head ? undefined : slice);
  }
  res.writeHead(200, { ...headers, 'content-length': body.length });
  res.end(head ? undefined : body);
});

server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  process.stdout.write(`gen-s3 listening on http://127.0.0.1:${port}\n`);
});
const stop = (): void => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
