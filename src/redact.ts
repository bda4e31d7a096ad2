/**
 * Secrets out of every message that is stored or shown. Outside systems put whatever they
 * like in their error messages (a provider echoing the presigned URL it could not fetch, a
 * proxy echoing a URL with its password, a gateway echoing a header), and those messages
 * travel on: into run records and job failures in Redis, logs, run reports, the dashboard.
 * `redact` is applied where they enter (each client's error), where they are stored (run
 * records, pause reasons, failed jobs), and where they leave (log lines, the CLI's error
 * line, the dashboard's answers). It removes:
 * - the query string of every http(s) URL (presigned signatures, credentials, tokens):
 *   `https://b.s3.amazonaws.com/k.mp4?[redacted]`;
 * - the password of every URL with one (`redis://user:***@host`, `http://user:***@proxy`);
 * - signature parameters outside a URL (`X-Amz-Signature=[redacted]`), bearer tokens,
 *   `api-key` values, and anything shaped like a DashScope key (`sk-` and 32 characters);
 * - every secret of the configuration (`rememberSecrets`: the API key, Qdrant's key, URL
 *   passwords, the AWS secret, the dashboard's token), however the message spells it.
 *
 * State: the remembered secrets, a set that only grows, filled by `loadConfig`.
 */

const known = new Set<string>();
/** Shorter values would mask ordinary words (a password "test" in "test-1234"); those are masked in URL form only. */
const MIN_SECRET = 8;

/** Remembers secrets to remove from every message from now on (as given, URL-encoded and decoded). */
export function rememberSecrets(...values: readonly (string | undefined)[]): void {
  for (const v of values) {
    if (v === undefined || v.length < MIN_SECRET) continue;
    known.add(v);
    known.add(encodeURIComponent(v));
    try {
      known.add(decodeURIComponent(v));
    } catch {
      // not percent-encoded: nothing more to add
    }
  }
}

// Characters that end a URL in a message: whitespace, quotes, angle brackets, and the
// backslash (a JSON log line escapes a quote as \", which must stay intact).
const STOP = String.raw`\s"'<>\\`;
// the query ends where the URL does; punctuation that ends a sentence stays outside it
const URL_QUERY = new RegExp(
  String.raw`\b(https?:\/\/[^${STOP}?#]*)\?(?!\[redacted\])[^${STOP}#]*?(?=[.,;:!)\]]*(?:[${STOP}#]|$))`,
  'gi',
);
const URL_PASSWORD = new RegExp(String.raw`\b([a-z][a-z0-9+.-]*:\/\/[^${STOP}/@:]*):[^${STOP}/]*@`, 'gi');
const SIGNATURE_PARAM = new RegExp(
  String.raw`\b((?:X-Amz-(?:Signature|Credential|Security-Token)|AWSAccessKeyId|Signature)=)[^&${STOP}]+`,
  'gi',
);
const BEARER = /\b(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/g;
const API_KEY_FIELD = new RegExp(String.raw`\b(api[-_]key["']?\s*[:=]\s*["']?)[^,;&}${STOP}]+`, 'gi');
const DASHSCOPE_KEY = /\bsk-[A-Za-z0-9]{32,}\b/g;

/** `text` without the secrets it may hold (see above), and without `extra` ones the caller knows of; idempotent. */
export function redact(text: string, extra: readonly (string | undefined)[] = []): string {
  let out = text;
  const secrets = [...known, ...extra.filter((s): s is string => s !== undefined && s !== '')].sort(
    (a, b) => b.length - a.length,
  );
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join('***');
  return out
    .replace(URL_PASSWORD, '$1:***@')
    .replace(URL_QUERY, '$1?[redacted]')
    .replace(SIGNATURE_PARAM, '$1[redacted]')
    .replace(BEARER, '$1[redacted]')
    .replace(API_KEY_FIELD, '$1[redacted]')
    .replace(DASHSCOPE_KEY, 'sk-***');
}

/** An Error whose message and stack are redacted (the same object: its class and fields stay). */
export function redactError<E>(err: E): E {
  if (err instanceof Error) {
    err.message = redact(err.message);
    if (err.stack !== undefined) err.stack = redact(err.stack);
  }
  return err;
}

/**
 * Makes every string written to `stream` pass through `redact`: the CLI's stdout and
 * stderr, so that no line a command prints (a reason read from Redis, a report, an error)
 * shows a secret, whatever wrote the record it prints.
 */
export function redactWrites(stream: NodeJS.WriteStream): void {
  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) =>
    write(typeof chunk === 'string' ? redact(chunk) : chunk, ...rest)) as typeof stream.write;
}

/** A URL (or a comma-separated list of them: cluster seeds) with any password replaced by `***`. */
export function maskUrl(url: string): string {
  return url.split(',').map(maskOne).join(',');
}

function maskOne(url: string): string {
  try {
    const u = new URL(url);
    if (u.password === '') return url;
    u.password = '***';
    const masked = u.toString();
    return url.endsWith('/') || !masked.endsWith('/') ? masked : masked.slice(0, -1);
  } catch {
    return url.replace(/\/\/([^/@]*?):[^/]*@/, '//$1:***@');
  }
}

/** The passwords in a URL or URL list, as written and decoded (so either spelling is redacted). */
export function urlPassword(url: string): string[] {
  return url.split(',').flatMap((one) => {
    try {
      const p = new URL(one).password;
      return p === '' ? [] : [p, decodeURIComponent(p)];
    } catch {
      return [];
    }
  });
}
