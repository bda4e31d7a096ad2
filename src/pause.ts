/**
 * Pausing the embed queue for a reason that no retry can fix (invalid key, account in
 * arrears, no access, unknown model): every worker stops taking jobs, the reason is kept
 * in Redis for `status` and `index --wait` to print in one line, and `mm-ingest resume`
 * lifts it once the cause is fixed.
 */
import type { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import { redact } from './redact.js';

const reasonKey = (prefix: string): string => `${prefix}:embed:paused-reason`;

export async function pauseForReason(
  queue: Queue,
  redis: Redis | Cluster,
  prefix: string,
  reason: string,
): Promise<void> {
  // the first reason wins: later jobs fail the same way and would only repeat it
  await redis.set(reasonKey(prefix), redact(reason), 'NX');
  await queue.pause();
}

export async function pausedReason(queue: Queue, redis: Redis | Cluster, prefix: string): Promise<string | undefined> {
  if (!(await queue.isPaused())) return undefined;
  return (await redis.get(reasonKey(prefix))) ?? 'paused by an operator';
}

export async function resume(queue: Queue, redis: Redis | Cluster, prefix: string): Promise<void> {
  await redis.del(reasonKey(prefix));
  await queue.resume();
}
