/**
 * An S3 server for a test or the demo, and helpers to fill it. Tests run against MinIO
 * (test/support/minio.ts), a real S3-compatible server; s3rver (test/support/s3rver.ts)
 * remains only as the demo's and the benchmark's fallback when no MinIO binary is built.
 * Each test file starts its own server, so buckets and request counts never mix.
 */
import { CreateBucketCommand, DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

export interface RequestCounts {
  /** GetObject, presigned GETs included. */
  get: number;
  /** ListObjects(V2). */
  list: number;
  head: number;
}

export interface S3ForTest {
  /** `http://127.0.0.1:<port>`; use path-style addressing. */
  readonly endpoint: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly kind: 'minio' | 's3rver';
  requestCount(): Promise<RequestCounts>;
  /** Everything the server printed (for a failing test's message). */
  output(): string;
  close(): Promise<void>;
}

/** The variables that point a CLI process at this server. */
export function s3Env(s3: S3ForTest): Record<string, string> {
  return {
    S3_ENDPOINT: s3.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
  };
}

export function testS3Client(s3: Pick<S3ForTest, 'endpoint' | 'credentials' | 'kind'>): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { ...s3.credentials },
    // s3rver stores a streamed upload's chunk framing when the SDK adds default checksums;
    // MinIO takes the SDK's defaults as S3 does.
    ...(s3.kind === 's3rver'
      ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' }
      : {}),
  });
}

export async function createBucket(client: S3Client, name: string): Promise<void> {
  await client.send(new CreateBucketCommand({ Bucket: name }));
}

export async function putObject(
  client: S3Client,
  bucket: string,
  key: string,
  body: string | Uint8Array,
  contentType?: string,
): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
}

export async function deleteObject(client: S3Client, bucket: string, key: string): Promise<void> {
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}
