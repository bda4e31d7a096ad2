/**
 * Deterministic ids: re-running anything is safe by construction.
 * - a point id is the UUIDv5 of (bucket, key, chunk): re-indexing overwrites;
 * - a job id is a hash of the run's settings and the exact objects (key + etag) it holds:
 *   the same scan enqueued twice while jobs are pending adds nothing twice;
 * - a params hash names everything that changes a vector besides the content.
 */
import { createHash, hash } from 'node:crypto';

/** Fixed namespace of this project's point ids (a random UUID chosen once). */
export const POINT_NAMESPACE = '6f7c1d2e-9a4b-4c3d-8e5f-0a1b2c3d4e5f';
const NAMESPACE_BYTES = Buffer.from(POINT_NAMESPACE.replace(/-/g, ''), 'hex');

/**
 * The UUIDv5 (RFC 9562: SHA-1 of the namespace's 16 bytes and the name's UTF-8, version 5,
 * variant 10) of (bucket, key, chunk). Computed here rather than by the uuid package, which
 * parses the namespace and encodes the name anew at every call: a scan takes one id per
 * listed object (the incremental check), and this was a tenth of the producer's CPU.
 * test/unit/ids.test.ts checks it against the uuid package's v5.
 */
export function pointId(bucket: string, key: string, chunk: number): string {
  // NUL cannot occur in S3 keys or bucket names, so the triple is unambiguous.
  const name = `${bucket}\u0000${key}\u0000${chunk}`;
  const bytes = Buffer.allocUnsafe(16 + Buffer.byteLength(name, 'utf8'));
  NAMESPACE_BYTES.copy(bytes, 0);
  bytes.write(name, 16, 'utf8');
  const h = hash('sha1', bytes, 'hex');
  const variant = ((parseInt(h.charAt(16), 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function shortHash(value: unknown, length = 16): string {
  return createHash('sha256')
    .update(typeof value === 'string' ? value : JSON.stringify(value))
    .digest('hex')
    .slice(0, length);
}

export function newRunId(now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${createHash('sha256').update(`${now.getTime()}${Math.random()}`).digest('hex').slice(0, 6)}`;
}
