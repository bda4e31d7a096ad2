import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { createHash, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { ObjectStoreError } from '../../src/object-store.js';
import type { ObjectInfo, ObjectStore } from '../../src/object-store.js';
import { createS3Store } from '../../src/s3-store.js';
import { startMinio } from '../support/minio.js';
import { createBucket, putObject, testS3Client } from '../support/s3.js';
import type { S3ForTest } from '../support/s3.js';

let s3: S3ForTest;
let client: S3Client;
let store: ObjectStore;
const bucket = `store-${randomUUID().slice(0, 8)}`;

const PAGED = ['paged/a.txt', 'paged/b.txt', 'paged/c.txt', 'paged/d.txt', 'paged/e.txt', 'paged/f.txt', 'paged/g.txt'];
const AWKWARD = [
  'odd/with space.txt',
  'odd/ünïcödé-日本語.txt',
  'odd/plus+sign.txt',
  'odd/100%.txt',
  'odd/hash#tag.txt',
];
const PHOTO = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function md5(body: string | Uint8Array): string {
  return createHash('md5').update(body).digest('hex');
}

async function listAll(
  prefix: string,
  pageSize: number,
): Promise<{ pages: ObjectInfo[][]; tokens: (string | undefined)[] }> {
  const pages: ObjectInfo[][] = [];
  const tokens: (string | undefined)[] = [];
  let token: string | undefined;
  do {
    const page = await store.listPage(bucket, prefix, token, pageSize);
    pages.push([...page.objects]);
    tokens.push(page.nextToken);
    token = page.nextToken;
  } while (token !== undefined);
  return { pages, tokens };
}

async function errorOf(promise: Promise<unknown>): Promise<ObjectStoreError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ObjectStoreError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

beforeAll(async () => {
  s3 = await startMinio();
  client = testS3Client(s3);
  store = createS3Store({ endpoint: s3.endpoint, credentials: s3.credentials, maxAttempts: 1 });
  await createBucket(client, bucket);
  for (const key of [...PAGED, ...AWKWARD]) await putObject(client, bucket, key, `content of ${key}`, 'text/plain');
  await putObject(client, bucket, 'media/photo.bin', PHOTO, 'application/octet-stream');
});

afterAll(async () => {
  client?.destroy();
  await s3?.close();
});

describe('the S3 store against MinIO', () => {
  it('lists seven keys in three pages of at most three, in key order, with a token between pages', async () => {
    const { pages, tokens } = await listAll('paged/', 3);
    expect(pages.map((p) => p.map((o) => o.key))).toEqual([PAGED.slice(0, 3), PAGED.slice(3, 6), PAGED.slice(6)]);
    expect(tokens[0]).toEqual(expect.any(String));
    expect(tokens[1]).toEqual(expect.any(String));
    expect(tokens[2]).toBeUndefined();
  });

  it('reports bucket, size, unquoted ETag and an ISO date for every listed object', async () => {
    const page = await store.listPage(bucket, 'paged/a', undefined, 10);
    expect(page.objects).toEqual([
      {
        bucket,
        key: 'paged/a.txt',
        etag: md5('content of paged/a.txt'),
        size: Buffer.byteLength('content of paged/a.txt'),
        lastModified: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/),
      },
    ]);
    expect(page.nextToken).toBeUndefined();
  });

  it('lists only keys under the prefix', async () => {
    const { pages } = await listAll('odd/', 1000);
    expect(
      pages
        .flat()
        .map((o) => o.key)
        .sort(),
    ).toEqual([...AWKWARD].sort());
  });

  it('round-trips keys with spaces, unicode, plus, percent and hash through list and get', async () => {
    const { pages } = await listAll('odd/', 2);
    const listed = pages.flat().map((o) => o.key);
    expect(listed.sort()).toEqual([...AWKWARD].sort());
    for (const key of listed) {
      const got = await store.get(bucket, key);
      expect(Buffer.from(got.bytes).toString('utf8')).toBe(`content of ${key}`);
    }
  });

  it('reads a whole object with its ETag and content type', async () => {
    const got = await store.get(bucket, 'media/photo.bin');
    expect(Buffer.from(got.bytes).equals(PHOTO)).toBe(true);
    expect(got.etag).toBe(md5(PHOTO));
    expect(got.contentType).toBe('application/octet-stream');
  });

  it('reads only the inclusive byte range asked for', async () => {
    const got = await store.get(bucket, 'media/photo.bin', [10, 19]);
    expect([...got.bytes]).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  });

  it("tells a range read's whole size and time, the same as HEAD says", async () => {
    const got = await store.get(bucket, 'media/photo.bin', [10, 19]);
    const head = await store.head(bucket, 'media/photo.bin');
    expect({ size: got.size, lastModified: got.lastModified }).toEqual({
      size: PHOTO.length,
      lastModified: head?.lastModified,
    });
  });

  it('presigns a GET that plain fetch can download, for an awkward key too', async () => {
    for (const key of ['media/photo.bin', 'odd/hash#tag.txt', 'odd/ünïcödé-日本語.txt']) {
      const url = await store.presign(bucket, key, 60);
      expect(url).toContain('X-Amz-Signature=');
      const response = await fetch(url);
      const body = Buffer.from(await response.arrayBuffer());
      expect(response.status).toBe(200);
      expect(body.equals(key === 'media/photo.bin' ? PHOTO : Buffer.from(`content of ${key}`))).toBe(true);
    }
  });

  it('turns a missing key into a gone error that names bucket and key', async () => {
    const err = await errorOf(store.get(bucket, 'paged/missing.txt'));
    expect(err.decision).toBe('gone');
    expect(err.code).toBe('NoSuchKey');
    expect(err.message).toContain(`s3://${bucket}/paged/missing.txt`);
  });

  it('turns a missing bucket into an other error, not gone, for listing and reading', async () => {
    const listErr = await errorOf(store.listPage('no-such-bucket-here', ''));
    expect(listErr.decision).toBe('request');
    expect(listErr.code).toBe('NoSuchBucket');
    expect(listErr.message).toContain('no-such-bucket-here');
    const getErr = await errorOf(store.get('no-such-bucket-here', 'a.txt'));
    expect(getErr.decision).toBe('request');
    expect(getErr.code).toBe('NoSuchBucket');
  });

  it('gives a single-part upload an ETag without quotes equal to the MD5 of its content', async () => {
    const body = `etag check ${randomUUID()}`;
    await putObject(client, bucket, 'etag/one.txt', body);
    const [listed] = (await store.listPage(bucket, 'etag/')).objects;
    const got = await store.get(bucket, 'etag/one.txt');
    expect(listed?.etag).toBe(md5(body));
    expect(got.etag).toBe(md5(body));
    expect(got.etag).not.toContain('"');
  });

  it('counts object downloads separately from listings', async () => {
    const before = await s3.requestCount();
    await store.listPage(bucket, 'paged/', undefined, 3);
    const afterList = await s3.requestCount();
    await store.get(bucket, 'paged/a.txt');
    const afterGet = await s3.requestCount();
    expect(afterList).toEqual({ ...before, list: before.list + 1 });
    expect(afterGet).toEqual({ ...afterList, get: afterList.get + 1 });
  });

  it("gives a multipart upload the store's ETag (MD5 of the part MD5s, then -N) in listing and get alike", async () => {
    const part1 = Buffer.alloc(5 * 1024 * 1024, 7);
    const part2 = Buffer.from('the last part');
    const key = 'etag/multipart.bin';
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const parts = [];
    for (const [i, body] of [part1, part2].entries()) {
      const out = await client.send(
        new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: body }),
      );
      parts.push({ PartNumber: i + 1, ETag: out.ETag });
    }
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }),
    );
    const expected = `${createHash('md5')
      .update(Buffer.concat([createHash('md5').update(part1).digest(), createHash('md5').update(part2).digest()]))
      .digest('hex')}-2`;
    const listed = (await store.listPage(bucket, key)).objects;
    expect(listed.map((o) => [o.etag, o.size])).toEqual([[expected, part1.length + part2.length]]);
    expect((await store.head(bucket, key))?.etag).toBe(expected);
    expect((await store.get(bucket, key, [0, 3])).etag).toBe(expected);
  });

  it("pages a listing of 1,003 keys at the store's own page size of 1,000", async () => {
    const keys = Array.from({ length: 1003 }, (_, i) => `many/${String(i).padStart(4, '0')}.txt`);
    for (let i = 0; i < keys.length; i += 50)
      await Promise.all(keys.slice(i, i + 50).map((k) => putObject(client, bucket, k, 'x')));
    const { pages, tokens } = await listAll('many/', 1000);
    expect(pages.map((p) => p.length)).toEqual([1000, 3]);
    expect(pages.flat().map((o) => o.key)).toEqual(keys);
    expect(tokens[1]).toBeUndefined();
  });

  it('turns a wrong secret into a denied SignatureDoesNotMatch without leaking the secret', async () => {
    const wrong = createS3Store({
      endpoint: s3.endpoint,
      credentials: { accessKeyId: s3.credentials.accessKeyId, secretAccessKey: 'not-the-secret-0123' },
      maxAttempts: 1,
    });
    const err = await errorOf(wrong.listPage(bucket, 'paged/'));
    expect(err.decision).toBe('fatal');
    expect(err.code).toBe('SignatureDoesNotMatch');
    expect(err.message).toContain(`s3://${bucket}/paged/`);
    expect(err.message).not.toContain('not-the-secret-0123');
  });

  it('turns an unknown access key into a denied InvalidAccessKeyId', async () => {
    const stranger = createS3Store({
      endpoint: s3.endpoint,
      credentials: { accessKeyId: 'NOSUCHKEY123', secretAccessKey: 'whatever-secret' },
      maxAttempts: 1,
    });
    const err = await errorOf(stranger.get(bucket, 'paged/a.txt'));
    expect(err.decision).toBe('fatal');
    expect(err.code).toBe('InvalidAccessKeyId');
  });

  it('presigns URLs that the store refuses once they expire', async () => {
    const url = await store.presign(bucket, 'paged/a.txt', 1);
    await new Promise((r) => setTimeout(r, 2_100));
    const response = await fetch(url);
    const body = await response.text();
    expect(response.status).toBe(403);
    expect(body).toContain('<Code>AccessDenied</Code>');
    expect(body).toContain('expired');
  });

  it('classifies a refused connection as transient after the configured attempts', async () => {
    const down = createS3Store({
      endpoint: 'http://127.0.0.1:1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      maxAttempts: 2,
    });
    const err = await errorOf(down.get(bucket, 'paged/a.txt'));
    expect(err.decision).toBe('retryable');
    expect(err.code).toBe('ECONNREFUSED');
    expect(err.message).toContain(`s3://${bucket}/paged/a.txt`);
  });
});

