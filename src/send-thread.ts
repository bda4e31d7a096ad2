/**
 * A thread of its own for the embedding API's HTTP requests, so that a request leaves at
 * its rate-limit slot although the worker's event loop is busy: parsing a megabyte of
 * vectors from the last answer, building Qdrant's points, BullMQ's own work. Measured on
 * the pacing benchmark, the worker's loop stalls 20 ms at the 99th percentile and up to
 * 115 ms, and a stall between the slot and the socket write moves the request's arrival
 * at the provider by as much: a few such arrivals a run crowd a provider second and come
 * back 429 (rate-limit-clock.ts: a 2.5% margin tolerates 26 ms).
 *
 * The main thread still waits for its slot, checks it (a lower learned rate, a late
 * wake-up) and hands the request over `leadMs` before it is due. The thread, whose loop
 * does nothing else, waits out the rest, sends, and hands the answer's status, Retry-After
 * and body back; parsing stays on the main thread (it would stall the other sends here).
 * A request the thread could not start within its tolerance is not sent: the caller takes
 * another slot.
 *
 * The thread's code is plain JavaScript evaluated by `new Worker(code, { eval: true })`:
 * it needs no loader, so it runs the same from the compiled package, from tsx and under
 * jest. It keeps its own keep-alive connections.
 */
import { isAscii } from 'node:buffer';
import { Worker } from 'node:worker_threads';

/**
 * An answer's bytes as text, exactly as UTF-8 decodes them. An answer of vectors is ASCII,
 * whose latin1 decoding is the same text at half the CPU of UTF-8's (0.6 ms against 1.3 ms
 * for the megabyte of 20 vectors of 2,560 numbers); any other answer is decoded as UTF-8.
 */
export function decodeAnswer(body: ArrayBuffer | Uint8Array): string {
  const bytes =
    body instanceof Uint8Array ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : Buffer.from(body);
  return bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8');
}

