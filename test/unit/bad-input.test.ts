import { describe, expect, it } from '@jest/globals';
import { deflateSync } from 'node:zlib';
import { ConfigError } from '../../src/errors.js';
import { parseModelOverrides, resolveDimension, resolveModel } from '../../src/models.js';
import { planRequests } from '../../src/planner.js';
import type { PreparedImage, PreparedInput } from '../../src/prepared-input.js';
import { decodeText, prepareImage, prepareText, prepareVideo } from '../../src/prepare.js';
import { qwenTokens } from '../../src/tokens.js';

/** A real PNG of w x h grey pixels. */
function png(w: number, h: number): Uint8Array {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf: Buffer): number => {
    let c = 0xffffffff;
    for (const b of buf) c = (crcTable[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const rows = Buffer.alloc((w + 1) * h, 0x80);
  for (let y = 0; y < h; y++) rows[y * (w + 1)] = 0; // filter byte
  return new Uint8Array(
    Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr),
      chunk('IDAT', deflateSync(rows)),
      chunk('IEND', Buffer.alloc(0)),
    ]),
  );
}

const qwen3 = resolveModel('qwen3-vl-embedding');
const plus = resolveModel('tongyi-embedding-vision-plus');

describe('configuration of models', () => {
  it('refuses an unknown model with an error that names it and lists the known ones', () => {
    expect(() => resolveModel('gpt-embed')).toThrow(ConfigError);
    expect(() => resolveModel('gpt-embed')).toThrow(/"gpt-embed" is not a known model \(known: qwen3-vl-embedding/);
  });

  it('refuses a dimension the model does not take, naming the ones it does', () => {
    expect(() => resolveDimension(qwen3, 1000)).toThrow(
      /1000 is not a dimension of qwen3-vl-embedding \(it takes 2560, 2048/,
    );
    expect(resolveDimension(qwen3, 512)).toBe(512);
    expect(resolveDimension(plus)).toBe(1152);
  });

  it('applies limit overrides and names a bad override field', () => {
    const overrides = parseModelOverrides('{"qwen3-vl-embedding":{"maxImagesPerRequest":5,"imageMaxBytes":10000000}}');
    const m = resolveModel('qwen3-vl-embedding', overrides);
    expect(m.maxImagesPerRequest).toBe(5);
    expect(m.imageMaxBytes).toBe(10_000_000);
    expect(resolveModel('qwen3-vl-embedding').maxImagesPerRequest).toBe(1);
    expect(() => parseModelOverrides('{"qwen3-vl-embedding":{"maxElements":-1}}')).toThrow(
      /MODEL_OVERRIDES: qwen3-vl-embedding.maxElements/,
    );
    expect(() => parseModelOverrides('{"qwen3-vl-embedding":{"maxElementz":3}}')).toThrow(/MODEL_OVERRIDES/);
    expect(() => parseModelOverrides('{"nope":{}}')).toThrow(/unknown model "nope"/);
    expect(() => parseModelOverrides('{oops')).toThrow(/MODEL_OVERRIDES: is not valid JSON/);
  });
});

describe('preparing texts', () => {
  it('refuses an empty text, a text of only whitespace, invalid UTF-8 and binary content, each by name', () => {
    const fail = (bytes: Uint8Array): string => {
      const r = decodeText('k', bytes);
      if (!('failure' in r)) throw new Error('expected a failure');
      return `${r.failure.code}: ${r.failure.reason}`;
    };
    expect(fail(new Uint8Array())).toBe('zero-bytes: zero-byte text');
    expect(fail(Buffer.from(' \n\t  '))).toBe('empty-text: text of only whitespace');
    expect(fail(Uint8Array.from([0x68, 0x69, 0xff, 0xfe]))).toBe('invalid-utf8: text is not valid UTF-8');
    expect(fail(Uint8Array.from([0x68, 0x00, 0x69]))).toBe('binary-content: text contains NUL bytes (binary content)');
  });

  it('decodes UTF-8 with a BOM and counts its tokens', () => {
    const r = prepareText('k', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('你好，世界')]), qwenTokens);
    expect('ok' in r && r.ok.kind === 'text' && r.ok.text).toBe('你好，世界');
    expect('ok' in r && r.ok.kind === 'text' && r.ok.tokens).toBeGreaterThan(0);
  });
});

