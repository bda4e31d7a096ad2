/**
 * The request log (`captureRequests: N`, `--capture-requests N`, `GET /_sim/requests`):
 * the latest N requests on the API paths as the simulator received them, and what it
 * answered, so a test can compare what different clients send (the provider's Python SDK
 * and the project's client: test/integration/sdk.test.ts). Off by default.
 *
 * No secret enters it: the Authorization value is kept as its scheme and `[redacted]`,
 * and the configured key is cut out of every other header and every string of the body.
 * Strings over ABBREVIATE_OVER characters (data URIs, presigned URLs, long texts) are kept
 * as their first characters, their length and a digest, so equal values still compare
 * equal and a log of 6 MiB bodies stays small.
 *
 * State: a ring of at most `capacity` entries, oldest first; an entry is filled in with
 * the answer when it is sent (a dropped or hung request has none).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface CapturedRequest {
  /** 1 for the first request seen since start or reset. */
  readonly seq: number;
  /** ISO time the body had been read. */
  readonly at: string;
  readonly method: string;
  /** Path and query string as sent. */
  readonly path: string;
  /** Lower-case names, as received (a repeated header joined with ", "); the key redacted. */
  readonly headers: Readonly<Record<string, string>>;
  readonly bodyBytes: number;
  /** The JSON body with long strings abbreviated; absent when it was not JSON or over the size cap. */
  readonly body?: unknown;
  /** The answer's HTTP status, `code` (failures) and `request_id`; absent until answered. */
  readonly answer?: { readonly status: number; readonly code?: string; readonly requestId?: string };
}

export const ABBREVIATE_OVER = 512;
const KEEP_CHARS = 48;
const REDACTED = '[redacted]';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class RequestLog {
  private entries: Mutable<CapturedRequest>[] = [];
  private seq = 0;
  private readonly pending = new WeakMap<ServerResponse, Mutable<CapturedRequest>>();

  constructor(
    readonly capacity: number,
    private readonly secret: string,
  ) {}

  /** Records a request whose body has been read (`bytes` undefined: over the cap, not kept). */
  record(req: IncomingMessage, res: ServerResponse, bytes: Buffer | undefined, total: number): void {
    if (this.capacity === 0) return;
    const entry: Mutable<CapturedRequest> = {
      seq: ++this.seq,
      at: new Date().toISOString(),
      method: req.method ?? '',
      path: req.url ?? '',
      headers: this.headers(req),
      bodyBytes: total,
    };
    if (bytes) {
      try {
        entry.body = this.scrub(JSON.parse(bytes.toString('utf8')));
      } catch {
        // not JSON: the log keeps only its size
      }
    }
    this.entries.push(entry);
    if (this.entries.length > this.capacity) this.entries.shift();
    this.pending.set(res, entry);
  }

  /** Notes the answer sent for a recorded request. */
  answered(res: ServerResponse, status: number, body: unknown): void {
    const entry = this.pending.get(res);
    if (!entry) return;
    this.pending.delete(res);
    const b = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    entry.answer = {
      status,
      ...(typeof b.code === 'string' ? { code: b.code } : {}),
      ...(typeof b.request_id === 'string' ? { requestId: b.request_id } : {}),
    };
  }

  /** Copies of the entries, oldest first. */
  list(): CapturedRequest[] {
    return structuredClone(this.entries);
  }

  reset(): void {
    this.entries = [];
    this.seq = 0;
  }

  private headers(req: IncomingMessage): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined) continue;
      const text = Array.isArray(value) ? value.join(', ') : value;
      out[name] = name === 'authorization' ? redactAuthorization(text) : this.cut(text);
    }
    return out;
  }

  private cut(s: string): string {
    return this.secret && s.includes(this.secret) ? s.split(this.secret).join(REDACTED) : s;
  }

  private scrub(value: unknown): unknown {
    if (typeof value === 'string') return abbreviate(this.cut(value));
    if (Array.isArray(value)) return value.map((v) => this.scrub(v));
    if (typeof value === 'object' && value !== null) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.scrub(v)]));
    }
    return value;
  }
}

/** `Bearer sk-...` -> `Bearer [redacted]`; a value without a scheme -> `[redacted]`. */
export function redactAuthorization(value: string): string {
  const scheme = /^(\S+)\s+\S/.exec(value);
  return scheme ? `${scheme[1]} ${REDACTED}` : REDACTED;
}

/** A long string as `first chars…[N chars, sha256 XXXXXXXXXXXXXXXX]`; short ones as they are. */
export function abbreviate(s: string): string {
  if (s.length <= ABBREVIATE_OVER) return s;
  const digest = createHash('sha256').update(s).digest('hex').slice(0, 16);
  return `${s.slice(0, KEEP_CHARS)}…[${s.length} chars, sha256 ${digest}]`;
}
