/**
 * What the peer scripts share: their settings from the environment (the bench starts
 * them as child processes, like our CLI, so their CPU and memory are measured alike),
 * the bucket listing, and the line they end with (`RESULT {json}`).
 */
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { testS3Client } from '../../test/support/s3.js';

export interface PeerEnv {
  readonly bucket: string;
  readonly collection: string;
  readonly model: string;
  readonly dimension: number;
  readonly apiKey: string;
  readonly baseUrl: string;
  readonly qdrantUrl: string;
  readonly qdrantApiKey: string | undefined;
  readonly s3: S3Client;
  /** Stop after this many seconds (0: run to the end of the bucket). */
  readonly maxSeconds: number;
  readonly options: Record<string, number>;
}

function need(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`${name} is not set`);
  return v;
}

export function peerEnv(): PeerEnv {
  return {
    bucket: need('PEER_BUCKET'),
    collection: need('PEER_COLLECTION'),
    model: need('PEER_MODEL'),
    dimension: Number(need('PEER_DIMENSION')),
    apiKey: need('DASHSCOPE_API_KEY'),
    baseUrl: need('DASHSCOPE_BASE_URL'),
    qdrantUrl: need('QDRANT_URL'),
    qdrantApiKey: process.env.QDRANT_API_KEY || undefined,
    s3: testS3Client({
      endpoint: need('S3_ENDPOINT'),
      credentials: { accessKeyId: need('AWS_ACCESS_KEY_ID'), secretAccessKey: need('AWS_SECRET_ACCESS_KEY') },
      kind: 's3rver',
    }),
    maxSeconds: Number(process.env.PEER_MAX_SECONDS ?? 0),
    options: JSON.parse(process.env.PEER_OPTIONS ?? '{}') as Record<string, number>,
  };
}

export async function listKeys(s3: S3Client, bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.NextContinuationToken;
  } while (token);
  return keys;
}

export async function getText(s3: S3Client, bucket: string, key: string): Promise<string> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await r.Body?.transformToString('utf8')) ?? '';
}

export function printResult(result: Record<string, unknown>): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}