export interface TimedPost {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** performance.now() time (this thread's clock) not to send before. */
  readonly dueAt: number;
  /** How late after `dueAt` the request may still leave (Infinity: whenever). */
  readonly toleranceMs: number;
  readonly timeoutMs: number;
}

export type PostOutcome =
  | { readonly kind: 'late'; readonly lateMs: number }
  | {
      readonly kind: 'answer';
      readonly status: number;
      readonly retryAfter: string | null;
      readonly text: string;
      /** From the hand-over to the send, and from the send to the answer (ms). */
      readonly waitedMs: number;
      readonly tookMs: number;
    }
  | {
      readonly kind: 'error';
      readonly timeout: boolean;
      /** The network error's code (ECONNREFUSED...) or message. */
      readonly cause: string;
    };

// The thread: {id, url, headers, body, dueEpoch, toleranceMs, timeoutMs} sends at
// dueEpoch (performance.timeOrigin + now(), the same clock in every thread of the process,
// so a hand-over the thread reads late still knows how late it is); {id, abort: true}
// aborts it. Node's http client rather than fetch: fetch reads a body through web streams,
// which held this loop 20 ms or more for a megabyte of vectors. An answer's body goes
// back as a transferred buffer (no copy).
const THREAD_CODE = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
const https = require('node:https');
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };
const pending = new Map();
const clock = () => performance.timeOrigin + performance.now();
function send(m, signal, done, sent) {
  const url = new URL(m.url);
  const mod = url.protocol === 'https:' ? https : http;
  const body = Buffer.from(m.body, 'utf8');
  const req = mod.request(url, {
    method: 'POST',
    headers: { ...m.headers, 'content-length': body.length },
    agent: agents[url.protocol],
    signal,
  }, (res) => {
    const chunks = [];
    let size = 0;
    res.on('data', (c) => { chunks.push(c); size += c.length; });
    res.on('error', (err) => done({ kind: 'error', timeout: false, cause: String(err.code || err.message) }));
    res.on('end', () => {
      const out = Buffer.allocUnsafeSlow(size);
      let at = 0;
      for (const c of chunks) { c.copy(out, at); at += c.length; }
      const ab = out.buffer;
      const retryAfter = res.headers['retry-after'];
      done({ kind: 'answer', status: res.statusCode, retryAfter: retryAfter === undefined ? null : String(retryAfter), body: ab, tookMs: clock() - sent }, [ab]);
    });
  });
  req.on('error', (err) => done({ kind: 'error', timeout: false, cause: String(err.code || err.message) }));
  req.end(body);
}
parentPort.on('message', (m) => {
  if (m.abort) { const p = pending.get(m.id); if (p) p.abort(); return; }
  const received = clock();
  const ctl = new AbortController();
  let finished = false;
  const done = (out, transfer) => {
    if (finished) return;
    finished = true;
    pending.delete(m.id);
    parentPort.postMessage({ id: m.id, ...out }, transfer || []);
  };
  let t;
  let started = false;
  const go = () => {
    if (started) return;
    started = true;
    clearTimeout(t);
    if (ctl.signal.aborted) return done({ kind: 'aborted' });
    const lateMs = clock() - m.dueEpoch;
    if (lateMs > m.toleranceMs) return done({ kind: 'late', lateMs });
    const sent = clock();
    const timeout = AbortSignal.timeout(m.timeoutMs);
    const signal = AbortSignal.any([ctl.signal, timeout]);
    const fail = (out) => done(ctl.signal.aborted ? { kind: 'aborted' } : timeout.aborted ? { kind: 'error', timeout: true, cause: 'timeout' } : out);
    send(m, signal, (out, transfer) => (out.kind === 'error' ? fail(out) : done({ ...out, waitedMs: sent - received }, transfer)), sent);
  };
  // an abort before the send sends nothing; after it, it cuts the request
  pending.set(m.id, { abort: () => { ctl.abort(); go(); } });
  // a timer can fire a fraction of a ms early: it is set again until due
  const tick = () => {
    const wait = m.dueEpoch - clock();
    if (wait > 0) t = setTimeout(tick, Math.ceil(wait));
    else go();
  };
  tick();
});
// loaded: a hand-over from now on is read at once (the first one no longer waits for the thread to boot)
parentPort.postMessage({ id: 0, kind: 'ready' });
`;

type ThreadReply = { id: number } & (
  | Exclude<PostOutcome, { kind: 'answer' }>
  | { kind: 'aborted' }
  | {
      kind: 'answer';
      status: number;
      retryAfter: string | null;
      body: ArrayBuffer;
      waitedMs: number;
      tookMs: number;
    }
);

export class SendThread {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly waiting = new Map<number, (reply: ThreadReply) => void>();
  private booted: Promise<void> | undefined;

  /**
   * Resolves once the thread has started and reads hand-overs at once. A thread takes
   * 50-150 ms to boot, more than a hand-over's lead (SEND_LEAD_MS), so a request handed to
   * a thread still booting missed its slot and had to take another; a caller awaits this
   * before it reserves one. Also resolves if the thread failed to start (the post then
   * answers the error).
   */
  ready(): Promise<void> {
    this.start();
    return this.booted ?? Promise.resolve();
  }

  /** Sends `post` from the thread at its due time; rejects with the signal's reason once it aborts. */
  post(post: TimedPost, signal?: AbortSignal): Promise<PostOutcome> {
    signal?.throwIfAborted();
    const worker = this.start();
    const id = ++this.nextId;
    return new Promise<PostOutcome>((resolve, reject) => {
      const onAbort = (): void => worker.postMessage({ id, abort: true });
      this.waiting.set(id, (reply) => {
        signal?.removeEventListener('abort', onAbort);
        this.waiting.delete(id);
        if (this.waiting.size === 0) worker.unref();
        if (reply.kind === 'aborted') reject(signal?.reason ?? new Error('send aborted'));
        else if (reply.kind === 'answer') {
          const { status, retryAfter, body, waitedMs, tookMs } = reply;
          resolve({ kind: 'answer', status, retryAfter, text: decodeAnswer(body), waitedMs, tookMs });
        } else {
          const { id: _id, ...out } = reply;
          resolve(out);
        }
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.ref();
      worker.postMessage({
        id,
        url: post.url,
        headers: post.headers,
        body: post.body,
        dueEpoch: performance.timeOrigin + post.dueAt,
        toleranceMs: post.toleranceMs,
        timeoutMs: post.timeoutMs,
      });
    });
  }

  /** Stops the thread (requests in flight are answered as network errors). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(THREAD_CODE, { eval: true });
    // an idle thread does not keep the process alive; one with requests in flight does
    w.unref();
    let booted = (): void => {};
    this.booted = new Promise<void>((resolve) => (booted = resolve));
    w.on('message', (reply: ThreadReply | { id: 0; kind: 'ready' }) => {
      if (reply.kind === 'ready') booted();
      else this.waiting.get(reply.id)?.(reply);
    });
    const failAll = (cause: string): void => {
      for (const [id, settle] of [...this.waiting]) settle({ id, kind: 'error', timeout: false, cause });
    };
    w.on('error', (err) => failAll(`send thread failed: ${err.message}`));
    w.on('exit', () => {
      booted();
      if (this.worker === w) this.worker = undefined;
      failAll('send thread stopped');
    });
    this.worker = w;
    return w;
  }
}
