import { describe, expect, it } from '@jest/globals';
import { maskUrl, redact, redactError, rememberSecrets } from '../../src/redact.js';

const PRESIGNED =
  'https://b.s3.us-east-1.amazonaws.com/v/a.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=abcdef0123456789';

describe('redact', () => {
  it('drops the query string of http(s) URLs and keeps where they point', () => {
    expect(redact(`cannot download ${PRESIGNED}, giving up`)).toBe(
      'cannot download https://b.s3.us-east-1.amazonaws.com/v/a.mp4?[redacted], giving up',
    );
    expect(redact('see http://example.com/a?token=x#part')).toBe('see http://example.com/a?[redacted]#part');
    expect(redact('no query: https://example.com/a.jpg.')).toBe('no query: https://example.com/a.jpg.');
  });

  it('masks the password of any URL, and leaves URLs without one alone', () => {
    expect(redact('redis://default:s3cret@10.0.0.1:6379/0 refused')).toBe(
      'redis://default:***@10.0.0.1:6379/0 refused',
    );
    expect(redact('via http://user:p@ss:w0rd@proxy:3128/')).toBe('via http://user:***@proxy:3128/');
    expect(redact('rediss://:pw@cache:6380 and redis://127.0.0.1:6379')).toBe(
      'rediss://:***@cache:6380 and redis://127.0.0.1:6379',
    );
    expect(redact('http://127.0.0.1:6333/collections/x')).toBe('http://127.0.0.1:6333/collections/x');
  });

  it('removes signature parameters, bearer tokens, api-key values and DashScope-shaped keys outside URLs', () => {
    expect(redact('StringToSign ... X-Amz-Signature=abc123&X-Amz-Credential=AKIA/x')).toBe(
      'StringToSign ... X-Amz-Signature=[redacted]&X-Amz-Credential=[redacted]',
    );
    expect(redact('echoed Authorization: Bearer abcdefgh12345678')).toBe('echoed Authorization: Bearer [redacted]');
    expect(redact('header api-key: 1234-abcd-5678, next')).toBe('header api-key: [redacted], next');
    expect(redact('key sk-0123456789abcdef0123456789abcdef is invalid')).toBe('key sk-*** is invalid');
  });

  it('removes remembered secrets in any spelling, and extra ones given', () => {
    rememberSecrets('remembered/secret+value', undefined, 'short');
    expect(redact('a remembered/secret+value and remembered%2Fsecret%2Bvalue, short stays')).toBe(
      'a *** and ***, short stays',
    );
    expect(redact('the key k-1 leaked', ['k-1'])).toBe('the key *** leaked');
  });

  it('keeps a JSON line valid: a URL inside a string stops at an escaped quote', () => {
    const line = JSON.stringify({ err: `failed: "${PRESIGNED}" and redis://u:pw@h:1` });
    const out = redact(line);
    expect(JSON.parse(out)).toEqual({
      err: 'failed: "https://b.s3.us-east-1.amazonaws.com/v/a.mp4?[redacted]" and redis://u:***@h:1',
    });
    expect(redact(out)).toBe(out);
  });

  it('redacts an error in place: message and stack, class kept', () => {
    class Special extends Error {}
    const err = redactError(new Special(`GET ${PRESIGNED} failed`));
    expect(err).toBeInstanceOf(Special);
    expect(err.message).toBe('GET https://b.s3.us-east-1.amazonaws.com/v/a.mp4?[redacted] failed');
    expect(err.stack).not.toContain('abcdef0123456789');
  });

  it('maskUrl masks a password, keeps the rest', () => {
    expect(maskUrl('redis://:s3cret@10.0.0.1:6379')).toBe('redis://:***@10.0.0.1:6379');
  });
});
