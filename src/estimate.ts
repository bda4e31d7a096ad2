/**
 * An estimate before spending: scan a bucket without embedding and predict the requests,
 * tokens, cost and duration a run would have.
 *
 * The listing gives every object's size; a sample of the texts is downloaded to measure
 * tokens per byte and chunks per text with the real tokenizer, and a sample of the images'
 * first bytes gives their pixel sizes (image tokens by the same pixel rule the usage
 * follows). Requests come from the producer's own grouping (the Batcher) with the
 * measured token ratio, job by job, as the worker's planner would split them.
 *
 * The listing is streamed, never held: it is listed twice, once to count and sample and
 * once, with the measured ratio, to group into jobs and count their requests as each job
 * closes. Memory stays one page and the samples, whatever the bucket's size.
 */
import { Batcher } from './batcher.js';
import { entryObjects } from './compose.js';
import { imageTokens } from './media.js';
import { estimateCost } from './models.js';
import type { ModelSpec } from './models.js';
import type { ObjectStore } from './object-store.js';
import { decodeText } from './prepare.js';
import { sniffImage } from './media.js';
import { scanPages } from './scanner.js';
import type { ScannedObject, ScanOptions } from './scanner.js';
import type { TokenCounter } from './tokens.js';

export interface Estimate {
  readonly objects: { text: number; image: number; video: number; skipped: number };
  readonly textBytes: number;
  readonly sampled: { texts: number; images: number };
  readonly tokensPerByte: number;
  readonly inputs: number;
  readonly requests: number;
  readonly textTokens: number;
  readonly imageTokens: number;
  readonly costUsd: number;
  /** Minutes at the model's documented rate limits (null when it has none). */
  readonly minutesAtRateLimit: number | null;
}

export interface EstimateOptions extends ScanOptions {
  readonly chunkTokens?: number;
  readonly imageMode: 'inline' | 'url';
  /** Texts and images to download for measuring. @defaultValue 200 */
  readonly sample?: number;
}

/** Keeps a uniform sample of a stream (reservoir sampling). */
function reservoir<T>(size: number): { offer(item: T): void; items: T[] } {
  const items: T[] = [];
  let seen = 0;
  return {
    items,
    offer(item) {
      seen += 1;
      if (items.length < size) items.push(item);
      else {
        const j = Math.floor(Math.random() * seen);
        if (j < size) items[j] = item;
      }
    },
  };
}

export async function estimateRun(
  store: ObjectStore,
  tokens: TokenCounter,
  model: ModelSpec,
  opts: EstimateOptions,
): Promise<Estimate> {
  const sampleSize = opts.sample ?? 200;
  const texts = reservoir<ScannedObject>(sampleSize);
  const images = reservoir<ScannedObject>(sampleSize);
  const counts = { text: 0, image: 0, video: 0, skipped: 0 };
  let textBytes = 0;
  for await (const page of scanPages(store, opts)) {
    counts.skipped += page.skipped.length;
    for (const o of page.objects) {
      counts[o.modality] += 1;
      if (o.modality === 'text') {
        textBytes += o.size;
        texts.offer(o);
      } else if (o.modality === 'image') images.offer(o);
    }
  }

  // tokens per byte and chunks per token, measured on the sample
  const cap = Math.min(model.textTokenLimit, opts.chunkTokens ?? model.textTokenLimit);
  let sampleBytes = 0;
  let sampleTokens = 0;
  for (const o of texts.items) {
    const decoded = decodeText(o.key, (await store.get(o.bucket, o.key)).bytes);
    if ('failure' in decoded) continue;
    sampleBytes += o.size;
    sampleTokens += tokens.count(decoded.ok);
  }
  const tokensPerByte = sampleBytes > 0 ? sampleTokens / sampleBytes : 1 / 3;
  let pixelTokens = 0;
  for (const o of images.items) {
    const facts = sniffImage((await store.get(o.bucket, o.key, [0, Math.min(o.size, 65_536) - 1])).bytes);
    pixelTokens += 'error' in facts ? 0 : imageTokens(facts.width, facts.height);
  }
  const avgImageTokens = images.items.length > 0 ? pixelTokens / images.items.length : 0;

  // the producer's jobs, then each job's requests as the planner would split them
  const batcher = new Batcher({
    model,
    imageMode: opts.imageMode,
    ...(opts.chunkTokens !== undefined ? { chunkTokens: opts.chunkTokens } : {}),
  });
  let requests = 0;
  let inputs = 0;
  const addJob = (job: readonly ScannedObject[]): void => {
    let jobInputs = 0;
    let jobTokens = 0;
    let media = 0;
    for (const o of job) {
      if (o.modality === 'text') {
        const t = Math.max(1, Math.round(o.size * tokensPerByte));
        jobTokens += t;
        jobInputs += Math.max(1, Math.ceil(t / cap));
      } else {
        jobInputs += 1;
        media += 1;
      }
    }
    inputs += jobInputs;
    const byElements = model.maxElements ? Math.ceil(jobInputs / model.maxElements) : 1;
    const byTokens = model.textLimitScope === 'per-request' ? Math.ceil(jobTokens / model.textTokenLimit) : 1;
    const byMedia = model.maxImagesPerRequest ? Math.ceil(media / Math.max(1, model.maxImagesPerRequest)) : 1;
    requests += Math.max(1, byElements, byTokens, byMedia);
  };
  // the second listing: each job counted as it closes, nothing of the listing kept
  for await (const page of scanPages(store, opts)) {
    for (const o of page.objects) {
      const closed = batcher.add({ object: o });
      if (closed) addJob(closed.flatMap(entryObjects));
    }
    // the producer closes its open job at the end of every listing page
    const last = batcher.flush();
    if (last) addJob(last.flatMap(entryObjects));
  }
  const textTokens = Math.round(textBytes * tokensPerByte);
  const imageTokensTotal = Math.round(counts.image * avgImageTokens);
  const minutes = [model.rpm ? requests / model.rpm : 0, model.tpm ? (textTokens + imageTokensTotal) / model.tpm : 0];
  return {
    objects: counts,
    textBytes,
    sampled: { texts: texts.items.length, images: images.items.length },
    tokensPerByte,
    inputs,
    requests,
    textTokens,
    imageTokens: imageTokensTotal,
    costUsd: estimateCost(model, textTokens, imageTokensTotal),
    minutesAtRateLimit: model.rpm || model.tpm ? Math.max(...minutes) : null,
  };
}
