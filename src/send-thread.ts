/**
 * A thread of its own for the embedding API's HTTP requests, so that a request leaves at
 * its rate-limit slot although the worker's event loop is busy: parsing a megabyte of
 * vectors from the last answer, building Qdrant's points, BullMQ's own work. Measured on
 * the pacing benchmark, the worker's loop stalls 20 ms at the 99th percentile and up to
 * 115 ms, and a stall between the slot and the socket write moves the request's arrival
 * at the provider by as much: a few such arrivals a run crowd a provider second and come
 * back 429 (rate-limit-clock.ts: a 3% margin tolerates 31 ms).
 *
 * The main thread still waits for its slot, checks it (a lower learned rate, a late
 * wake-up) and hands the request over `leadMs` before it is due. The thread, whose loop
 * does nothing else, waits out the rest, sends, and hands the answer's status, Retry-After
 * and text back; parsing stays on the main thread (it would stall the other sends here).
 * A request the thread could not start within its tolerance is not sent: the caller takes
 * another slot.
 *
 * The thread's code is plain JavaScript evaluated by `new Worker(code, { eval: true })`:
 * it needs no loader, so it runs the same from the compiled package, from tsx and under
 * jest. It uses Node's fetch (keep-alive connections of its own).
 */
import { Worker } from 'node:worker_threads';

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

// The thread: {id, url, headers, body, delayMs, toleranceMs, timeoutMs} sends at delayMs
// after receipt (the hand-over takes well under a ms); {id, abort: true} aborts it.
const THREAD_CODE = `
const { parentPort } = require('node:worker_threads');
const pending = new Map();
// load fetch's machinery now rather than inside the first request's slot
fetch('data:,').then((r) => r.text()).catch(() => {});
parentPort.on('message', (m) => {
  if (m.abort) { const p = pending.get(m.id); if (p) p.abort(); return; }
  const received = performance.now();
  const due = received + m.delayMs;
  const ctl = new AbortController();
  const done = (out) => { pending.delete(m.id); parentPort.postMessage({ id: m.id, ...out }); };
  let t;
  let started = false;
  const go = async () => {
    if (started) return;
    started = true;
    clearTimeout(t);
    if (ctl.signal.aborted) return done({ kind: 'aborted' });
    const lateMs = performance.now() - due;
    if (lateMs > m.toleranceMs) return done({ kind: 'late', lateMs });
    const sent = performance.now();
    const timeout = AbortSignal.timeout(m.timeoutMs);
    try {
      const r = await fetch(m.url, { method: 'POST', headers: m.headers, body: m.body, signal: AbortSignal.any([ctl.signal, timeout]) });
      const text = await r.text();
      done({ kind: 'answer', status: r.status, retryAfter: r.headers.get('retry-after'), text, waitedMs: sent - received, tookMs: performance.now() - sent });
    } catch (err) {
      if (ctl.signal.aborted) return done({ kind: 'aborted' });
      const c = err && err.cause;
      done({ kind: 'error', timeout: timeout.aborted, cause: String((c && (c.code || c.message)) || (err && err.message) || err) });
    }
  };
  // an abort before the send sends nothing; after it, it cuts the request
  pending.set(m.id, { abort: () => { ctl.abort(); go(); } });
  // a timer can fire a fraction of a ms early by this clock: it is set again until due
  const tick = () => {
    const wait = due - performance.now();
    if (wait > 0) t = setTimeout(tick, Math.ceil(wait));
    else go();
  };
  tick();
});
`;

type ThreadReply = { id: number } & (PostOutcome | { kind: 'aborted' });

export class SendThread {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly waiting = new Map<number, (reply: ThreadReply) => void>();

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
        const { id: _id, ...out } = reply;
        if (out.kind === 'aborted') reject(signal?.reason ?? new Error('send aborted'));
        else resolve(out);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.ref();
      worker.postMessage({
        id,
        url: post.url,
        headers: post.headers,
        body: post.body,
        delayMs: post.dueAt - performance.now(),
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
    w.on('message', (reply: ThreadReply) => this.waiting.get(reply.id)?.(reply));
    const failAll = (cause: string): void => {
      for (const [id, settle] of [...this.waiting]) settle({ id, kind: 'error', timeout: false, cause });
    };
    w.on('error', (err) => failAll(`send thread failed: ${err.message}`));
    w.on('exit', () => {
      if (this.worker === w) this.worker = undefined;
      failAll('send thread stopped');
    });
    this.worker = w;
    return w;
  }
}
