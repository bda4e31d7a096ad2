/**
 * Helpers for the listener's tests and benchmark: MinIO's notification targets (its
 * variables and the bucket configuration that points a bucket at one), the bucket and the
 * collection as key -> ETag maps, and a collection's points in a form two runs can be
 * compared in (without when and by which run each point was written).
 */
import { ListObjectsV2Command, PutBucketNotificationConfigurationCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import type { QdrantClient } from '@qdrant/js-client-rest';
import { allPoints } from './qdrant-points.js';
import type { Point } from './qdrant-points.js';

/** MinIO's variables for a webhook target and a Redis target (format access), both with a queue directory. */
export function minioTargets(opts: {
  id: string;
  webhook?: { url: string; token: string };
  redis?: { address: string; list: string };
  queueDir: string;
}): Record<string, string> {
  const id = opts.id.toUpperCase();
  return {
    ...(opts.webhook
      ? {
          [`MINIO_NOTIFY_WEBHOOK_ENABLE_${id}`]: 'on',
          [`MINIO_NOTIFY_WEBHOOK_ENDPOINT_${id}`]: opts.webhook.url,
          [`MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_${id}`]: opts.webhook.token,
          // events the listener could not take (it was down) wait here and are sent again
          [`MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_${id}`]: `${opts.queueDir}/webhook`,
        }
      : {}),
    ...(opts.redis
      ? {
          [`MINIO_NOTIFY_REDIS_ENABLE_${id}`]: 'on',
          [`MINIO_NOTIFY_REDIS_ADDRESS_${id}`]: opts.redis.address,
          [`MINIO_NOTIFY_REDIS_KEY_${id}`]: opts.redis.list,
          [`MINIO_NOTIFY_REDIS_FORMAT_${id}`]: 'access',
          [`MINIO_NOTIFY_REDIS_QUEUE_DIR_${id}`]: `${opts.queueDir}/redis`,
        }
      : {}),
  };
}

/** Points a bucket's object creations and removals at a target (`arn:minio:sqs::ID:webhook` or `...:redis`). */
export async function notifyTo(client: S3Client, bucket: string, arn: string): Promise<void> {
  await client.send(
    new PutBucketNotificationConfigurationCommand({
      Bucket: bucket,
      NotificationConfiguration: {
        QueueConfigurations: [{ Id: 'mm-ingest', QueueArn: arn, Events: ['s3:ObjectCreated:*', 's3:ObjectRemoved:*'] }],
      },
    }),
  );
}

/** Every object of the bucket: key -> ETag (without quotes). */
export async function bucketEtags(client: S3Client, bucket: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, ...(token ? { ContinuationToken: token } : {}) }),
    );
    for (const o of page.Contents ?? []) out.set(o.Key!, (o.ETag ?? '').replace(/"/g, ''));
    token = page.NextContinuationToken;
  } while (token);
  return out;
}

/** The objects a collection holds: key -> ETag of its chunk 0. */
export async function indexedEtags(qdrant: QdrantClient, collection: string): Promise<Map<string, string>> {
  const exists = (await qdrant.collectionExists(collection)).exists;
  if (!exists) return new Map();
  return new Map(
    (await allPoints(qdrant, collection))
      .filter((p) => p.payload.chunk === 0)
      .map((p) => [String(p.payload.key), String(p.payload.etag)]),
  );
}

export const sameMap = (a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean =>
  a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

/** A collection's points by id, without the fields that say when and by which run each was written. */
export async function comparablePoints(
  qdrant: QdrantClient,
  collection: string,
): Promise<Map<string, Omit<Point, 'id'>>> {
  const points = await allPoints(qdrant, collection);
  return new Map(
    points.map((p) => {
      const { indexed_at: _at, run_id: _run, ...payload } = p.payload;
      return [p.id, { vector: p.vector, payload }];
    }),
  );
}
