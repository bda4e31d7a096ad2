/** How `mm-ingest status` shows the listener: its lag, what waits, what it did, its latest failures. */
import type { ListenerSnapshot } from '../listen/state.js';
import { printable } from './terminal.js';

export function listenerLines(s: ListenerSnapshot): string[] {
  const c = s.counts;
  const n = (k: string): number => c[k] ?? 0;
  const sum = (prefix: string): number =>
    Object.entries(c).reduce((t, [k, v]) => (k.startsWith(prefix) ? t + v : t), 0);
  const created = Object.entries(c).reduce(
    (t, [k, v]) => (k.startsWith('events:') && k.endsWith(':created') ? t + v : t),
    0,
  );
  const removed = Object.entries(c).reduce(
    (t, [k, v]) => (k.startsWith('events:') && k.endsWith(':removed') ? t + v : t),
    0,
  );
  const lines = [
    `listener: lag ${s.lagSeconds.toFixed(1)} s; ${s.pendingKeys} keys pending, ${s.batchesInFlight} batches (${s.keysInFlight} keys) in flight`,
    `listener: events ${created} created, ${removed} removed, ${sum('ignored:')} ignored (${['test-event', 'other-event', 'malformed', 'unmapped-bucket'].map((r) => `${r} ${n(`ignored:${r}`)}`).join(', ')})`,
    `listener: batches ${n('batchesQueued')} queued, ${n('batchesDone')} done, ${n('batchesFailed')} failed; keys: ${n('objectsIndexed')} indexed, ${n('objectsUnchanged')} unchanged, ${n('objectsDeleted')} deleted, ${n('objectsSkipped')} skipped, ${n('objectsFailed')} failed`,
  ];
  for (const t of s.targets)
    lines.push(`  ${t.bucket} -> ${t.collection} (${t.model}): ${t.pending} pending, ${t.inFlight} in flight`);
  for (const f of s.failures)
    lines.push(`  failed batch ${f.batch} (${f.keys} keys of ${f.target.bucket}, ${f.at}): ${printable(f.reason)}`);
  return lines;
}
