/**
 * The listener's Prometheus metrics, read from its state in Redis at scrape time (so they
 * are the same whichever listener process is scraped, and survive a restart).
 */
import { Counter, Gauge, collectDefaultMetrics } from 'prom-client';
import type { Registry } from 'prom-client';
import type { ListenerSnapshot, ListenerState } from './state.js';

export function registerListenerMetrics(registry: Registry, state: ListenerState): void {
  const registers = [registry];
  // one read of Redis per scrape, whatever the number of metrics
  let cached: { at: number; snapshot: Promise<ListenerSnapshot> } | undefined;
  const snapshot = (): Promise<ListenerSnapshot> => {
    if (!cached || Date.now() - cached.at > 200) cached = { at: Date.now(), snapshot: state.snapshot() };
    return cached.snapshot;
  };
  const gauge = (name: string, help: string, read: (s: ListenerSnapshot) => number): void =>
    void new Gauge({
      name,
      help,
      registers,
      async collect() {
        this.set(read(await snapshot()));
      },
    });
  gauge(
    'mm_ingest_listener_lag_seconds',
    'Age of the oldest event not yet processed (its key pending, or in a batch whose run is not finished); 0 when none',
    (s) => s.lagSeconds,
  );
  gauge('mm_ingest_listener_pending_keys', 'Keys waiting to be put in a batch', (s) => s.pendingKeys);
  gauge(
    'mm_ingest_listener_batches_in_flight',
    'Batches queued as reindex jobs whose run is not finished',
    (s) => s.batchesInFlight,
  );
  gauge('mm_ingest_listener_keys_in_flight', 'Keys in those batches', (s) => s.keysInFlight);

  const counter = (
    name: string,
    help: string,
    label: string,
    pick: (counts: Readonly<Record<string, number>>) => [string, number][],
  ): void =>
    void new Counter({
      name,
      help,
      labelNames: [label],
      registers,
      async collect() {
        this.reset();
        for (const [value, n] of pick((await snapshot()).counts)) this.inc({ [label]: value }, n);
      },
    });
  const matching = (counts: Readonly<Record<string, number>>, prefix: string): [string, number][] =>
    Object.entries(counts).flatMap(([k, n]) =>
      k.startsWith(prefix) ? [[k.slice(prefix.length), n] as [string, number]] : [],
    );
  counter(
    'mm_ingest_listener_events_total',
    'Object events recorded, by source and kind (source:created, source:removed)',
    'event',
    (c) => matching(c, 'events:'),
  );
  counter(
    'mm_ingest_listener_ignored_total',
    'Events acknowledged without work, by reason (test-event, other-event, malformed, unmapped-bucket)',
    'reason',
    (c) => matching(c, 'ignored:'),
  );
  counter(
    'mm_ingest_listener_deliveries_total',
    'Deliveries recorded (SQS messages, webhook POSTs, Redis list entries), by source',
    'source',
    (c) => matching(c, 'deliveries:'),
  );
  counter('mm_ingest_listener_batches_total', 'Batches by outcome (queued, done, failed)', 'outcome', (c) => [
    ['queued', c.batchesQueued ?? 0],
    ['done', c.batchesDone ?? 0],
    ['failed', c.batchesFailed ?? 0],
  ]);
  counter(
    'mm_ingest_listener_keys_total',
    'Keys by outcome (queued in a batch, done, in a failed batch)',
    'outcome',
    (c) => [
      ['queued', c.keysQueued ?? 0],
      ['done', c.keysDone ?? 0],
      ['failed', c.keysFailed ?? 0],
    ],
  );
  counter(
    'mm_ingest_listener_objects_total',
    "What the batches' runs did with their keys (indexed, unchanged, deleted, skipped, failed)",
    'outcome',
    (c) => [
      ['indexed', c.objectsIndexed ?? 0],
      ['unchanged', c.objectsUnchanged ?? 0],
      ['deleted', c.objectsDeleted ?? 0],
      ['skipped', c.objectsSkipped ?? 0],
      ['failed', c.objectsFailed ?? 0],
    ],
  );
  collectDefaultMetrics({ register: registry });
}
