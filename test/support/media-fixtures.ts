/**
 * Media files built by hand for tests: small, valid, and deterministic, so no binary
 * fixture is checked in. PNG and JPEG decode in real decoders; the MP4 has the boxes a
 * container sniffer and a duration reader look at (`ftyp`, `moov/mvhd`, `mdat`).
 */
import { crc32, deflateSync } from 'node:zlib';

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A valid RGB PNG; `shade` changes the pixels (and so the bytes). */
export function png(width: number, height: number, shade = 0): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const row = width * 3 + 1;
  const raw = Buffer.alloc(row * height);
  for (let y = 0; y < height; y++) for (let x = 1; x < row; x++) raw[y * row + x] = (x + y + shade) & 0xff;
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([
    signature,
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function jpegSegment(marker: number, payload: readonly number[]): number[] {
  const length = payload.length + 2;
  return [0xff, marker, length >> 8, length & 0xff, ...payload];
}

/**
 * A complete baseline JPEG: one grey component, every 8x8 block flat mid-grey. Each
 * Huffman table holds one symbol with the one-bit code `0` (DC: difference category 0;
 * AC: end of block), so every block is the bits `00` and the scan is zero bytes.
 */
export function jpeg(width: number, height: number): Buffer {
  const blocks = Math.ceil(width / 8) * Math.ceil(height / 8);
  const scanBytes = Math.ceil((blocks * 2) / 8);
  const padBits = scanBytes * 8 - blocks * 2;
  const scan = new Array<number>(scanBytes).fill(0);
  // pad the last byte with 1 bits, as the standard asks
  if (padBits > 0) scan[scanBytes - 1] = (1 << padBits) - 1;
  const oneCodeTable = (tableClassAndId: number, symbol: number): number[] => [
    tableClassAndId,
    1,
    ...new Array<number>(15).fill(0),
    symbol,
  ];
  return Buffer.from([
    0xff,
    0xd8, // SOI
    ...jpegSegment(0xe0, [0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]), // JFIF
    ...jpegSegment(0xdb, [0x00, ...new Array<number>(64).fill(1)]), // quantisation table 0
    ...jpegSegment(0xc0, [0x08, height >> 8, height & 0xff, width >> 8, width & 0xff, 0x01, 0x01, 0x11, 0x00]), // SOF0
    ...jpegSegment(0xc4, [...oneCodeTable(0x00, 0x00), ...oneCodeTable(0x10, 0x00)]), // DHT: DC 0, AC 0
    ...jpegSegment(0xda, [0x01, 0x01, 0x00, 0x00, 0x3f, 0x00]), // SOS
    ...scan,
    0xff,
    0xd9, // EOI
  ]);
}

export function gif(width: number, height: number): Buffer {
  return Buffer.concat([
    Buffer.from('GIF89a', 'latin1'),
    Buffer.from([width & 0xff, width >> 8, height & 0xff, height >> 8, 0, 0, 0, 0x3b]),
  ]);
}

function box(type: string, payload: Buffer): Buffer {
  const size = Buffer.alloc(4);
  size.writeUInt32BE(payload.length + 8);
  return Buffer.concat([size, Buffer.from(type, 'latin1'), payload]);
}

/** An MP4 `ftyp` box, then a `moov/mvhd` giving `seconds` when set, then `mdatBytes` of data. */
export function mp4(seconds: number | undefined, mdatBytes = 1000): Buffer {
  const ftyp = box(
    'ftyp',
    Buffer.concat([Buffer.from('isom', 'latin1'), Buffer.from([0, 0, 2, 0]), Buffer.from('isommp41', 'latin1')]),
  );
  const parts = [ftyp];
  if (seconds !== undefined) {
    const mvhd = Buffer.alloc(100);
    mvhd.writeUInt32BE(1000, 12); // timescale
    mvhd.writeUInt32BE(seconds * 1000, 16); // duration
    parts.push(box('moov', box('mvhd', mvhd)));
  }
  parts.push(box('mdat', Buffer.alloc(mdatBytes, 7)));
  return Buffer.concat(parts);
}

export const dataUri = (format: string, bytes: Buffer): string =>
  `data:image/${format};base64,${bytes.toString('base64')}`;

/**
 * A WEBP (lossless VP8L) header of the given size: enough for every header reader (the
 * planner, the simulator); the pixel stream after it is not a decodable image.
 */
export function webp(width: number, height: number): Buffer {
  const bits = Buffer.alloc(4);
  bits.writeUInt32LE(((width - 1) & 0x3fff) | (((height - 1) & 0x3fff) << 14));
  const payload = Buffer.concat([Buffer.from([0x2f]), bits, Buffer.alloc(64, 0)]);
  const chunkHeader = Buffer.alloc(8);
  chunkHeader.write('VP8L', 0, 'latin1');
  chunkHeader.writeUInt32LE(payload.length, 4);
  const riff = Buffer.alloc(12);
  riff.write('RIFF', 0, 'latin1');
  riff.writeUInt32LE(4 + chunkHeader.length + payload.length, 4);
  riff.write('WEBP', 8, 'latin1');
  return Buffer.concat([riff, chunkHeader, payload]);
}
