/**
 * Peer (a): the loop a quick hand-written script runs. List the bucket, then for each
 * object in turn: GetObject, embed its text alone (one object per request, with the
 * project's DashScopeClient), upsert its point to Qdrant. A 429 is waited out (1 s, then
 * the same request again), so it survives the provider's rate limit without our limiter.
 *
 * Run by the bench as a child process: `node --import tsx bench/peers/sequential.ts`,
 * settings from PEER_* variables (see common.ts); prints `RESULT {json}`.
 */
import { QdrantClient } from '@qdrant/js-client-rest';
import { v5 as uuidv5 } from 'uuid';
import { DashScopeClient } from '../../src/embedder.js';
import { EmbeddingApiError } from '../../src/errors.js';
import { getText, listKeys, peerEnv, printResult } from './common.js';

const NAMESPACE = '6ba7b811-9dad-11d1-80b4-00c04fd430c8';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const env = peerEnv();
const t0 = performance.now();
const client = new DashScopeClient({ apiKey: env.apiKey, baseUrl: env.baseUrl });
const qdrant = new QdrantClient({ url: env.qdrantUrl, ...(env.qdrantApiKey ? { apiKey: env.qdrantApiKey } : {}) });
if (!(await qdrant.collectionExists(env.collection)).exists) {
  await qdrant.createCollection(env.collection, { vectors: { size: env.dimension, distance: 'Cosine' } });
}
const keys = await listKeys(env.s3, env.bucket);
let done = 0;
let requests = 0;
let throttled = 0;
for (const key of keys) {
  if (env.maxSeconds > 0 && performance.now() - t0 > env.maxSeconds * 1000) break;
  const text = await getText(env.s3, env.bucket, key);
  let vector: number[] | undefined;
  while (!vector) {
    try {
      requests += 1;
      const r = await client.embed({ model: env.model, contents: [{ text }], dimension: env.dimension });
      vector = r.vectors[0];
    } catch (err) {
      if (!(err instanceof EmbeddingApiError) || err.status !== 429) throw err;
      throttled += 1;
      await sleep(1000);
    }
  }
  await qdrant.upsert(env.collection, {
    wait: true,
    points: [{ id: uuidv5(`${env.bucket}/${key}`, NAMESPACE), vector, payload: { key } }],
  });
  done += 1;
}
const seconds = (performance.now() - t0) / 1000;
printResult({
  objects: done,
  listed: keys.length,
  seconds,
  objectsPerS: done / seconds,
  requests,
  throttled,
  stoppedEarly: done < keys.length,
});
