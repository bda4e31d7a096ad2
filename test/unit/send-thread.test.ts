import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { SendThread, decodeAnswer } from '../../src/send-thread.js';

describe('the send thread', () => {
  let server: Server;
  let url: string;
  /** Each request the server received: when (this thread's performance.now()), its path, headers and body. */
  const received: { at: number; path: string; auth: string | undefined; body: string }[] = [];
  const thread = new SendThread();

  beforeAll(async () => {
    server = createServer((req, res) => {
      const at = performance.now();
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        received.push({ at, path: req.url ?? '', auth: req.headers.authorization, body });
        // /never answers (a timeout), /throttled is a 429 with Retry-After
        if (req.url === '/never') return;
        if (req.url === '/unicode') return res.end('{"message":"qualit\u00e9 \u4e2d\u6587 \ud83d\ude00"}');
        if (req.url === '/throttled') {
          res.writeHead(429, { 'retry-after': '7' });
          return res.end('{"code":"Throttling.RateQuota"}');
        }
        res.end(`{"echo":${JSON.stringify(body)}}`);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await thread.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const post = (path: string, dueAt: number, toleranceMs = Infinity, timeoutMs = 5000) => ({
    url: `${url}${path}`,
    headers: { authorization: 'Bearer sk-send-thread-test', 'content-type': 'application/json' },
    body: `{"path":"${path}"}`,
    dueAt,
    toleranceMs,
    timeoutMs,
  });

  it('sends at its due time, never before, and hands back the status, Retry-After and text', async () => {
    const dueAt = performance.now() + 150;
    const out = await thread.post(post('/ok', dueAt));
    const got = received.find((r) => r.path === '/ok');
    expect(got?.at).toBeGreaterThanOrEqual(dueAt);
    expect(got?.auth).toBe('Bearer sk-send-thread-test');
    expect(got?.body).toBe('{"path":"/ok"}');
    expect(out).toMatchObject({
      kind: 'answer',
      status: 200,
      retryAfter: null,
      text: '{"echo":"{\\"path\\":\\"/ok\\"}"}',
    });
    const throttled = await thread.post(post('/throttled', 0));
    expect(throttled).toMatchObject({ kind: 'answer', status: 429, retryAfter: '7' });
  });

  it('once ready, a fresh thread sends its first request at once: it is not late for a slot due now', async () => {
    // booting a thread takes 50 ms and more; a first request handed over before that made
    // the caller give its slot back (a late wake-up at every worker's start)
    const fresh = new SendThread();
    try {
      await fresh.ready();
      const out = await fresh.post(post('/first', performance.now(), 20));
      expect(out.kind).toBe('answer');
      expect(received.some((r) => r.path === '/first')).toBe(true);
    } finally {
      await fresh.close();
    }
  });

  it('does not send a request handed over later than its tolerance after its due time', async () => {
    const before = received.length;
    const out = await thread.post(post('/late', performance.now() - 80, 15));
    expect(out.kind).toBe('late');
    expect(out.kind === 'late' && out.lateMs).toBeGreaterThan(15);
    expect(received.length).toBe(before);
  });

  it('sends nothing when aborted while it waits, and rejects with the reason', async () => {
    const before = received.length;
    const ctl = new AbortController();
    const sending = thread.post(post('/aborted', performance.now() + 500), ctl.signal);
    setTimeout(() => ctl.abort(new Error('worker stopping')), 30);
    await expect(sending).rejects.toThrow('worker stopping');
    // past the due time: the request never left
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(received.length).toBe(before);
    expect(received.some((r) => r.path === '/aborted')).toBe(false);
  });

  it('reports a refused connection by its code, and a request unanswered within its timeout as a timeout', async () => {
    // a port nothing listens on: one a server just gave up
    const gone = createServer();
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const port = (gone.address() as AddressInfo).port;
    await new Promise((resolve) => gone.close(resolve));
    const refused = await thread.post({ ...post('/x', 0), url: `http://127.0.0.1:${port}/x` });
    expect(refused).toEqual({ kind: 'error', timeout: false, cause: 'ECONNREFUSED' });
    const never = await thread.post(post('/never', 0, Infinity, 300));
    expect(never).toMatchObject({ kind: 'error', timeout: true });
  });

  it("hands back a non-ASCII answer's text as UTF-8 decodes it", async () => {
    const out = await thread.post(post('/unicode', 0));
    expect(out).toMatchObject({
      kind: 'answer',
      status: 200,
      text: '{"message":"qualit\u00e9 \u4e2d\u6587 \ud83d\ude00"}',
    });
  });
});

describe("an answer's bytes as text", () => {
  const utf8 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

  it('is what UTF-8 decoding gives, for ASCII, for other UTF-8 and for bytes that are not UTF-8', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => decodeAnswer(bytes) === utf8(bytes)),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
        const bytes = Buffer.from(text, 'utf8');
        return (
          decodeAnswer(bytes) === text &&
          decodeAnswer(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)) === text
        );
      }),
      { numRuns: 500 },
    );
    // an answer of vectors, large enough to be decoded outside V8's heap
    const answer = JSON.stringify({
      output: {
        embeddings: Array.from({ length: 20 }, (_, i) => ({
          index: i,
          embedding: Array.from({ length: 2560 }, (_, k) => Math.sin(i * 2560 + k) / 7),
        })),
      },
    });
    const bytes = Buffer.from(answer);
    expect(bytes.length).toBeGreaterThan(1_031_913); // Node makes longer latin1 strings external
    expect(decodeAnswer(bytes)).toBe(answer);
    expect(JSON.parse(decodeAnswer(bytes))).toEqual(JSON.parse(answer));
    // one byte past ASCII in it: decoded as UTF-8, not byte by byte
    const odd = Buffer.concat([bytes.subarray(0, 1000), Buffer.from('\u00e9'), bytes.subarray(1000)]);
    expect(decodeAnswer(odd)).toBe(utf8(odd));
    expect(decodeAnswer(odd)).not.toBe(odd.toString('latin1'));
  });
});
