import { describe, expect, it } from '@jest/globals';
import { checkMediaUrls } from '../../src/doctor/bucket.js';
import { mediaUrlProblem, privateEndpointReason } from '../../src/media-urls.js';

describe('whether the provider can reach the store', () => {
  it.each([
    ['http://127.0.0.1:9000', 'S3_ENDPOINT http://127.0.0.1:9000 is a loopback or private address'],
    ['http://10.1.2.3', 'S3_ENDPOINT http://10.1.2.3 is a loopback or private address'],
    ['http://172.20.0.5:9000', 'S3_ENDPOINT http://172.20.0.5:9000 is a loopback or private address'],
    ['https://192.168.10.2', 'S3_ENDPOINT https://192.168.10.2 is a loopback or private address'],
    ['http://169.254.169.254', 'S3_ENDPOINT http://169.254.169.254 is a loopback or private address'],
    ['http://[::1]:9000', 'S3_ENDPOINT http://[::1]:9000 is a loopback or private address'],
    ['http://[fd00::5]', 'S3_ENDPOINT http://[fd00::5] is a loopback or private address'],
    ['http://localhost:9000', 'S3_ENDPOINT http://localhost:9000 is a name of this machine or network'],
    ['http://minio:9000', 'S3_ENDPOINT http://minio:9000 is a name of this machine or network'],
    ['http://store.local', 'S3_ENDPOINT http://store.local is a name of this machine or network'],
  ])('%s: %s', async (endpoint, reason) => {
    expect(await privateEndpointReason(endpoint)).toBe(reason);
  });

  it.each(['', 'http://8.8.8.8', 'https://172.32.0.1', 'http://[2001:db8::1]'])(
    '%p is reachable (AWS itself, public addresses)',
    async (endpoint) => {
      expect(await privateEndpointReason(endpoint)).toBeUndefined();
    },
  );

  it('says nothing when ALLOW_PRIVATE_MEDIA_URLS is set', async () => {
    expect(await mediaUrlProblem({ s3Endpoint: 'http://127.0.0.1:9000', allowPrivateMediaUrls: true })).toBeUndefined();
    expect(await mediaUrlProblem({ s3Endpoint: 'http://127.0.0.1:9000', allowPrivateMediaUrls: false })).toBe(
      'S3_ENDPOINT http://127.0.0.1:9000 is a loopback or private address: the provider downloads media URLs from its own network and cannot reach it ' +
        '(set ALLOW_PRIVATE_MEDIA_URLS=true if the API can: a local simulator, an endpoint in the same network)',
    );
  });
});

describe("doctor's media urls row", () => {
  const t = { s3Endpoint: 'http://127.0.0.1:9000' };
  const reason = 'S3_ENDPOINT http://127.0.0.1:9000 is a loopback or private address';
  const fix =
    'use IMAGE_MODE=inline for images and an S3_ENDPOINT the provider can reach for videos, or set ALLOW_PRIVATE_MEDIA_URLS=true if the API can reach this store (a local simulator)';

  it('fails URL mode, warns inline mode, and is ok when allowed or reachable', () => {
    expect(checkMediaUrls({ reason, imageMode: 'url', allowed: false }, t)).toEqual({
      check: 'media urls',
      status: 'fail',
      detail: `${reason}: the provider cannot download its URLs, so index refuses IMAGE_MODE=url (and skips videos)`,
      action: fix,
    });
    expect(checkMediaUrls({ reason, imageMode: 'inline', allowed: false }, t)).toEqual({
      check: 'media urls',
      status: 'warn',
      detail: `${reason}: the provider cannot download its URLs, so index skips videos (unreachable-url); images go inline`,
      action: fix,
    });
    expect(checkMediaUrls({ reason, imageMode: 'url', allowed: true }, t)).toEqual({
      check: 'media urls',
      status: 'ok',
      detail: `${reason}, and ALLOW_PRIVATE_MEDIA_URLS=true: its presigned URLs are sent (the API must reach it)`,
      action: '',
    });
    expect(
      checkMediaUrls({ reason: undefined, imageMode: 'url', allowed: false }, { s3Endpoint: 'AWS S3 (us-east-1)' }),
    ).toEqual({
      check: 'media urls',
      status: 'ok',
      detail: 'the provider can download presigned URLs of AWS S3 (us-east-1)',
      action: '',
    });
  });
});
