import { describe, expect, it } from '@jest/globals';
import { entryCost } from '../../src/batcher.js';
import {
  GROUP_MAX_IMAGES,
  alone,
  checkComposition,
  completeStages,
  formUnits,
  groupParts,
  parseGroupRule,
  parseSidecar,
  stageOf,
  unitEtag,
} from '../../src/compose.js';
import type { Composition, Entry } from '../../src/compose.js';
import { ConfigError } from '../../src/errors.js';
import { resolveModel } from '../../src/models.js';
import type { ScannedObject } from '../../src/scanner.js';

const obj = (key: string, etag = 'e1'): ScannedObject => {
  const ext = key.slice(key.lastIndexOf('.') + 1);
  const base = { bucket: 'b', key, etag, size: 1000, lastModified: '2026-01-01T00:00:00.000Z' };
  if (ext === 'txt' || ext === 'md') return { ...base, modality: 'text' };
  if (ext === 'mp4') return { ...base, modality: 'video', format: 'mp4' };
  return { ...base, modality: 'image', format: ext === 'png' ? 'png' : 'jpeg' };
};

const keysOf = (entries: readonly Entry[]): string[][] =>
  entries.map((e) => ('unit' in e ? e.unit.members.map((m) => m.key) : [e.object.key]));

describe('parsing the composition options', () => {
  it('takes "folder" and a pattern with a capture group, and names the option of a wrong value', () => {
    expect(parseGroupRule('folder')).toEqual({ kind: 'multi_images', rule: 'folder' });
    expect(parseGroupRule('pattern:^items/(\\w+)_\\d+\\.jpg$')).toEqual({
      kind: 'multi_images',
      rule: 'pattern',
      pattern: '^items/(\\w+)_\\d+\\.jpg$',
    });
    expect(() => parseGroupRule('by-folder')).toThrow(/--group-images: must be "folder" or "pattern:/);
    expect(() => parseGroupRule('pattern:^items/\\w+\\.jpg$')).toThrow(/has no capture group/);
    expect(() => parseGroupRule('pattern:(unclosed')).toThrow(/invalid regular expression/);
    expect(() => parseGroupRule('pattern:(?:x)')).toThrow(ConfigError); // a non-capturing group names nothing
  });

  it('takes sidecar extensions with or without the dot, and refuses a list of nothing', () => {
    expect(parseSidecar('.txt, MD')).toEqual({ kind: 'fused', sidecar: ['txt', 'md'], unpaired: 'skip' });
    expect(parseSidecar('txt', 'alone')).toMatchObject({ unpaired: 'alone' });
    expect(() => parseSidecar(' , ')).toThrow(/--fuse-sidecar: must list text extensions/);
    expect(() => parseSidecar('.t/x')).toThrow(/is not a file extension/);
  });

  it('refuses a composition the model cannot embed', () => {
    expect(() => checkComposition(parseGroupRule('folder'), resolveModel('qwen3-vl-embedding'))).toThrow(
      /qwen3-vl-embedding has no multi_images/,
    );
    expect(() => checkComposition(parseSidecar('.txt'), resolveModel('tongyi-embedding-vision-plus'))).toThrow(
      /has no fused embeddings/,
    );
    expect(() =>
      checkComposition(parseGroupRule('folder'), resolveModel('tongyi-embedding-vision-flash')),
    ).not.toThrow();
    expect(() => checkComposition(parseSidecar('.txt'), resolveModel('qwen3-vl-embedding'))).not.toThrow();
  });
});

describe('which stage an object waits in', () => {
  it('folder rule: images by folder; texts, videos and top-level images alone', () => {
    const c = parseGroupRule('folder');
    expect(stageOf(obj('shop/item-1/a.jpg'), c)).toBe('shop/item-1/');
    expect(stageOf(obj('shop/item-1/sub/b.jpg'), c)).toBe('shop/item-1/sub/');
    expect(stageOf(obj('shop/item-1/notes.txt'), c)).toBeUndefined();
    expect(stageOf(obj('shop/item-1/clip.mp4'), c)).toBeUndefined();
    expect(stageOf(obj('top.png'), c)).toBeUndefined();
  });

  it('pattern rule: the first capture group, or the group named item; no match: alone', () => {
    const c = parseGroupRule('pattern:^catalog/(\\w+?)_\\d+\\.(jpg|png)$');
    expect(stageOf(obj('catalog/boot_1.jpg'), c)).toBe('boot');
    expect(stageOf(obj('catalog/boot_12.png'), c)).toBe('boot');
    expect(stageOf(obj('catalog/boot.jpg'), c)).toBeUndefined();
    const named = parseGroupRule('pattern:^(?<shelf>\\w+)/(?<item>\\w+)-');
    expect(stageOf(obj('a/hat-front.jpg'), named)).toBe('hat');
  });

  it('fused: media and sidecar-extension texts by their stem; other texts alone', () => {
    const c = parseSidecar('.txt');
    expect(stageOf(obj('p/cat.jpg'), c)).toBe('p/cat');
    expect(stageOf(obj('p/cat.txt'), c)).toBe('p/cat');
    expect(stageOf(obj('p/cat.mp4'), c)).toBe('p/cat');
    expect(stageOf(obj('p/cat.md'), c)).toBeUndefined();
    expect(alone(obj('p/cat.md'), c).skipped[0]).toMatchObject({ code: 'unpaired' });
    expect(alone(obj('p/cat.md'), parseSidecar('.txt', 'alone')).entries).toHaveLength(1);
  });
});

describe('forming units', () => {
  it('a group is its images in key order, whatever order they were staged in', () => {
    const c = parseGroupRule('folder');
    const formed = formUnits('f/', [obj('f/c.jpg'), obj('f/a.jpg'), obj('f/b.jpg')], c);
    expect(keysOf(formed.entries)).toEqual([['f/a.jpg', 'f/b.jpg', 'f/c.jpg']]);
    expect(formed.skipped).toEqual([]);
  });

  it('a group over GROUP_MAX_IMAGES is no job: each of its images is skipped group-too-large, naming the bound', () => {
    const c = parseGroupRule('folder');
    const images = (n: number): ScannedObject[] =>
      Array.from({ length: n }, (_, i) => obj(`big/img-${String(i).padStart(6, '0')}.jpg`));
    const atBound = formUnits('big/', images(GROUP_MAX_IMAGES), c);
    expect(keysOf(atBound.entries).map((k) => k.length)).toEqual([GROUP_MAX_IMAGES]);
    const over = formUnits('big/', images(GROUP_MAX_IMAGES + 1), c);
    expect(over.entries).toEqual([]);
    expect(over.skipped).toHaveLength(GROUP_MAX_IMAGES + 1);
    expect(new Set(over.skipped.map((s) => s.code))).toEqual(new Set(['group-too-large']));
    expect(over.skipped[0]!.reason).toContain(`has ${GROUP_MAX_IMAGES + 1} images, over the ${GROUP_MAX_IMAGES}`);
  });

  it('parts of 8: 11 images are 8 then 3, 16 are 8 and 8, 17 are 8, 8 and 1', () => {
    const n = (count: number): number[] => groupParts(Array.from({ length: count }, (_, i) => i)).map((p) => p.length);
    expect(n(11)).toEqual([8, 3]);
    expect(n(16)).toEqual([8, 8]);
    expect(n(17)).toEqual([8, 8, 1]);
    expect(n(1)).toEqual([1]);
  });

  it("a pair per media with the stem's caption; the first sidecar extension wins; the unpaired are skipped with reasons", () => {
    const c: Composition = parseSidecar('.txt,.md');
    const formed = formUnits('p/cat', [obj('p/cat.md'), obj('p/cat.jpg'), obj('p/cat.txt'), obj('p/cat.mp4')], c);
    expect(keysOf(formed.entries)).toEqual([
      ['p/cat.jpg', 'p/cat.txt'],
      ['p/cat.mp4', 'p/cat.txt'],
    ]);
    expect(formed.skipped.map((s) => [s.object.key, s.code])).toEqual([['p/cat.md', 'unpaired']]);
    const lonely = formUnits('p/dog', [obj('p/dog.jpg')], c);
    expect(lonely.skipped[0]?.reason).toMatch(/no sidecar text \(p\/dog\.txt or p\/dog\.md\)/);
    const orphan = formUnits('p/note', [obj('p/note.txt')], parseSidecar('.txt', 'alone'));
    expect(keysOf(orphan.entries)).toEqual([['p/note.txt']]);
  });

  it("a unit's ETag changes when any member changes, is added or goes, not with their order", () => {
    const a = { key: 'x.jpg', etag: '1' };
    const b = { key: 'x.txt', etag: '2' };
    expect(unitEtag([a, b])).toBe(unitEtag([b, a]));
    expect(unitEtag([a, { ...b, etag: '3' }])).not.toBe(unitEtag([a, b]));
    expect(unitEtag([a])).not.toBe(unitEtag([a, b]));
  });

  it("a unit costs the batcher one element (a group: one a part), and its members' bytes and tokens", () => {
    const model = resolveModel('tongyi-embedding-vision-plus');
    const members = Array.from({ length: 11 }, (_, i) => obj(`f/${i}.jpg`));
    const [entry] = formUnits('f/', members, parseGroupRule('folder')).entries;
    const cost = entryCost(entry!, { model, imageMode: 'inline' });
    expect(cost.elements).toBe(2);
    expect(cost.images).toBe(11);
    expect(cost.bytes).toBe(11 * entryCost({ object: members[0]! }, { model, imageMode: 'inline' }).bytes);
  });
});

describe('walking the stage in chunks', () => {
  async function* chunks<T>(all: T[], size: number): AsyncGenerator<T[]> {
    for (let i = 0; i < all.length; i += size) yield all.slice(i, i + size);
  }
  const staged = ['a', 'a', 'a', 'b', 'c', 'c', 'c', 'c', 'd'].map((stage, i) => ({ stage, object: i }));

  it('yields every stage once, whole, however the chunks cut it', async () => {
    for (const size of [1, 2, 3, 4, 100]) {
      const seen: { stage: string; members: number[] }[] = [];
      for await (const done of completeStages(chunks(staged, size))) seen.push(...done);
      expect(seen).toEqual([
        { stage: 'a', members: [0, 1, 2] },
        { stage: 'b', members: [3] },
        { stage: 'c', members: [4, 5, 6, 7] },
        { stage: 'd', members: [8] },
      ]);
    }
  });

  it('an empty stage yields nothing', async () => {
    const seen = [];
    for await (const done of completeStages(chunks([], 10))) seen.push(...done);
    expect(seen).toEqual([]);
  });
});
