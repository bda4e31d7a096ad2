import { describe, expect, it } from '@jest/globals';
import { printable } from '../../src/cli/terminal.js';
import { decodeListedKey } from '../../src/s3-store.js';

describe('keys of a listing made with EncodingType=url', () => {
  it('decodes them as S3 and MinIO encode them: a space as +, a + as %2B, controls as %XX', () => {
    // what MinIO answered for these keys (test/integration/odd-keys.test.ts puts them there)
    expect(decodeListedKey('sp+ace%2Bplus%2525.txt')).toBe('sp ace+plus%25.txt');
    expect(decodeListedKey('esc%1B%5B31mred.txt')).toBe('esc\u001b[31mred.txt');
    expect(decodeListedKey('uni%EF%BF%BEx.txt')).toBe('uni\uFFFEx.txt');
    expect(decodeListedKey('cr%0Dx.txt')).toBe('cr\rx.txt');
    expect(decodeListedKey('%C3%A9%E6%BC%A2.txt')).toBe('é漢.txt');
    expect(decodeListedKey('p/+x/y.txt')).toBe('p/ x/y.txt');
  });

  it('keeps a key a store did not really encode (a bare %) as it came', () => {
    expect(decodeListedKey('100%.txt')).toBe('100%.txt');
  });
});

describe('keys printed to a terminal', () => {
  it('shows control characters escaped, and other keys unchanged', () => {
    expect(printable('odd/clear\u001b[2J.xyz')).toBe('odd/clear\\x1b[2J.xyz');
    expect(printable('title\u001b]0;pwned\u0007.txt')).toBe('title\\x1b]0;pwned\\x07.txt');
    expect(printable('a\u0001b\tc\r\nd\u007f\u0085')).toBe('a\\x01b\\tc\\r\\nd\\x7f\\x85');
    expect(printable('rtl\u202eevil\u2066.txt')).toBe('rtl\\u202eevil\\u2066.txt');
    for (const key of ['plain/é漢 🎉 +%25.txt', 'back\\slash', '']) expect(printable(key)).toBe(key);
  });
});
