/**
 * `mm-ingest doctor`: the checks an operator runs before leaving a run overnight. Each
 * check asks one outside system one cheap question (Redis INFO, one listing page and one
 * byte of one object, a collection's description, a one-word embedding) within a bounded
 * time, and turns the answer, or the failure, into a row: ok, warn (the run works but
 * something is at risk), fail (the run would not work), or skip (not checked, and why),
 * each with what to do. Pure logic over narrow clients; the command wires real ones.
 * Each service's check is in src/doctor/ (rows.ts: what they share).
 */
import { redact } from './redact.js';
import type { CheckStatus, CheckRow, DoctorClients, DoctorTarget } from './doctor/rows.js';
import { checkRedis } from './doctor/redis.js';
import { checkBucket, checkMediaUrls } from './doctor/bucket.js';
import { checkQdrant } from './doctor/qdrant.js';
import { checkApi } from './doctor/api.js';

/** Every check, the services in parallel (so the whole run takes about one timeout at most twice). */
export async function runDoctor(clients: DoctorClients, target: DoctorTarget): Promise<CheckRow[]> {
  const [redis, bucket, qdrant, api] = await Promise.all([
    checkRedis(clients.redis, target),
    checkBucket(clients.objects, target),
    checkQdrant(clients.vectors, target),
    checkApi(clients.embedder, target),
  ]);
  return [...redis, ...bucket, ...qdrant, api, ...(target.mediaUrls ? [checkMediaUrls(target.mediaUrls, target)] : [])];
}

/** Replaces every secret in every row by `***` (redact.ts): whatever an error message carried. */
export function redactRows(rows: readonly CheckRow[], secrets: readonly (string | undefined)[]): CheckRow[] {
  const known = secrets.filter((s): s is string => s !== undefined && s.length >= 4);
  return rows.map((r) => ({ ...r, detail: redact(r.detail, known), action: redact(r.action, known) }));
}

export function doctorCounts(rows: readonly CheckRow[]): Record<CheckStatus, number> {
  const counts: Record<CheckStatus, number> = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const r of rows) counts[r.status] += 1;
  return counts;
}

/** The table: one line a check, and under each row that is not ok what to do. */
export function formatDoctor(rows: readonly CheckRow[]): string {
  const width = Math.max(...rows.map((r) => r.check.length));
  const lines: string[] = [];
  for (const r of rows) {
    lines.push(`${r.status.padEnd(4)}  ${r.check.padEnd(width)}  ${r.detail}`);
    if (r.action !== '') lines.push(`${' '.repeat(4 + 2 + width + 2)}-> ${r.action}`);
  }
  const c = doctorCounts(rows);
  const verdict = c.fail > 0 ? 'not ready: fix the fail rows' : c.warn > 0 ? 'ready, with warnings' : 'ready';
  lines.push(`${c.ok} ok, ${c.warn} warn, ${c.fail} fail, ${c.skip} skipped: ${verdict}`);
  return `${lines.join('\n')}\n`;
}
