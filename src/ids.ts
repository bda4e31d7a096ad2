/**
 * Deterministic ids: re-running anything is safe by construction.
 * - a point id is the UUIDv5 of (bucket, key, chunk): re-indexing overwrites;
 * - a job id is a hash of the run's settings and the exact objects (key + etag) it holds:
 *   the same scan enqueued twice while jobs are pending adds nothing twice;
 * - a params hash names everything that changes a vector besides the content.
 */
import { createHash } from 'node:crypto';
import { v5 as uuidv5 } from 'uuid';

/** Fixed namespace of this project's point ids (a random UUID chosen once). */
export const POINT_NAMESPACE = '6f7c1d2e-9a4b-4c3d-8e5f-0a1b2c3d4e5f';

export function pointId(bucket: string, key: string, chunk: number): string {
  // NUL cannot occur in S3 keys or bucket names, so the triple is unambiguous.
  return uuidv5(`${bucket}\u0000${key}\u0000${chunk}`, POINT_NAMESPACE);
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
