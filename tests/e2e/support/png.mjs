// A minimal PNG encoder (8-bit RGB, no interlace) and the test's synthetic class pictures.

import { deflateSync } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

export function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes `rgb` (width*height*3 bytes, row-major) as a PNG file. */
export function encodePng(width, height, rgb) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  const rows = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    rows[y * (1 + width * 3)] = 0; // filter: none
    Buffer.from(rgb.buffer, rgb.byteOffset + y * width * 3, width * 3).copy(rows, y * (1 + width * 3) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A small deterministic PRNG (mulberry32). */
export function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const DOMINANT = { red: 0, green: 1, blue: 2 };

/**
 * A noisy picture whose dominant colour is `colour` ("red", "green" or "blue"): blotches of
 * varying brightness over per-pixel noise, so pictures of one class differ from each other.
 */
export function colourPicture(colour, seed, size = 64) {
  const channel = DOMINANT[colour];
  if (channel === undefined) throw new Error(`unknown colour ${colour}`);
  const next = random(seed);
  const rgb = new Uint8Array(size * size * 3);
  const blobs = Array.from({ length: 4 }, () => ({ x: next() * size, y: next() * size, r: 6 + next() * 14, v: next() }));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let shade = 0;
      for (const b of blobs) if ((x - b.x) ** 2 + (y - b.y) ** 2 < b.r ** 2) shade = b.v;
      for (let c = 0; c < 3; c++) {
        const base = c === channel ? 170 + 70 * shade : 30 + 40 * shade;
        const value = base + (next() - 0.5) * 60;
        rgb[(y * size + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(value)));
      }
    }
  }
  return encodePng(size, size, rgb);
}
