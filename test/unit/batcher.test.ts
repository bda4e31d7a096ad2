import { describe, expect, it } from '@jest/globals';
import { Batcher } from '../../src/batcher.js';
import { entryObjects } from '../../src/compose.js';
import { resolveModel } from '../../src/models.js';
import type { ScannedObject } from '../../src/scanner.js';

const obj = (key: string, size: number, modality: 'text' | 'image' | 'video'): ScannedObject =>
  ({
    bucket: 'b',
    key,
    etag: 'e',
    size,
    lastModified: '2026-01-01T00:00:00.000Z',
    ...(modality === 'text'
      ? { modality }
      : modality === 'image'
        ? { modality, format: 'png' }
        : { modality, format: 'mp4' }),
  }) as ScannedObject;

function batchAll(b: Batcher, objects: ScannedObject[]): ScannedObject[][] {
  const jobs: ScannedObject[][] = [];
  for (const o of objects) {
    const closed = b.add({ object: o });
    if (closed) jobs.push(closed.flatMap(entryObjects));
  }
  const last = b.flush();
  if (last) jobs.push(last.flatMap(entryObjects));
  return jobs;
}

describe('grouping objects into jobs of about one request', () => {
  it('puts 20 short texts in a qwen3-vl-embedding job and never loses or repeats an object', () => {
    const objects = Array.from({ length: 95 }, (_, i) => obj(`t${i}.txt`, 400, 'text'));
    const jobs = batchAll(new Batcher({ model: resolveModel('qwen3-vl-embedding'), imageMode: 'inline' }), objects);
    expect(jobs.map((j) => j.length)).toEqual([20, 20, 20, 20, 15]);
    expect(jobs.flat().map((o) => o.key)).toEqual(objects.map((o) => o.key));
  });

  it('keeps to one image a job for qwen3-vl-embedding, filling the rest with texts', () => {
    const objects = [
      obj('a.png', 1000, 'image'),
      obj('b.txt', 10, 'text'),
      obj('c.png', 1000, 'image'),
      obj('d.txt', 10, 'text'),
    ];
    const jobs = batchAll(new Batcher({ model: resolveModel('qwen3-vl-embedding'), imageMode: 'inline' }), objects);
    expect(jobs.map((j) => j.map((o) => o.key))).toEqual([
      ['a.png', 'b.txt'],
      ['c.png', 'd.txt'],
    ]);
  });

  it('bounds a tongyi job by its estimated tokens', () => {
    // 600 bytes = about 200 tokens: five fit under 1,024, the sixth opens a new job
    const objects = Array.from({ length: 12 }, (_, i) => obj(`t${i}.txt`, 600, 'text'));
    const jobs = batchAll(
      new Batcher({ model: resolveModel('tongyi-embedding-vision-plus'), imageMode: 'inline' }),
      objects,
    );
    expect(jobs.map((j) => j.length)).toEqual([5, 5, 2]);
  });

  it('gives a text larger than one request a job of its own', () => {
    const objects = [obj('small.txt', 30, 'text'), obj('huge.txt', 500_000, 'text'), obj('small2.txt', 30, 'text')];
    const jobs = batchAll(
      new Batcher({ model: resolveModel('tongyi-embedding-vision-plus'), imageMode: 'inline' }),
      objects,
    );
    expect(jobs.map((j) => j.map((o) => o.key))).toEqual([['small.txt'], ['huge.txt'], ['small2.txt']]);
  });

  it('keeps inline images within the request body limit', () => {
    const objects = Array.from({ length: 6 }, (_, i) => obj(`i${i}.png`, 2_000_000, 'image'));
    const jobs = batchAll(
      new Batcher({ model: resolveModel('tongyi-embedding-vision-plus'), imageMode: 'inline' }),
      objects,
    );
    // 2 MB is 2.67 MB of base64: two fit in 6 MiB, three do not
    expect(jobs.map((j) => j.length)).toEqual([2, 2, 2]);
    const urlJobs = batchAll(
      new Batcher({ model: resolveModel('tongyi-embedding-vision-plus'), imageMode: 'url' }),
      objects,
    );
    expect(urlJobs.map((j) => j.length)).toEqual([6]);
  });
});