// MinIO cannot be told to throttle or fail one call, so these answer like S3 does from a scripted server.
describe('the S3 store against scripted S3 errors', () => {
  const SECRET = 'secret-that-must-not-leak';
  let answers: { status: number; code: string }[] = [];
  let hits = 0;
  const server = createServer((req, res) => {
    hits += 1;
    req.resume();
    const answer = answers.shift();
    if (!answer) {
      res.writeHead(200, { 'content-type': 'text/plain', etag: '"abc"', 'content-length': '2' }).end('ok');
      return;
    }
    const xml = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${answer.code}</Code><Message>scripted ${answer.code}</Message><RequestId>req-1</RequestId></Error>`;
    res.writeHead(answer.status, { 'content-type': 'application/xml' }).end(xml);
  });
  let scripted: (maxAttempts: number) => ObjectStore;

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    scripted = (maxAttempts) =>
      createS3Store({ endpoint, credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: SECRET }, maxAttempts });
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('lets the SDK retry throttling until an attempt succeeds', async () => {
    answers = [
      { status: 503, code: 'SlowDown' },
      { status: 503, code: 'SlowDown' },
    ];
    hits = 0;
    const got = await scripted(3).get('b', 'k.txt');
    expect(Buffer.from(got.bytes).toString()).toBe('ok');
    expect(got.etag).toBe('abc');
    expect(hits).toBe(3);
  });

  it('gives up after maxAttempts with a transient error', async () => {
    answers = [
      { status: 503, code: 'SlowDown' },
      { status: 503, code: 'SlowDown' },
      { status: 503, code: 'SlowDown' },
    ];
    hits = 0;
    const err = await errorOf(scripted(2).get('b', 'k.txt'));
    expect(err.decision).toBe('retryable');
    expect(err.code).toBe('SlowDown');
    expect(hits).toBe(2);
  });

  it('turns AccessDenied into a denied error without retrying or leaking the secret', async () => {
    answers = [{ status: 403, code: 'AccessDenied' }];
    hits = 0;
    const err = await errorOf(scripted(5).get('b', 'k.txt'));
    expect(err.decision).toBe('fatal');
    expect(err.code).toBe('AccessDenied');
    expect(err.message).toContain('s3://b/k.txt');
    expect(err.message).not.toContain(SECRET);
    expect(hits).toBe(1);
  });

  it('turns InvalidAccessKeyId on a listing into a denied error', async () => {
    answers = [{ status: 403, code: 'InvalidAccessKeyId' }];
    const err = await errorOf(scripted(1).listPage('b', 'docs/'));
    expect(err.decision).toBe('fatal');
    expect(err.code).toBe('InvalidAccessKeyId');
    expect(err.message).toContain('s3://b/docs/');
  });

  it('turns an internal error into a transient error naming the request id', async () => {
    answers = [{ status: 500, code: 'InternalError' }];
    const err = await errorOf(scripted(1).get('b', 'k.txt'));
    expect(err.decision).toBe('retryable');
    expect(err.message).toContain('req-1');
  });
});
