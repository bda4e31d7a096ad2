/**
 * README, "What becomes of each object": "decoding is bounded to 100 megapixels, so a
 * decompression bomb is refused". A 12,000 x 12,000 JPEG is 144 megapixels in 0.56 MB
 * (every block flat grey); 10,000 x 10,000 is the bound itself and is decoded.
 */
import { describe, expect, it } from '@jest/globals';
import { fixImage } from '../../src/fixup.js';
import { resolveModel } from '../../src/models.js';
import { jpeg, png } from '../support/media-fixtures.js';

describe('the decoding bound', () => {
  const model = resolveModel('qwen3-vl-embedding');

  it('refuses a 144-megapixel JPEG of half a megabyte, naming its size and the bound', async () => {
    const bomb = jpeg(12_000, 12_000);
    expect(bomb.length).toBeLessThan(1_000_000);
    expect(await fixImage(bomb, model)).toEqual({
      skip: {
        code: 'too-large',
        reason: '12000x12000 pixels is over the 100-megapixel bound on decoding (a decompression bomb is not decoded)',
      },
    });
  });

  it('refuses a PNG whose header claims 20,000 x 20,000 pixels without decoding it', async () => {
    const header = png(16, 16);
    // IHDR's width and height (bytes 16..23); the pixels are never read
    header.writeUInt32BE(20_000, 16);
    header.writeUInt32BE(20_000, 20);
    const result = await fixImage(header, model);
    expect(result).toMatchObject({
      skip: { code: 'too-large', reason: expect.stringMatching(/^20000x20000 pixels is over the 100-megapixel bound/) },
    });
  });

  it('decodes an image of exactly 100 megapixels', async () => {
    const result = await fixImage(jpeg(10_000, 10_000), model);
    expect(result).toMatchObject({ format: 'jpeg', width: 10_000, height: 10_000 });
  });
});
