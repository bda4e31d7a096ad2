/**
 * Bucket event notifications, as the stores send them, reduced to what the listener needs:
 * which key of which bucket may have changed, and when. The shapes understood:
 * - S3's own notification (`{"Records": [...]}`), as S3 puts it on an SQS queue, also
 *   wrapped in an SNS envelope (`{"Type": "Notification", "Message": "..."}`);
 * - S3's test message (`{"Event": "s3:TestEvent", ...}`) sent when a configuration is saved;
 * - an EventBridge event of S3 (`{"source": "aws.s3", "detail-type": "Object Created", ...}`),
 *   S3 -> EventBridge -> SQS;
 * - MinIO's webhook body (`{"EventName", "Key", "Records": [...]}`);
 * - MinIO's Redis target in the `access` format (`[{"Event": [...], "EventTime": "..."}]`).
 *
 * Keys in S3 and MinIO records are URL-encoded, with `+` for a space. The event's name
 * says what happened, but deliveries are at least once and out of order: the listener
 * never acts on it, it resolves each key against the store when the batch runs. The kind
 * is kept for the counts and the log.
 */

export type EventKind = 'created' | 'removed';

export interface BucketEvent {
  readonly bucket: string;
  /** The key as stored (decoded). */
  readonly key: string;
  readonly kind: EventKind;
  /** The event's name as sent (`s3:ObjectCreated:Put`, `ObjectRemoved:Delete`, ...). */
  readonly name: string;
  /** When the store says it happened (ms since the epoch); the arrival time when it says nothing usable. */
  readonly time: number;
}

/** A record or message acknowledged without work: a test event, an event of another kind, a malformed record. */
export interface IgnoredEvent {
  readonly name: string;
  readonly reason: string;
}

export interface ParsedNotification {
  readonly events: BucketEvent[];
  readonly ignored: IgnoredEvent[];
}

/** `ObjectCreated:*` indexes, `ObjectRemoved:*` (and S3's lifecycle expirations) remove; anything else is ignored. */
export function eventKind(name: string): EventKind | undefined {
  const bare = name.startsWith('s3:') ? name.slice(3) : name;
  if (bare.startsWith('ObjectCreated:')) return 'created';
  if (bare.startsWith('ObjectRemoved:') || bare.startsWith('LifecycleExpiration:')) return 'removed';
  return undefined;
}

/** A key as S3 and MinIO put it in a record: URL-encoded, `+` for a space. Undefined when it is not valid encoding. */
export function decodeEventKey(encoded: string): string | undefined {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function timeOf(value: unknown, arrived: number): number {
  const t = typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isFinite(t) ? t : arrived;
}

/** One S3-format record (S3's and MinIO's are the same shape). */
function fromRecord(record: unknown, arrived: number, out: ParsedNotification): void {
  if (!isObject(record)) {
    out.ignored.push({ name: '(malformed)', reason: 'a record that is not an object' });
    return;
  }
  const name = typeof record.eventName === 'string' ? record.eventName : '(no eventName)';
  const kind = eventKind(name);
  if (!kind) {
    out.ignored.push({ name, reason: 'not an object creation or removal' });
    return;
  }
  const s3 = isObject(record.s3) ? record.s3 : {};
  const bucket = isObject(s3.bucket) && typeof s3.bucket.name === 'string' ? s3.bucket.name : undefined;
  const rawKey = isObject(s3.object) && typeof s3.object.key === 'string' ? s3.object.key : undefined;
  const key = rawKey === undefined ? undefined : decodeEventKey(rawKey);
  if (!bucket || rawKey === undefined || !key) {
    out.ignored.push({
      name,
      reason: !bucket
        ? 'no s3.bucket.name'
        : rawKey === undefined
          ? 'no s3.object.key'
          : `s3.object.key is not URL-encoded text: ${JSON.stringify(rawKey.slice(0, 200))}`,
    });
    return;
  }
  out.events.push({ bucket, key, kind, name, time: timeOf(record.eventTime, arrived) });
}

/**
 * EventBridge's S3 events. Their `detail.object.key` is taken as sent: AWS's samples show it
 * unencoded (`:` as is), unlike a record's (not checked against AWS itself, no network here).
 */
function fromEventBridge(event: Record<string, unknown>, arrived: number, out: ParsedNotification): void {
  const type = String(event['detail-type']);
  const kind: EventKind | undefined =
    type === 'Object Created' ? 'created' : type === 'Object Deleted' ? 'removed' : undefined;
  if (!kind) {
    out.ignored.push({ name: type, reason: 'not an object creation or removal' });
    return;
  }
  const detail = isObject(event.detail) ? event.detail : {};
  const bucket = isObject(detail.bucket) && typeof detail.bucket.name === 'string' ? detail.bucket.name : undefined;
  const key = isObject(detail.object) && typeof detail.object.key === 'string' ? detail.object.key : undefined;
  if (!bucket || !key) {
    out.ignored.push({ name: type, reason: 'no detail.bucket.name or detail.object.key' });
    return;
  }
  out.events.push({ bucket, key, kind, name: type, time: timeOf(event.time, arrived) });
}

function walk(body: unknown, arrived: number, out: ParsedNotification, depth: number): void {
  if (Array.isArray(body)) {
    // MinIO's Redis `access` format: a list of { Event: [records], EventTime }
    for (const entry of body) {
      if (isObject(entry) && Array.isArray(entry.Event)) for (const r of entry.Event) fromRecord(r, arrived, out);
      else if (isObject(entry) && 'eventName' in entry) fromRecord(entry, arrived, out);
      else out.ignored.push({ name: '(malformed)', reason: 'a list entry without Event records' });
    }
    return;
  }
  if (!isObject(body)) {
    out.ignored.push({ name: '(malformed)', reason: 'not a JSON object or list' });
    return;
  }
  if (Array.isArray(body.Records)) {
    for (const r of body.Records) fromRecord(r, arrived, out);
    return;
  }
  if (typeof body.Event === 'string') {
    // s3:TestEvent, sent by S3 when a notification configuration is saved
    out.ignored.push({
      name: body.Event,
      reason: body.Event === 's3:TestEvent' ? 'a test event' : 'not an object creation or removal',
    });
    return;
  }
  if (body.Type === 'Notification' && typeof body.Message === 'string' && depth < 2) {
    // an SNS envelope (S3 -> SNS -> SQS without raw message delivery)
    let inner: unknown;
    try {
      inner = JSON.parse(body.Message);
    } catch {
      out.ignored.push({ name: '(malformed)', reason: 'an SNS Message that is not JSON' });
      return;
    }
    walk(inner, arrived, out, depth + 1);
    return;
  }
  if (body.source === 'aws.s3' && 'detail-type' in body) {
    fromEventBridge(body, arrived, out);
    return;
  }
  out.ignored.push({
    name: '(unknown)',
    reason: 'neither S3 records, an S3 test event, an SNS envelope nor an EventBridge event',
  });
}

/** The events of one delivery (an SQS message's body, a webhook POST, a Redis list entry), as parsed JSON. */
export function parseNotification(body: unknown, arrived = Date.now()): ParsedNotification {
  const out: ParsedNotification = { events: [], ignored: [] };
  walk(body, arrived, out, 0);
  return out;
}

/** The same, from the delivery's text; text that is not JSON is one ignored, malformed delivery. */
export function parseNotificationText(text: string, arrived = Date.now()): ParsedNotification {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return {
      events: [],
      ignored: [{ name: '(malformed)', reason: `not JSON: ${JSON.stringify(text.slice(0, 120))}` }],
    };
  }
  return parseNotification(body, arrived);
}
