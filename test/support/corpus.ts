/**
 * A mixed bucket for end-to-end tests: short, long and CJK texts, PNG/JPEG/WEBP images,
 * videos, awkward keys, and every bad case, with what should become of each object for
 * a given model (indexed in N chunks, or skipped with a code).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { ModelSpec } from '../../src/models.js';
import { WORDS } from './incremental.js';
import { plainWords } from './token-fixtures.js';
import sharp from 'sharp';
import { jpeg, mp4, png } from './media-fixtures.js';
import { putObject } from './s3.js';

export interface CorpusObject {
  readonly key: string;
  readonly body: Buffer;
  /** What should happen to it, by model. */
  expect(model: ModelSpec): { indexed: number /* points */ } | { skipped: string /* code */ };
}

const CJK = ['数据', '模型', '向量', '检索', '图像', '视频', '文本', '嵌入', '搜索', '语言'];

/** Deterministic pseudo-random text of about `words` words. */
export function prose(seed: number, words: number): string {
  let x = (seed * 2654435761) >>> 0;
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(WORDS[(x >>> 16) % WORDS.length]!); // high bits: an LCG's low bits repeat quickly
    if (i % 12 === 11) out.push('.\n');
  }
  return out.join(' ');
}

function cjk(seed: number, chars: number): string {
  let s = '';
  for (let i = 0; i < chars; i++) s += CJK[(seed + i * 7) % CJK.length];
  return `${s}。`;
}

/**
 * The largest chunk the planner makes for each model, stated: the model's text limit less
 * the 8 tokens a text it keeps for the server's template (README, How requests are planned).
 */
export const CHUNK_CAP: Readonly<Record<string, number>> = {
  'qwen3-vl-embedding': 32_000 - 8,
  'qwen2.5-vl-embedding': 32_000 - 8,
  'tongyi-embedding-vision-plus': 1024 - 8,
  'tongyi-embedding-vision-flash': 1024 - 8,
  'multimodal-embedding-v1': 512 - 8,
};

const capOf = (model: ModelSpec): number => {
  const cap = CHUNK_CAP[model.name];
  if (cap === undefined) throw new Error(`no stated chunk cap for ${model.name}`);
  return cap;
};

/**
 * Points a text becomes, without the tokenizer: a text of at most `cap` UTF-8 bytes is one
 * chunk (a text's tokens never exceed its bytes: byte-level BPE), and a text of `tokens`
 * stated tokens (plainWords) is ceil(tokens / cap) chunks. Anything else has no stated
 * answer and throws, so a fixture cannot slip back to the splitter's own count.
 */
export function textPoints(text: string, model: ModelSpec, tokens?: number): number {
  const cap = capOf(model);
  if (tokens !== undefined) return tokens <= cap ? 1 : Math.ceil(tokens / cap);
  if (Buffer.byteLength(text) <= cap) return 1;
  throw new Error(
    `a text of ${Buffer.byteLength(text)} bytes over ${model.name}'s ${cap}-token chunks needs a stated token count (plainWords)`,
  );
}

const textObject = (key: string, text: string, tokens?: number): CorpusObject => ({
  key,
  body: Buffer.from(text),
  expect: (m) => ({ indexed: textPoints(text, m, tokens) }),
});

// every image here is either taken as it is or converted by the worker: indexed either way
const imageObject = (key: string, body: Buffer): CorpusObject => ({ key, body, expect: () => ({ indexed: 1 }) });

/** Real WEBP files (decodable, so the worker can convert them for models that take no WEBP). */
async function realWebps(n: number): Promise<Buffer[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      sharp({ create: { width: 50 + i, height: 40 + i, channels: 3, background: { r: 20 * i, g: 90, b: 160 } } })
        .webp()
        .toBuffer(),
    ),
  );
}

