import { describe, it, expect } from '@jest/globals';
import { ConfigError } from '../../src/errors.js';
import { resolveModel } from '../../src/models.js';
import type { FetchedObject, ListPage, ObjectInfo, ObjectStore } from '../../src/object-store.js';
import { scanPages } from '../../src/scanner.js';
import type { ScanOptions, ScanPage } from '../../src/scanner.js';

/** Lists a fixed set of keys in pages, like S3; fails the test if anything is downloaded. */
class FakeStore implements ObjectStore {
  readonly listCalls: { prefix: string; token: string | undefined; pageSize: number | undefined }[] = [];
  getCalls = 0;
  presignCalls = 0;
  private readonly objects: ObjectInfo[];

  constructor(entries: readonly (readonly [key: string, size: number])[]) {
    this.objects = entries
      .map(([key, size]) => ({
        bucket: 'bkt',
        key,
        size,
        etag: `etag-${key}`,
        lastModified: '2024-01-01T00:00:00.000Z',
      }))
      .sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  async listPage(_bucket: string, prefix: string, token?: string, pageSize = 1000): Promise<ListPage> {
    this.listCalls.push({ prefix, token, pageSize });
    const under = this.objects.filter((o) => o.key.startsWith(prefix));
    const start = token === undefined ? 0 : Number(token.replace('tok-', ''));
    const end = start + pageSize;
    return end < under.length
      ? { objects: under.slice(start, end), nextToken: `tok-${end}` }
      : { objects: under.slice(start) };
  }

  async get(): Promise<FetchedObject> {
    this.getCalls += 1;
    throw new Error('the scanner must not download objects');
  }

  async head(): Promise<ObjectInfo | undefined> {
    this.getCalls += 1;
    throw new Error('the scanner must not look objects up one by one');
  }

  async presign(): Promise<string> {
    this.presignCalls += 1;
    throw new Error('the scanner must not presign objects');
  }
}

const qwen3 = resolveModel('qwen3-vl-embedding');
const MB = 1_000_000;

async function scanAll(store: ObjectStore, opts: Partial<ScanOptions> = {}): Promise<ScanPage[]> {
  const pages: ScanPage[] = [];
  for await (const page of scanPages(store, { bucket: 'bkt', model: qwen3, ...opts })) pages.push(page);
  return pages;
}

const keysOf = (pages: readonly ScanPage[]): string[] => pages.flatMap((p) => p.objects.map((o) => o.key));

describe('scanPages', () => {
  it('yields one page per listing call, passing each page the token it was listed with', async () => {
    const store = new FakeStore(
      ['a.txt', 'b.txt', 'c.txt', 'd.txt', 'e.txt', 'f.txt', 'g.txt'].map((k) => [k, 10] as const),
    );
    const pages = await scanAll(store, { pageSize: 3 });
    expect(pages.map((p) => [p.pageNumber, p.token, p.nextToken, p.objects.length])).toEqual([
      [1, undefined, 'tok-3', 3],
      [2, 'tok-3', 'tok-6', 3],
      [3, 'tok-6', undefined, 1],
    ]);
    expect(store.listCalls.map((c) => c.pageSize)).toEqual([3, 3, 3]);
  });

  it('streams one page ahead: the second page is listed while the first is consumed, the third not until the second is', async () => {
    const store = new FakeStore(['a.txt', 'b.txt', 'c.txt'].map((k) => [k, 10] as const));
    const scan = scanPages(store, { bucket: 'bkt', model: qwen3, pageSize: 1 });
    const first = await scan.next();
    expect(first.done).toBe(false);
    expect(store.listCalls.map((c) => c.token)).toEqual([undefined, 'tok-1']);
    await scan.return(undefined);
    expect(store.listCalls).toHaveLength(2);
  });

  it('resumes from startAfterToken and reports it as the first page token', async () => {
    const store = new FakeStore(['a.txt', 'b.txt', 'c.txt', 'd.txt'].map((k) => [k, 10] as const));
    const pages = await scanAll(store, { pageSize: 2, startAfterToken: 'tok-2' });
    expect(pages).toHaveLength(1);
    expect(pages[0]?.token).toBe('tok-2');
    expect(pages[0]?.pageNumber).toBe(1);
    expect(keysOf(pages)).toEqual(['c.txt', 'd.txt']);
  });

  it('classifies texts, images and videos with their formats and listing metadata', async () => {
    const store = new FakeStore([
      ['docs/readme.md', 5],
      ['pics/cat.JPG', 2000],
      ['clips/run.mov', 3000],
    ]);
    const [page] = await scanAll(store);
    expect(page?.objects).toEqual([
      {
        bucket: 'bkt',
        key: 'clips/run.mov',
        size: 3000,
        etag: 'etag-clips/run.mov',
        lastModified: '2024-01-01T00:00:00.000Z',
        modality: 'video',
        format: 'mov',
      },
      {
        bucket: 'bkt',
        key: 'docs/readme.md',
        size: 5,
        etag: 'etag-docs/readme.md',
        lastModified: '2024-01-01T00:00:00.000Z',
        modality: 'text',
      },
      {
        bucket: 'bkt',
        key: 'pics/cat.JPG',
        size: 2000,
        etag: 'etag-pics/cat.JPG',
        lastModified: '2024-01-01T00:00:00.000Z',
        modality: 'image',
        format: 'jpeg',
      },
    ]);
    expect(page?.skipped).toEqual([]);
  });

  it('skips every kind of unusable object with its code and a reason naming the problem', async () => {
    const store = new FakeStore([
      ['folder/', 0],
      ['bin/tool.exe', 10],
      ['bin/Makefile', 10],
      ['empty.txt', 0],
      ['clip.webm', 100],
      ['huge.mp4', 50 * MB + 1],
    ]);
    const [page] = await scanAll(store);
    const skips = Object.fromEntries((page?.skipped ?? []).map((s) => [s.object.key, [s.code, s.reason]]));
    expect(skips).toEqual({
      'folder/': ['directory-marker', expect.stringContaining('folder placeholder')],
      'bin/tool.exe': ['unsupported-type', expect.stringContaining('".exe" is not a supported')],
      'bin/Makefile': ['unsupported-type', expect.stringContaining('Makefile (no extension)')],
      'empty.txt': ['zero-bytes', 'zero-byte text: nothing to embed'],
      'clip.webm': [
        'unsupported-format',
        expect.stringContaining('does not take webm videos (it takes mp4, avi, mov)'),
      ],
      'huge.mp4': ['too-large', `video of ${50 * MB + 1} bytes is over qwen3-vl-embedding's limit of ${50 * MB} bytes`],
    });
    expect(page?.objects).toEqual([]);
  });

  it('keeps an image over the byte limit in an accepted format, for a later step to shrink', async () => {
    const store = new FakeStore([['big.png', 40 * MB]]);
    const [page] = await scanAll(store);
    expect(page?.objects.map((o) => [o.key, o.modality])).toEqual([['big.png', 'image']]);
    expect(page?.skipped).toEqual([]);
  });

  it('keeps a video exactly at the byte limit', async () => {
    const store = new FakeStore([['edge.mp4', 50 * MB]]);
    expect(keysOf(await scanAll(store))).toEqual(['edge.mp4']);
  });

  it('keeps images the worker can convert and skips those it cannot: webp and gif are kept for tongyi, ico is skipped', async () => {
    const tongyi = resolveModel('tongyi-embedding-vision-plus');
    const store = new FakeStore([
      ['a.png', 10],
      ['b.webp', 10],
      ['c.ico', 10],
      ['d.gif', 10],
    ]);
    expect(keysOf(await scanAll(store))).toEqual(['a.png', 'b.webp', 'c.ico', 'd.gif']);
    const pages = await scanAll(store, { model: tongyi });
    expect(keysOf(pages)).toEqual(['a.png', 'b.webp', 'd.gif']);
    expect(pages[0]?.skipped.map((s) => [s.object.key, s.code])).toEqual([['c.ico', 'unsupported-format']]);
  });

  it('includes by glob against the key relative to the prefix', async () => {
    const store = new FakeStore([
      ['photos/a.jpg', 1],
      ['photos/2024/b.jpg', 1],
      ['photos/c.txt', 1],
      ['other/d.jpg', 1],
    ]);
    const pages = await scanAll(store, { prefix: 'photos/', include: ['*.jpg'] });
    expect(keysOf(pages)).toEqual(['photos/a.jpg']);
    expect(pages[0]?.filteredOut).toBe(2);
    expect(store.listCalls[0]?.prefix).toBe('photos/');
  });

  it('includes by glob against the full key too, and ** crosses folders', async () => {
    const store = new FakeStore([
      ['photos/a.jpg', 1],
      ['photos/2024/b.jpg', 1],
      ['photos/c.txt', 1],
    ]);
    expect(keysOf(await scanAll(store, { prefix: 'photos/', include: ['photos/2024/*.jpg'] }))).toEqual([
      'photos/2024/b.jpg',
    ]);
    expect(keysOf(await scanAll(store, { prefix: 'photos/', include: ['**/*.jpg'] }))).toEqual([
      'photos/2024/b.jpg',
      'photos/a.jpg',
    ]);
  });

  it('drops the separator left after a prefix without a trailing slash', async () => {
    const store = new FakeStore([
      ['photos/a.jpg', 1],
      ['photos/b.txt', 1],
    ]);
    expect(keysOf(await scanAll(store, { prefix: 'photos', include: ['*.jpg'] }))).toEqual(['photos/a.jpg']);
  });

  it('lets exclude win over include and matches dot-files with wildcards', async () => {
    const store = new FakeStore([
      ['a.txt', 1],
      ['drafts/b.txt', 1],
      ['.cache/c.txt', 1],
      ['d.md', 1],
    ]);
    const pages = await scanAll(store, { include: ['**/*.txt'], exclude: ['drafts/**'] });
    expect(keysOf(pages)).toEqual(['.cache/c.txt', 'a.txt']);
    expect(pages[0]?.filteredOut).toBe(2);
  });

  it('leaves out objects outside the inclusive size bounds silently, counting them per page', async () => {
    const store = new FakeStore([
      ['a.txt', 9],
      ['b.txt', 10],
      ['c.txt', 20],
      ['d.txt', 21],
      ['e.txt', 0],
    ]);
    const pages = await scanAll(store, { minSize: 10, maxSize: 20, pageSize: 2 });
    expect(keysOf(pages)).toEqual(['b.txt', 'c.txt']);
    expect(pages.map((p) => p.filteredOut)).toEqual([1, 1, 1]);
    expect(pages.flatMap((p) => p.skipped)).toEqual([]);
  });

  it('never downloads or presigns anything', async () => {
    const store = new FakeStore([
      ['a.txt', 1],
      ['b.png', 1],
      ['c.mp4', 1],
      ['d.gif', 1],
      ['e/', 0],
    ]);
    const pages = await scanAll(store, { pageSize: 2 });
    expect(pages.flatMap((p) => [...p.objects.map((o) => o.key), ...p.skipped.map((s) => s.object.key)])).toHaveLength(
      5,
    );
    expect(store.getCalls).toBe(0);
    expect(store.presignCalls).toBe(0);
  });

  it('refuses bad options with a ConfigError naming the option, before listing', async () => {
    const store = new FakeStore([['a.txt', 1]]);
    await expect(scanAll(store, { pageSize: 0 })).rejects.toThrow(
      new ConfigError('pageSize', 'must be an integer from 1 to 1000, got 0'),
    );
    await expect(scanAll(store, { minSize: 5, maxSize: 4 })).rejects.toThrow(ConfigError);
    await expect(scanAll(store, { bucket: '' })).rejects.toThrow('bucket: must not be empty');
    await expect(scanAll(store, { include: [''] })).rejects.toThrow(ConfigError);
    expect(store.listCalls).toHaveLength(0);
  });
});
