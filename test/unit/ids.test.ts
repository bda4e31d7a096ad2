import { describe, expect, it } from '@jest/globals';
import { v5 as uuidv5 } from 'uuid';
import { POINT_NAMESPACE, pointId } from '../../src/ids.js';

describe('pointId', () => {
  it('is the UUIDv5 of (bucket, key, chunk) in the project namespace, for ASCII, multi-byte and odd keys', () => {
    const keys = [
      'a.txt',
      'photos/2024/IMG_0001.JPG',
      'naïve café/résumé.md',
      '日本語/ファイル.txt',
      'emoji 😀/x.png',
      'spaces and\ttabs/%41 +plus.txt',
      'x'.repeat(1024),
      '',
    ];
    for (const key of keys)
      for (const chunk of [0, 1, 17, 1234]) {
        expect(pointId('bucket-1', key, chunk)).toBe(uuidv5(`bucket-1\u0000${key}\u0000${chunk}`, POINT_NAMESPACE));
      }
  });

  it('sets version 5 and the RFC variant on many ids (every nibble value of the variant byte seen)', () => {
    const variants = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const id = pointId('b', `k/${i}.txt`, i % 3);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(id).toBe(uuidv5(`b\u0000k/${i}.txt\u0000${i % 3}`, POINT_NAMESPACE));
      variants.add(id.charAt(19));
    }
    expect([...variants].sort()).toEqual(['8', '9', 'a', 'b']);
  });
});