export async function buildCorpus(): Promise<CorpusObject[]> {
  const webps = await realWebps(10);
  const objects: CorpusObject[] = [];
  for (let i = 0; i < 200; i++)
    objects.push(textObject(`texts/short-${String(i).padStart(3, '0')}.txt`, prose(i, 20 + (i % 60))));
  for (let i = 0; i < 20; i++) objects.push(textObject(`texts/cjk-${i}.txt`, cjk(i, 30 + i * 5)));
  // texts of stated token counts: chunked on the tongyi models (2500 to 4600 tokens, 3 to 5 chunks of 1,016)
  for (let i = 0; i < 8; i++)
    objects.push(textObject(`texts/long-${i}.md`, plainWords(1000 + i, 2500 + i * 300), 2500 + i * 300));
  // over qwen3-vl-embedding's 32,000 tokens a text: chunked on every model (2 chunks on qwen3, 34 on tongyi)
  for (let i = 0; i < 2; i++) objects.push(textObject(`texts/huge-${i}.txt`, plainWords(5000 + i, 34_000), 34_000));
  const awkward = [
    'notes/with space.txt',
    'notes/ünïcödé 文档.txt',
    'notes/a+b.txt',
    'notes/100%.txt',
    'notes/hash#tag.txt',
  ];
  awkward.forEach((key, i) => objects.push(textObject(key, prose(300 + i, 40))));
  for (let i = 0; i < 20; i++) objects.push(imageObject(`images/png-${i}.png`, png(40 + i, 30 + i, i * 10)));
  for (let i = 0; i < 20; i++) objects.push(imageObject(`images/jpeg-${i}.jpg`, jpeg(32 + i, 24 + i)));
  for (let i = 0; i < 10; i++) objects.push(imageObject(`images/webp-${i}.webp`, webps[i]!));
  objects.push(imageObject('images/photo #1 (copy).png', png(64, 48, 99)));
  for (let i = 0; i < 5; i++) {
    objects.push({ key: `videos/clip-${i}.mp4`, body: mp4(2 + i, 2000 + i), expect: () => ({ indexed: 1 }) });
  }
  // the bad cases
  objects.push({ key: 'bad/empty.txt', body: Buffer.alloc(0), expect: () => ({ skipped: 'zero-bytes' }) });
  objects.push({
    key: 'bad/binary.txt',
    body: Buffer.from([0x00, 0x01, 0xff, 0xfe, 0x00, 0x10, 0x80, 0x81]),
    expect: () => ({ skipped: 'invalid-utf8' }),
  });
  objects.push({
    key: 'bad/nul.txt',
    body: Buffer.from('text with a \u0000 NUL in it'),
    expect: () => ({ skipped: 'binary-content' }),
  });
  objects.push({
    key: 'bad/fake.jpg',
    body: Buffer.from('this is a text file named like a JPEG'),
    expect: () => ({ skipped: 'not-an-image' }),
  });
  objects.push({ key: 'bad/zero.png', body: Buffer.alloc(0), expect: () => ({ skipped: 'zero-bytes' }) });
  // a real PNG followed by padding: over 5 MB (qwen3) and 3 MB (tongyi) as a file, so the
  // worker re-encodes it (a few hundred bytes) and indexes it
  objects.push({
    key: 'images/padded.png',
    body: Buffer.concat([png(100, 100), Buffer.alloc(5_200_000, 1)]),
    expect: () => ({ indexed: 1 }),
  });
  objects.push({
    key: 'videos/medium.mp4',
    body: mp4(3, 12_000_000),
    expect: (m) => (m.videoMaxBytes >= 12_000_100 ? { indexed: 1 } : { skipped: 'too-large' }),
  });
  objects.push({ key: 'bad/huge.mp4', body: mp4(3, 51_000_000), expect: () => ({ skipped: 'too-large' }) });
  objects.push({ key: 'bad/data.bin', body: Buffer.from('opaque'), expect: () => ({ skipped: 'unsupported-type' }) });
  objects.push({ key: 'bad/folder/', body: Buffer.alloc(0), expect: () => ({ skipped: 'directory-marker' }) });
  return objects;
}

export async function uploadCorpus(client: S3Client, bucket: string, objects: readonly CorpusObject[]): Promise<void> {
  // a few at a time: s3rver writes to disk
  for (let i = 0; i < objects.length; i += 16) {
    await Promise.all(objects.slice(i, i + 16).map((o) => putObject(client, bucket, o.key, o.body)));
  }
}
