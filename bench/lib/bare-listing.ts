/** The bare ListObjectsV2 loop that the scan's rate is measured against (bucket-scale, scan-alone). */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';

/** Lists the whole bucket with the SDK, 1,000 keys a page, and nothing else. */
export async function bareListing(client: S3Client, bucket: string): Promise<{ keys: number; seconds: number }> {
  const t0 = performance.now();
  let token: string | undefined;
  let keys = 0;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token, MaxKeys: 1000 }),
    );
    keys += page.Contents?.length ?? 0;
    token = page.NextContinuationToken;
  } while (token);
  return { keys, seconds: (performance.now() - t0) / 1000 };
}
