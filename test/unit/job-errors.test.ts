/**
 * The one mapping from the pipeline's errors to BullMQ's terms, and the vocabulary every
 * adapter's error shares, over fakes of the job and the worker.
 */
import { describe, expect, it } from '@jest/globals';
import type { Job, Worker } from 'bullmq';
import { EmbeddingApiError, ServiceError, UnprocessableJobError } from '../../src/errors.js';
import { ObjectStoreError } from '../../src/object-store.js';
import { VectorStoreError } from '../../src/qdrant-store.js';
import { inBullmqTerms, isFinalFailure } from '../../workers/job-errors.js';

function fakes(): { job: Job; worker: Worker; calls: string[] } {
  const calls: string[] = [];
  const job = {
    attemptsMade: 1,
    opts: { attempts: 3 },
    moveToDelayed: (at: number, token: string) => {
      calls.push(`moveToDelayed(${token}, ${at > 0 ? 'now' : 'never'})`);
      return Promise.resolve();
    },
  } as unknown as Job;
  const worker = {
    rateLimit: (ms: number) => (calls.push(`rateLimit(${ms})`), Promise.resolve()),
  } as unknown as Worker;
  return { job, worker, calls };
}

const fatal = (): EmbeddingApiError =>
  new EmbeddingApiError({ status: 401, code: 'InvalidApiKey', message: 'Invalid API-key provided.', requestId: 'r-1' });

describe('inBullmqTerms', () => {
  it("gives a stopping worker's job back to the queue with DelayedError, whatever the error", async () => {
    const { job, worker, calls } = fakes();
    const out = await inBullmqTerms(fatal(), {
      job,
      token: 'tok',
      stopping: true,
      worker,
      pause: () => Promise.reject(new Error('must not pause')),
    });
    expect({ name: out.name, calls }).toEqual({ name: 'DelayedError', calls: ['moveToDelayed(tok, now)'] });
  });

  it("pauses the queue on a fatal API error, with the provider's message, and returns RateLimitError", async () => {
    const { job, worker, calls } = fakes();
    const reasons: string[] = [];
    const out = await inBullmqTerms(fatal(), {
      job,
      token: 'tok',
      stopping: false,
      worker,
      pause: (reason) => (reasons.push(reason), Promise.resolve()),
    });
    expect({ name: out.name, calls, reasons }).toEqual({
      name: 'RateLimitError',
      calls: ['rateLimit(1000)'],
      reasons: ['401 InvalidApiKey: Invalid API-key provided.'],
    });
  });

  it('fails job data no attempt can process at once (UnrecoverableError, same message)', async () => {
    const { job, calls } = fakes();
    const out = await inBullmqTerms(new UnprocessableJobError('malformed reindex job: mode: Invalid option'), {
      job,
      token: 'tok',
      stopping: false,
    });
    expect({ name: out.name, message: out.message, calls }).toEqual({
      name: 'UnrecoverableError',
      message: 'malformed reindex job: mode: Invalid option',
      calls: [],
    });
    expect(isFinalFailure(job, out)).toBe(true);
  });

  it.each<[string, ObjectStoreError | VectorStoreError, string]>([
    [
      'an S3 key refused',
      new ObjectStoreError('fatal', 'InvalidAccessKeyId', 'GetObject s3://b/k failed: InvalidAccessKeyId 403'),
      'InvalidAccessKeyId',
    ],
    [
      'a bucket that does not exist',
      new ObjectStoreError('request', 'NoSuchBucket', 'ListObjectsV2 s3://b failed: NoSuchBucket 404'),
      'NoSuchBucket',
    ],
  ])('fails a refusal a retry would meet again at once, keeping its code: %s', async (_, err, code) => {
    const { job, calls } = fakes();
    const out = await inBullmqTerms(err, { job, token: 'tok', stopping: false });
    expect({ name: out.name, message: out.message, code: (out as { code?: string }).code, calls }).toEqual({
      name: 'UnrecoverableError',
      message: err.message,
      code,
      calls: [],
    });
    expect(isFinalFailure(job, out)).toBe(true);
  });

  it("retries Qdrant's refusals (the retry writes the vectors kept for it) and a store that is only slow", async () => {
    const { job } = fakes();
    for (const err of [
      new VectorStoreError('Qdrant upsert on collection "c" failed: 400 wrong vector dimension', 400, false, 'c'),
      new VectorStoreError('Qdrant upsert on collection "c" failed: 404 Not found: Collection c', 404, false, 'c'),
      new ObjectStoreError('retryable', 'SlowDown', 'GetObject s3://b/k failed: SlowDown 503'),
    ]) {
      const out = await inBullmqTerms(err, { job, token: 'tok', stopping: false });
      expect([out.name, isFinalFailure(job, out)]).toEqual([err.name, false]);
    }
  });

  it("throws anything else as it is, for BullMQ to retry, without a presigned URL's signature", async () => {
    const { job, worker, calls } = fakes();
    const err = new VectorStoreError(
      'Qdrant upsert on collection "c" failed: 503 see https://q.example/x?X-Amz-Signature=abc123',
      503,
      true,
      'c',
    );
    const out = await inBullmqTerms(err, {
      job,
      token: 'tok',
      stopping: false,
      worker,
      pause: () => Promise.reject(new Error('must not pause')),
    });
    expect(out).toBe(err);
    expect(out.message).not.toContain('abc123');
    expect(calls).toEqual([]);
    expect(isFinalFailure(job, out)).toBe(false);
  });
});

describe('one vocabulary for every outside system', () => {
  it('decides at each adapter, and every error is a ServiceError', () => {
    const errors: [ServiceError, string, string, boolean][] = [
      [fatal(), 'embedding API', 'fatal', false],
      [
        new EmbeddingApiError({ status: 429, code: 'Throttling.RateQuota', message: 'Requests rate limit exceeded' }),
        'embedding API',
        'rate-limited',
        true,
      ],
      [
        new ObjectStoreError('gone', 'NoSuchKey', 'GetObject s3://b/k failed: NoSuchKey 404'),
        'object store',
        'gone',
        false,
      ],
      [
        new ObjectStoreError('retryable', 'SlowDown', 'GetObject s3://b/k failed: SlowDown 503'),
        'object store',
        'retryable',
        true,
      ],
      [
        new VectorStoreError('Qdrant upsert failed: 400 wrong vector dimension', 400, false, 'c'),
        'vector store',
        'request',
        false,
      ],
      [new VectorStoreError('Qdrant upsert failed: 429', 429, true, 'c', 2), 'vector store', 'rate-limited', true],
      [new VectorStoreError('Qdrant upsert failed: network error', 0, true, 'c'), 'vector store', 'retryable', true],
    ];
    expect(errors.map(([e]) => [e instanceof ServiceError, e.service, e.decision, e.retryable])).toEqual(
      errors.map(([, s, d, r]) => [true, s, d, r]),
    );
  });

  it("keeps the provider's message as a field, not parsed back out of the error's text", () => {
    const e = new EmbeddingApiError({
      status: 400,
      code: 'InvalidParameter',
      message: 'a: b (request c)',
      requestId: 'req-9',
    });
    expect({ message: e.message, providerMessage: e.providerMessage, code: e.code }).toEqual({
      message: '400 InvalidParameter: a: b (request c) (request req-9)',
      providerMessage: 'a: b (request c)',
      code: 'InvalidParameter',
    });
  });
});