describe('preparing images and videos', () => {
  it('refuses a zero-byte image and bytes that are not an image', () => {
    const zero = prepareImage('a.png', new Uint8Array());
    expect('failure' in zero && zero.failure.code).toBe('zero-bytes');
    const text = prepareImage('a.jpg', Buffer.from('this is not a jpeg at all, just text'));
    expect('failure' in text && text.failure.code).toBe('not-an-image');
  });

  it('reads the real format and size of image bytes, whatever the key says', () => {
    const r = prepareImage('photo.jpg', png(40, 30));
    if (!('ok' in r) || r.ok.kind !== 'image') throw new Error('expected an image');
    expect(r.ok.image).toMatchObject({ format: 'png', width: 40, height: 30 });
  });

  it('refuses a video container it cannot recognise when it has the first bytes', () => {
    const r = prepareVideo('v.mp4', 100, 'mp4', 'https://x/v.mp4', Buffer.from('not a video'));
    expect('failure' in r && r.failure.code).toBe('not-a-video');
    const ok = prepareVideo('v.mp4', 100, 'mp4', 'https://x/v.mp4', Buffer.from('\0\0\0\x18ftypisom', 'latin1'));
    expect('ok' in ok).toBe(true);
  });
});

describe('the planner on inputs that can never fit', () => {
  const picture = (fmt: 'png' | 'webp', bytes: number, w = 100, h = 100): PreparedImage => ({
    format: fmt,
    width: w,
    height: h,
    bytes,
    payload: { kind: 'url', url: 'https://x/y' },
  });
  const image = (fmt: 'png' | 'webp', bytes: number, w = 100, h = 100): PreparedInput => ({
    kind: 'image',
    source: `img-${fmt}-${bytes}-${w}x${h}`,
    image: picture(fmt, bytes, w, h),
  });

  it('rejects each with a reason instead of dropping it or sending it', () => {
    const inputs: PreparedInput[] = [
      { kind: 'text', source: 'blank', text: '   ', tokens: 1 },
      image('webp', 1000), // tongyi takes JPG/PNG/BMP only
      image('png', 3_000_001), // over 3 MB
      image('png', 1000, 5, 100), // side under 10 px
      image('png', 1000, 4000, 15), // aspect over 200:1
      { kind: 'video', source: 'big.mp4', video: { format: 'mp4', bytes: 10_000_001, url: 'https://x/v' } },
      { kind: 'video', source: 'clip.wmv', video: { format: 'mkv', bytes: 10, url: 'https://x/v' } },
      { kind: 'fused', source: 'fused', text: { text: 'a', tokens: 1 }, image: picture('png', 10) },
      { kind: 'multi_images', source: 'nine', images: Array.from({ length: 9 }, () => picture('png', 10)) },
      { kind: 'text', source: 'fine', text: 'hello', tokens: 1 },
    ];
    const plan = planRequests(inputs, { model: plus, dimension: 64 }, qwenTokens);
    const codes = Object.fromEntries(plan.rejections.map((r) => [r.source, r.code]));
    expect(codes).toEqual({
      blank: 'empty-text',
      'img-webp-1000-100x100': 'unsupported-format',
      'img-png-3000001-100x100': 'too-large',
      'img-png-1000-5x100': 'bad-shape',
      'img-png-1000-4000x15': 'bad-shape',
      'big.mp4': 'too-large',
      fused: 'modality-not-supported',
      nine: 'too-many-images',
    });
    expect(plan.rejections.find((r) => r.source === 'img-png-3000001-100x100')?.reason).toBe(
      "image of 3000001 bytes is over tongyi-embedding-vision-plus's limit of 3000000",
    );
    // mkv is a format tongyi takes: planned, not rejected
    expect(plan.requests.flatMap((r) => r.inputs.map((i) => i.source)).sort()).toEqual(['clip.wmv', 'fine']);
  });

  it('rejects multi_images on qwen3-vl-embedding and a fused text over the limit', () => {
    const long = 'word '.repeat(40_000);
    const plan = planRequests(
      [
        { kind: 'multi_images', source: 'mi', images: [] },
        { kind: 'fused', source: 'f', text: { text: long, tokens: qwenTokens.count(long) } },
      ],
      { model: qwen3, dimension: 256 },
      qwenTokens,
    );
    expect(plan.rejections.map((r) => `${r.source}:${r.code}`)).toEqual([
      'mi:modality-not-supported',
      'f:text-too-long',
    ]);
    expect(plan.requests).toHaveLength(0);
  });

  it('rejects an inline image whose data URI alone is over the request body limit', () => {
    const data = new Uint8Array(4_800_000);
    const plan = planRequests(
      [
        {
          kind: 'image',
          source: 'big-inline',
          image: { format: 'png', width: 100, height: 100, bytes: data.length, payload: { kind: 'inline', data } },
        },
      ],
      { model: qwen3, dimension: 256 },
      qwenTokens,
    );
    expect(plan.rejections).toEqual([expect.objectContaining({ source: 'big-inline', code: 'over-request-limit' })]);
  });
});
