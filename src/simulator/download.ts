/**
 * The simulator downloads every media URL itself, as the provider does. One instance
 * serves one request: a URL named several times in it is fetched once (the map holds
 * the first fetch's promise), and different URLs are fetched in parallel.
 * A body over `maxBytes` is cut off as soon as it is seen to be too large.
 *
 * As strict as the provider, which downloads from its own network: a URL whose host is a
 * local name or resolves to a loopback, private or link-local address fails (redirects
 * are followed by hand so that each hop is checked), unless the simulator was started
 * with `allowPrivateUrls` (tests of URL mode against a local store); and an answer with
 * no Content-Length is refused ("Missing Content-Length of multimodal url").
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { isLocalName, isUnreachableAddress } from './contract.js';

export type Fetched =
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  /** `atLeast`: the declared length, or the bytes read before giving up. */
  | { readonly kind: 'too-large'; readonly atLeast: number }
  /** The answer declared no Content-Length: the provider does not download such URLs. */
  | { readonly kind: 'no-length' }
  | { readonly kind: 'failed'; readonly reason: string };

export interface DownloadSettings {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** Download from loopback and private hosts too (the provider never does). */
  readonly allowPrivateUrls: boolean;
}

const MAX_REDIRECTS = 5;

/** Why the provider could not reach `url`'s host, or undefined when it could. */
export async function privateHostReason(url: URL): Promise<string | undefined> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0) return isUnreachableAddress(host) ? `${host} is a loopback or private address` : undefined;
  if (isLocalName(host)) return `${host} is a local name`;
  try {
    const addresses = await lookup(host, { all: true });
    const inside = addresses.find((a) => isUnreachableAddress(a.address));
    return inside ? `${host} resolves to ${inside.address}, a loopback or private address` : undefined;
  } catch (err) {
    return `${host} does not resolve (${err instanceof Error ? err.message : String(err)})`;
  }
}

async function fetchBytes(url: string, settings: DownloadSettings): Promise<Fetched> {
  try {
    // The timeout covers the whole body, not only the headers: a stalled stream fails too.
    const signal = AbortSignal.timeout(settings.timeoutMs);
    let target = new URL(url);
    let res: Response | undefined;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      if (!settings.allowPrivateUrls) {
        const reason = await privateHostReason(target);
        if (reason) return { kind: 'failed', reason };
      }
      res = await fetch(target, { signal, redirect: 'manual' });
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || location === null) break;
      await res.body?.cancel().catch(() => undefined);
      target = new URL(location, target);
      res = undefined;
    }
    if (!res) return { kind: 'failed', reason: 'too many redirects' };
    if (!res.ok || !res.body) {
      await res.body?.cancel().catch(() => undefined);
      return { kind: 'failed', reason: `HTTP ${res.status}` };
    }
    const header = res.headers.get('content-length');
    if (header === null || !/^\d+$/.test(header.trim())) {
      await res.body.cancel().catch(() => undefined);
      return { kind: 'no-length' };
    }
    const declared = Number(header);
    if (declared > settings.maxBytes) {
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
      if (total > settings.maxBytes) {
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

  constructor(private readonly settings: DownloadSettings) {}

  get(url: string): Promise<Fetched> {
    let pending = this.fetches.get(url);
    if (!pending) {
      this.count++;
      pending = fetchBytes(url, this.settings);
      this.fetches.set(url, pending);
    }
    return pending;
  }
}
