/**
 * The simulator downloads every media URL itself, as the provider does. One instance
 * serves one request: a URL named several times in it is fetched once (the map holds
 * the first fetch's promise), and different URLs are fetched in parallel.
 * A body over `maxBytes` is cut off as soon as it is seen to be too large.
 */

export type Fetched =
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  /** `atLeast`: the declared length, or the bytes read before giving up. */
  | { readonly kind: 'too-large'; readonly atLeast: number }
  | { readonly kind: 'failed'; readonly reason: string };

async function fetchBytes(url: string, timeoutMs: number, maxBytes: number): Promise<Fetched> {
  try {
    // The timeout covers the whole body, not only the headers: a stalled stream fails too.
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
    if (!res.ok || !res.body) {
      await res.body?.cancel().catch(() => undefined);
      return { kind: 'failed', reason: `HTTP ${res.status}` };
    }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > maxBytes) {
      await res.body.cancel().catch(() => undefined);
      return { kind: 'too-large', atLeast: declared };
    }
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => undefined);
        return { kind: 'too-large', atLeast: total };
      }
      chunks.push(value);
    }
    return { kind: 'bytes', bytes: Buffer.concat(chunks, total) };
  } catch (err) {
    return { kind: 'failed', reason: err instanceof Error ? err.message : String(err) };
  }
}

export class RequestDownloads {
  private readonly fetches = new Map<string, Promise<Fetched>>();
  /** URLs actually fetched (after de-duplication), for the stats. */
  count = 0;

  constructor(
    private readonly timeoutMs: number,
    private readonly maxBytes: number,
  ) {}

  get(url: string): Promise<Fetched> {
    let pending = this.fetches.get(url);
    if (!pending) {
      this.count++;
      pending = fetchBytes(url, this.timeoutMs, this.maxBytes);
      this.fetches.set(url, pending);
    }
    return pending;
  }
}
