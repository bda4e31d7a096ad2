/**
 * The bucket checks: one listing page and one byte of one object; and whether the provider
 * can download the store's presigned URLs.
 */
import { PRIVATE_MEDIA_VARIABLE } from '../media-urls.js';
import { ObjectStoreError } from '../object-store.js';
import { CheckTimeout, bounded, message, withoutRequestId, unanswered, row } from './rows.js';
import type { CheckRow, DoctorClients, DoctorTarget } from './rows.js';

/** Keys listed by the bucket check: enough to find a non-empty object to read. */
const LIST_PAGE = 100;

function s3Failure(check: string, err: unknown, t: DoctorTarget, permission: string): CheckRow {
  if (err instanceof CheckTimeout)
    return row(check, 'fail', unanswered(t.s3Endpoint, err), 'check S3_ENDPOINT / --s3-endpoint and the network');
  if (!(err instanceof ObjectStoreError))
    return row(check, 'fail', message(err), 'check the S3 settings (S3_ENDPOINT, AWS_REGION, credentials)');
  if (err.code === 'NoSuchBucket') {
    return row(
      check,
      'fail',
      `bucket "${t.bucket}" does not exist at ${t.s3Endpoint} (NoSuchBucket)`,
      'check --bucket, S3_ENDPOINT and AWS_REGION',
    );
  }
  switch (err.decision) {
    case 'fatal':
      return row(
        check,
        'fail',
        `refused: ${err.code}`,
        `check the credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE ...) and that they allow ${permission} on ${t.bucket}`,
      );
    case 'retryable':
      // Node's network codes (ECONNREFUSED, UND_ERR_SOCKET) against the store's own (SlowDown, 5xx)
      return /^(E[A-Z]+|UND_ERR_\w+)$/.test(err.code)
        ? row(
            check,
            'fail',
            `no answer from ${t.s3Endpoint}: ${err.code}`,
            'check S3_ENDPOINT / --s3-endpoint and the network',
          )
        : row(
            check,
            'fail',
            `the store answered ${err.code}`,
            'the store is throttling or failing: run doctor again later',
          );
    default:
      return row(
        check,
        'fail',
        withoutRequestId(err.message),
        'check --bucket, S3_ENDPOINT, AWS_REGION and S3_FORCE_PATH_STYLE',
      );
  }
}

export async function checkBucket(objects: DoctorClients['objects'], t: DoctorTarget): Promise<CheckRow[]> {
  const where = `s3://${t.bucket}/${t.prefix}`;
  let page;
  try {
    page = await bounded(objects.listPage(t.bucket, t.prefix, undefined, LIST_PAGE), t.timeoutMs);
  } catch (err) {
    return [
      s3Failure('bucket', err, t, 's3:ListBucket'),
      row('object read', 'skip', 'not checked: the bucket could not be listed'),
    ];
  }
  const listed = `${page.objects.length}${page.nextToken !== undefined ? '+' : ''}`;
  if (page.objects.length === 0) {
    return [
      row(
        'bucket',
        'warn',
        `${where} lists no object: a run would index nothing`,
        'check --prefix (keys are case-sensitive and have no leading /)',
        { listed: 0 },
      ),
      row('object read', 'skip', 'not checked: no object to read'),
    ];
  }
  const objectsWord = listed === '1' ? 'object' : 'objects';
  const rows = [
    row('bucket', 'ok', `${where} lists (${listed} ${objectsWord} on the first page)`, '', {
      listed: page.objects.length,
    }),
  ];
  // One byte of the first non-empty object; a range on an empty one is a 416.
  const target = page.objects.find((o) => o.size > 0) ?? page.objects[0]!;
  try {
    const got = await bounded(objects.get(t.bucket, target.key, target.size > 0 ? [0, 0] : undefined), t.timeoutMs);
    rows.push(row('object read', 'ok', `read ${got.bytes.length} byte of ${target.key}`, '', { key: target.key }));
  } catch (err) {
    rows.push(s3Failure('object read', err, t, 's3:GetObject'));
  }
  return rows;
}

/** Whether a run's media URLs can reach the provider: what index would do with them. */
export function checkMediaUrls(
  m: NonNullable<DoctorTarget['mediaUrls']>,
  t: Pick<DoctorTarget, 's3Endpoint'>,
): CheckRow {
  const fix = `use IMAGE_MODE=inline for images and an S3_ENDPOINT the provider can reach for videos, or set ${PRIVATE_MEDIA_VARIABLE}=true if the API can reach this store (a local simulator)`;
  if (m.reason === undefined)
    return row('media urls', 'ok', `the provider can download presigned URLs of ${t.s3Endpoint}`);
  if (m.allowed)
    return row(
      'media urls',
      'ok',
      `${m.reason}, and ${PRIVATE_MEDIA_VARIABLE}=true: its presigned URLs are sent (the API must reach it)`,
    );
  if (m.imageMode === 'url')
    return row(
      'media urls',
      'fail',
      `${m.reason}: the provider cannot download its URLs, so index refuses IMAGE_MODE=url (and skips videos)`,
      fix,
    );
  return row(
    'media urls',
    'warn',
    `${m.reason}: the provider cannot download its URLs, so index skips videos (unreachable-url); images go inline`,
    fix,
  );
}
