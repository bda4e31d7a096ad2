/** Reading bucket event notifications (src/listen/events.ts) and the bucket map (src/listen/map.ts). */
import { describe, expect, it } from '@jest/globals';
import { decodeEventKey, eventKind, parseNotification, parseNotificationText } from '../../src/listen/events.js';
import { mapTargets, parseMapEntry } from '../../src/listen/map.js';

const record = (
  eventName: string,
  key: string,
  bucket = 'photos',
  eventTime = '2026-01-02T03:04:05.000Z',
): Record<string, unknown> => ({
  eventVersion: '2.1',
  eventSource: 'aws:s3',
  eventTime,
  eventName,
  s3: { bucket: { name: bucket }, object: { key, size: 3, eTag: 'abc' } },
});

describe('bucket event notifications', () => {
  it('decodes keys as S3 encodes them: + is a space, %2B a plus, UTF-8 percent-escapes', () => {
    expect(decodeEventKey('a+b%2Bc%25d.txt')).toBe('a b+c%d.txt');
    expect(decodeEventKey('caf%C3%A9+%E6%97%A5.txt')).toBe('café 日.txt');
    expect(decodeEventKey('bad%E0%A4%A')).toBeUndefined();
  });

  it('ObjectCreated:* and ObjectRemoved:* (with or without s3:), lifecycle expirations remove, other kinds are none', () => {
    expect(eventKind('ObjectCreated:Put')).toBe('created');
    expect(eventKind('s3:ObjectCreated:CompleteMultipartUpload')).toBe('created');
    expect(eventKind('ObjectRemoved:DeleteMarkerCreated')).toBe('removed');
    expect(eventKind('s3:LifecycleExpiration:Delete')).toBe('removed');
    expect(eventKind('s3:ObjectAccessed:Get')).toBeUndefined();
    expect(eventKind('ObjectRestore:Completed')).toBeUndefined();
  });

  it("reads S3's Records, keeps unknown and malformed records as ignored with a reason", () => {
    const parsed = parseNotification({
      Records: [
        record('ObjectCreated:Put', 'dir/a+b.txt'),
        record('ObjectAccessed:Get', 'x'),
        record('ObjectRemoved:Delete', '%E0%A4%A'),
        'nonsense',
      ],
    });
    expect(parsed.events).toEqual([
      {
        bucket: 'photos',
        key: 'dir/a b.txt',
        kind: 'created',
        name: 'ObjectCreated:Put',
        time: Date.parse('2026-01-02T03:04:05.000Z'),
      },
    ]);
    expect(parsed.ignored.map((i) => i.name)).toEqual(['ObjectAccessed:Get', 'ObjectRemoved:Delete', '(malformed)']);
    expect(parsed.ignored[1]?.reason).toMatch(/not URL-encoded text/);
  });

  it('an S3 test event is acknowledged as ignored; so is text that is not JSON', () => {
    expect(parseNotification({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: 'photos' })).toEqual({
      events: [],
      ignored: [{ name: 's3:TestEvent', reason: 'a test event' }],
    });
    const bad = parseNotificationText('{not json');
    expect(bad.events).toEqual([]);
    expect(bad.ignored[0]?.name).toBe('(malformed)');
  });

  it("reads MinIO's webhook body and its Redis access-format entries", () => {
    const webhook = {
      EventName: 's3:ObjectRemoved:Delete',
      Key: 'photos/a b.txt',
      Records: [record('s3:ObjectRemoved:Delete', 'a+b.txt')],
    };
    expect(parseNotification(webhook).events.map((e) => [e.key, e.kind])).toEqual([['a b.txt', 'removed']]);
    const redisEntry = [
      { Event: [record('s3:ObjectCreated:Put', 'x%2Fy.txt')], EventTime: '2026-01-02T03:04:05.000Z' },
    ];
    expect(parseNotification(redisEntry).events.map((e) => [e.key, e.kind])).toEqual([['x/y.txt', 'created']]);
  });

  it('unwraps an SNS envelope, and reads an EventBridge event with its key as sent', () => {
    const sns = {
      Type: 'Notification',
      Message: JSON.stringify({ Records: [record('ObjectCreated:Copy', 'n+1.txt')] }),
    };
    expect(parseNotification(sns).events.map((e) => e.key)).toEqual(['n 1.txt']);
    const bridge = {
      source: 'aws.s3',
      'detail-type': 'Object Deleted',
      time: '2026-01-02T03:04:05Z',
      detail: { bucket: { name: 'photos' }, object: { key: 'raw/a:b.txt' } },
    };
    expect(parseNotification(bridge).events).toEqual([
      {
        bucket: 'photos',
        key: 'raw/a:b.txt',
        kind: 'removed',
        name: 'Object Deleted',
        time: Date.parse('2026-01-02T03:04:05Z'),
      },
    ]);
  });

  it('an event without a usable time gets its arrival time', () => {
    expect(
      parseNotification({ Records: [record('ObjectCreated:Put', 'k', 'photos', 'yesterday')] }, 1234).events[0]?.time,
    ).toBe(1234);
  });
});

describe('the bucket map', () => {
  it('reads bucket=collection:model and bucket=collection:model:dimension', () => {
    expect(parseMapEntry('photos=photo-index:qwen3-vl-embedding', '--map')).toEqual({
      bucket: 'photos',
      collection: 'photo-index',
      model: 'qwen3-vl-embedding',
    });
    expect(parseMapEntry('photos=photo-index:qwen3-vl-embedding:256', '--map')).toEqual({
      bucket: 'photos',
      collection: 'photo-index',
      model: 'qwen3-vl-embedding',
      dimension: 256,
    });
  });

  it('refuses a malformed entry, an unknown model, a wrong dimension and one collection with two models, naming the problem', () => {
    expect(() => parseMapEntry('photos', '--map')).toThrow(/--map: "photos" is not bucket=collection:model/);
    expect(() => parseMapEntry('photos=idx:no-such-model', '--map')).toThrow(
      /--map: "no-such-model" is not a known model/,
    );
    expect(() => parseMapEntry('photos=idx:qwen3-vl-embedding:100', '--map')).toThrow(
      /--map: 100 is not a dimension of qwen3-vl-embedding/,
    );
    expect(() => parseMapEntry('Bad_Bucket=idx:qwen3-vl-embedding', '--map')).toThrow(/is not a bucket name/);
    expect(() => mapTargets(['p1x=idx:qwen3-vl-embedding', 'p1x=idx:tongyi-embedding-vision-plus'], undefined)).toThrow(
      /mapped to idx twice/,
    );
    expect(() => mapTargets([], undefined)).toThrow(/no bucket is mapped/);
  });
});
