import { describe, expect, it } from '@jest/globals';
import { videoHeadSeconds, videoTokensEstimate } from '../../src/media.js';
import { prepareVideo } from '../../src/prepare.js';
import { mp4 } from '../support/media-fixtures.js';

const box = (type: string, payload: Buffer): Buffer => {
  const size = Buffer.alloc(4);
  size.writeUInt32BE(payload.length + 8);
  return Buffer.concat([size, Buffer.from(type, 'latin1'), payload]);
};

/** The boxes of a file, as [type, bytes] in order (top level only). */
function boxes(file: Buffer): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  for (let at = 0; at < file.length;) {
    const size = file.readUInt32BE(at);
    out.push([file.toString('latin1', at + 4, at + 8), file.subarray(at, at + size)]);
    at += size;
  }
  return out;
}

describe("a video's length from its first bytes", () => {
  it('reads the mvhd of a fast-start MP4: its duration over its timescale', () => {
    expect(videoHeadSeconds(mp4(4, 500_000))).toBe(4);
    expect(videoHeadSeconds(mp4(2.5))).toBe(2.5);
  });

  it('reads a version-1 mvhd (64-bit duration) inside a moov longer than the head', () => {
    const mvhd = Buffer.alloc(112);
    mvhd[0] = 1;
    mvhd.writeUInt32BE(600, 20); // timescale
    mvhd.writeBigUInt64BE(600n * 90n, 24); // 90 s
    // the sample tables after mvhd make the moov far longer than the 4 KB the worker reads
    const moov = box('moov', Buffer.concat([box('mvhd', mvhd), box('trak', Buffer.alloc(200_000))]));
    const [ftyp] = boxes(mp4(undefined));
    const head = Buffer.concat([ftyp![1], moov]).subarray(0, 4096);
    expect(videoHeadSeconds(head)).toBe(90);
  });

  it('gives nothing when the head does not reach the mvhd: moov after the data, a cut head, another container', () => {
    const file = mp4(4);
    const parts = new Map(boxes(file));
    const moovLast = Buffer.concat([parts.get('ftyp')!, parts.get('mdat')!, parts.get('moov')!]);
    expect(videoHeadSeconds(moovLast)).toBeUndefined();
    // the head ends inside mvhd's fields
    const cut = parts.get('ftyp')!.length + 8 + 8 + 10;
    expect(videoHeadSeconds(file.subarray(0, cut))).toBeUndefined();
    expect(videoHeadSeconds(Buffer.from('RIFF\0\0\0\0AVI LIST'))).toBeUndefined();
    // a box whose size is smaller than its own header
    expect(videoHeadSeconds(Buffer.from([0, 0, 0, 4, 0x6d, 0x6f, 0x6f, 0x76, 0, 0, 0, 0]))).toBeUndefined();
  });

  it("estimates a video's tokens from its read length, else from its size", () => {
    // 4 s at 1 frame a second, 256 tokens a frame; 50 MB guessed at 1 Mbit/s is over the 64-frame cap
    expect(videoTokensEstimate(50_000_000, 1, 4)).toBe(4 * 256);
    expect(videoTokensEstimate(50_000_000, 1)).toBe(64 * 256);
    const head = mp4(4, 500_000).subarray(0, 4096);
    const prepared = prepareVideo('clips/a.mp4', 500_000 + 200, 'mp4', 'https://example.test/a.mp4', head);
    expect(prepared).toMatchObject({ ok: { kind: 'video', video: { format: 'mp4', seconds: 4 } } });
    const noLength = prepareVideo('clips/b.mp4', 1000, 'mp4', 'https://example.test/b.mp4', mp4(undefined));
    expect('ok' in noLength && noLength.ok.kind === 'video' && noLength.ok.video.seconds).toBeUndefined();
  });
});
