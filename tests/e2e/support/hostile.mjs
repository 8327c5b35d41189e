// Hostile and unusual files for the browser tests, made here rather than checked in: ported from
// tests/hostile/mod.rs (the Rust side's generators), plus a GIF writer and an EXIF segment. JPEG
// and WebP bytes come from the browser's own encoder (`browserEncoded`), since node has none.

import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { chunk } from './png.mjs';

const WWW = resolve(dirname(fileURLToPath(import.meta.url)), '../../../www');
const { zipSync } = createRequire(join(WWW, 'package.json'))('fflate');

/** A PNG that says whatever it is told: `raw` is the filtered scanline data (filter bytes included). */
export function pngByHand(width, height, bitDepth, colorType, interlaced, palette, raw) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([bitDepth, colorType, 0, 0, interlaced ? 1 : 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...(palette ? [chunk('PLTE', Buffer.from(palette))] : []),
    chunk('IDAT', deflateSync(Buffer.from(raw))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** An 8×8 gray Adam7-interlaced PNG. */
export function interlacedGray() {
  const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
  const raw = [];
  for (const [x0, y0, dx, dy] of passes) {
    for (let y = y0; y < 8; y += dy) {
      raw.push(0);
      for (let x = x0; x < 8; x += dx) raw.push((x * 31 + y * 7) & 0xff);
    }
  }
  return pngByHand(8, 8, 8, 0, true, null, raw);
}

/** The valid-but-unusual PNGs: 16-bit RGBA, gray, palette, interlaced. */
export function unusualPngs() {
  const deep = [];
  for (let y = 0; y < 16; y++) {
    deep.push(0);
    for (let x = 0; x < 16; x++) for (const v of [x * 4000, 65535, y * 4000, 65535]) deep.push(v >> 8, v & 0xff);
  }
  const gray = [];
  for (let y = 0; y < 16; y++) gray.push(0, ...Array.from({ length: 16 }, (_, x) => x * 15 + y));
  const indexed = [];
  for (let y = 0; y < 16; y++) indexed.push(0, ...Array.from({ length: 16 }, (_, x) => (x + y) % 3));
  return {
    'deep16.png': pngByHand(16, 16, 16, 6, false, null, deep),
    'gray.png': pngByHand(16, 16, 8, 0, false, null, gray),
    'palette.png': pngByHand(16, 16, 8, 3, false, [255, 0, 0, 0, 255, 0, 0, 0, 255], indexed),
    'interlaced.png': interlacedGray(),
  };
}

/** A 10-gigapixel PNG declared in a few bytes, and valid 16384×1 and 1×16384 strips. */
export function pngBombs() {
  return {
    'bomb.png': pngByHand(100_000, 100_000, 8, 0, false, null, [0, 0, 0]),
    'wide.png': pngByHand(16_384, 1, 8, 0, false, null, [0, ...new Array(16_384).fill(7)]),
    'tall.png': pngByHand(1, 16_384, 8, 0, false, null, new Array(16_384).fill([0, 7]).flat()),
  };
}

/**
 * A GIF89a of `frames` (palette indices 0..3, width*height each) over a 4-colour palette; more
 * than one frame makes it animated (NETSCAPE2.0 loop). LZW codes are written as literals with a
 * clear code after every two, so the code width never grows past 3 bits.
 */
export function gif(width, height, frames) {
  const out = [...Buffer.from('GIF89a')];
  const u16 = (v) => [v & 0xff, v >> 8];
  out.push(...u16(width), ...u16(height), 0xf1, 0, 0); // global table of 4 colours
  out.push(255, 0, 0, 0, 0, 255, 255, 255, 255, 0, 255, 0);
  if (frames.length > 1) out.push(0x21, 0xff, 11, ...Buffer.from('NETSCAPE2.0'), 3, 1, 0, 0, 0);
  for (const pixels of frames) {
    out.push(0x21, 0xf9, 4, 0, ...u16(10), 0, 0); // 0.1 s per frame
    out.push(0x2c, 0, 0, 0, 0, ...u16(width), ...u16(height), 0);
    const codes = [];
    pixels.forEach((p, i) => {
      if (i % 2 === 0) codes.push(4);
      codes.push(p);
    });
    codes.push(5);
    const data = [];
    let acc = 0;
    let bits = 0;
    for (const code of codes) {
      acc |= code << bits;
      bits += 3;
      while (bits >= 8) {
        data.push(acc & 0xff);
        acc >>= 8;
        bits -= 8;
      }
    }
    if (bits > 0) data.push(acc & 0xff);
    out.push(2);
    for (let i = 0; i < data.length; i += 255) {
      const block = data.slice(i, i + 255);
      out.push(block.length, ...block);
    }
    out.push(0);
  }
  out.push(0x3b);
  return Buffer.from(out);
}

/** `jpeg` with an APP1 Exif segment saying `orientation` (1..8) right after its SOI. */
export function withExifOrientation(jpeg, orientation) {
  const tiff = Buffer.from([0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0, 0, 0, 0, 0]);
  const body = Buffer.concat([Buffer.from('Exif\0\0', 'binary'), tiff]);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(body.length + 2);
  return Buffer.concat([jpeg.subarray(0, 2), Buffer.from([0xff, 0xe1]), length, body, jpeg.subarray(2)]);
}

/** A JPEG cut right after its start-of-scan header: dimensions, tables, no pixels. */
export function headerOnlyJpeg(jpeg) {
  const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
  return jpeg.subarray(0, sos + 2 + jpeg.readUInt16BE(sos + 2));
}

/**
 * Encodes a 64×64 gradient as `type` ('image/jpeg', 'image/webp') with the browser's canvas, in
 * `page` (any page of the test's browser).
 */
export async function browserEncoded(page, type) {
  const bytes = await page.evaluate(async (type) => {
    const canvas = new OffscreenCanvas(64, 64);
    const context = canvas.getContext('2d');
    const gradient = context.createLinearGradient(0, 0, 64, 64);
    gradient.addColorStop(0, '#d22');
    gradient.addColorStop(1, '#228');
    context.fillStyle = gradient;
    context.fillRect(0, 0, 64, 64);
    const blob = await canvas.convertToBlob({ type, quality: 0.9 });
    if (blob.type !== type) throw new Error(`this browser encodes no ${type}`);
    return [...new Uint8Array(await blob.arrayBuffer())];
  }, type);
  return Buffer.from(bytes);
}

export const SVG = Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');

/** A zip of `files` ({path: bytes}); `level` 0 stores them. */
export function zipOf(files, level = 6) {
  return Buffer.from(zipSync(Object.fromEntries(Object.entries(files).map(([path, bytes]) => [path, [bytes, { level }]]))));
}

/** Sets the "encrypted" bit of every entry's flags, in the local and the central headers. */
export function markEncrypted(zip) {
  const out = Buffer.from(zip);
  for (let i = 0; i + 4 <= out.length; i++) {
    const signature = out.readUInt32LE(i);
    if (signature === 0x04034b50) out[i + 6] |= 1;
    if (signature === 0x02014b50) out[i + 8] |= 1;
  }
  return out;
}

/** Makes every entry of `zip` claim `size` uncompressed bytes (local and central headers). */
export function lieAboutSizes(zip, size) {
  const out = Buffer.from(zip);
  for (let i = 0; i + 4 <= out.length; i++) {
    const signature = out.readUInt32LE(i);
    if (signature === 0x04034b50) out.writeUInt32LE(size, i + 22);
    if (signature === 0x02014b50) out.writeUInt32LE(size, i + 24);
  }
  return out;
}

/** The 22 bytes of a zip with no entries. */
export const EMPTY_ZIP = Buffer.from([0x50, 0x4b, 0x05, 0x06, ...new Array(18).fill(0)]);

/** 8-byte little-endian header length, the JSON header, the data. */
export function safetensorsByHand(header, data = Buffer.alloc(0)) {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
  return Buffer.concat([length, Buffer.from(header), data]);
}

export function f32Bytes(values) {
  return Buffer.from(new Float32Array(values).buffer);
}

/** Safetensors files that lie: about their header's length, their offsets, their shapes. */
export function lyingSafetensors() {
  const data = f32Bytes([1, 2, 3, 4]);
  const hugeLength = safetensorsByHand('{}');
  hugeLength.writeBigUInt64LE(1n << 63n, 0);
  return {
    'huge-header.safetensors': hugeLength,
    'past-end.safetensors': safetensorsByHand('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}}', data),
    'shape-overflow.safetensors': safetensorsByHand('{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}', data),
  };
}

/** A zip `torch.save` checkpoint holding `dataPkl` as archive/data.pkl, stored. */
export function torchZip(dataPkl) {
  return zipOf({ 'archive/data.pkl': dataPkl, 'archive/byteorder': Buffer.from('little') }, 0);
}

/** Pickles no allow-list reader may run: `os.system("ls")`, and a memo recall bomb. */
export function hostilePickles() {
  const memoBomb = [0x80, 0x02, 0x5d, 0x4b, 0x01, 0x61, 0x71, 0x00];
  for (let k = 1; k <= 26; k++) memoBomb.push(0x28, 0x68, k - 1, 0x68, k - 1, 0x6c, 0x71, k);
  memoBomb.push(0x2e);
  return {
    'os-system.pth': torchZip(Buffer.from('\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.', 'latin1')),
    'memo-bomb.pth': torchZip(Buffer.from(memoBomb)),
  };
}
