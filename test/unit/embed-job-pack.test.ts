import { describe, expect, it } from '@jest/globals';
import { packObjects, resolveEmbedJob, unpackObjects } from '../../src/embed-job.js';
import type { EmbedSettings, ObjectTuple } from '../../src/embed-job.js';

const settings: EmbedSettings = {
  collection: 'c',
  model: 'qwen3-vl-embedding',
  dimension: 256,
  chunkOverlap: 0,
  imageMode: 'inline',
  maxBodyBytes: 6_000_000,
  instruct: 'x'.repeat(2000),
};

describe('packed job objects', () => {
  it('give back exactly the tuples they were packed from, odd keys and ETags included', () => {
    const objects: ObjectTuple[] = [
      ['photos/2024/a.jpg', 'd41d8cd98f00b204e9800998ecf8427e', 1234, 1_700_000_000_123, 'i'],
      ['photos/2024/ab.png', '9e107d9d372bb6826bd81d3542a419d6-12', 5, 1_699_999_999_000, 'i'],
      ['photos/2024/ab\u{1F600}.txt', 'abc', 0, 1_700_000_000_000, 't'],
      ['photos/2024/ab\u{1F601}.txt', 'ABCDEF0123456789ABCDEF0123456789', 7, 1_700_000_000_000, 't'],
      ['x\n\u0000/clip.mp4', 'ffffffffffffffffffffffffffffffff', 99, 0, 'v'],
    ];
    const packed = packObjects(objects);
    expect(unpackObjects(JSON.parse(JSON.stringify(packed)))).toEqual(objects);
    // the shared prefix is stored once: 'photos/2024/a' is not repeated
    expect(packed[6]).toBe('b.png');
  });

  it('take about 40 bytes an object for 20 short texts of one folder', () => {
    const objects: ObjectTuple[] = Array.from({ length: 20 }, (_, i) => [
      `short/000123/00123${String(i).padStart(2, '0')}.txt`,
      'd41d8cd98f00b204e9800998ecf8427e',
      80 + i,
      1_764_000_000_000 + i * 1000,
      't',
    ]);
    const bytes = JSON.stringify({ v: 2, runId: 'R1234567890AB', o: packObjects(objects) }).length;
    expect(bytes).toBeLessThanOrEqual(20 * 45 + 60);
  });

  it('refuse malformed packs with the reason', () => {
    expect(() => unpackObjects([0, 'a.txt', 'x', 1])).toThrow('not a list of five values an object');
    expect(() => unpackObjects([3, 'a.txt', 'x', 1, 0])).toThrow('malformed key at object 0');
    expect(() => unpackObjects([0, 'a.exe', 'x', 1, 0])).toThrow('"a.exe", which is no text, image or video key');
  });
});

describe('resolving a job of either format', () => {
  const lookup = (id: string): Promise<{ bucket: string; settings: EmbedSettings } | undefined> =>
    Promise.resolve(id === 'R1' ? { bucket: 'b', settings } : undefined);
  const objects: ObjectTuple[] = [['a.txt', 'd41d8cd98f00b204e9800998ecf8427e', 3, 1000, 't']];

  it('runs a format-1 job (queued by the version before) with the settings it carries', async () => {
    const old = { v: 1, runId: 'OLD', bucket: 'ob', settings: { ...settings, collection: 'old' }, objects };
    await expect(resolveEmbedJob(old, lookup)).resolves.toEqual({
      runId: 'OLD',
      bucket: 'ob',
      settings: { ...settings, collection: 'old' },
      objects,
    });
  });

  it("runs a format-2 job with its run record's bucket and settings", async () => {
    await expect(resolveEmbedJob({ v: 2, runId: 'R1', o: packObjects(objects) }, lookup)).resolves.toEqual({
      runId: 'R1',
      bucket: 'b',
      settings,
      objects,
    });
  });

  it('refuses an unknown format, and a job whose run record is gone, saying why', async () => {
    await expect(resolveEmbedJob({ v: 3, runId: 'R1' }, lookup)).rejects.toThrow(
      'embed job of format 3: this worker runs formats 1 and 2',
    );
    await expect(resolveEmbedJob({ v: 2, runId: 'GONE', o: packObjects(objects) }, lookup)).rejects.toThrow(
      "embed job of run GONE: the run's record",
    );
    await expect(resolveEmbedJob({ v: 2, o: [] }, lookup)).rejects.toThrow('it has no run id');
  });
});
