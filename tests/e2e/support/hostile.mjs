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

/** `jpeg` with its frame header rewritten as frame type `marker` (0xC1 extended, 0xC3 lossless, ...) at `precision` bits. */
export function jpegVariant(jpeg, marker, precision) {
  const bytes = Buffer.from(jpeg);
  const sof = bytes.indexOf(Buffer.from([0xff, 0xc0]));
  bytes[sof + 1] = marker;
  bytes[sof + 4] = precision;
  return bytes;
}

/**
 * An 8×8 baseline JPEG in Adobe CMYK of one flat colour, written by hand (no encoder at hand writes
 * CMYK); the Rust side's `cmyk_jpeg`. Samples are Adobe's inverted ones: [255, 0, 0, 255] is red.
 */
export function cmykJpeg(samples) {
  const out = [0xff, 0xd8];
  const segment = (marker, body) => out.push(0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body);
  segment(0xee, [...Buffer.from('Adobe\0', 'latin1'), 0x64, 0, 0, 0, 0, 0]);
  segment(0xdb, [0, ...new Array(64).fill(1)]);
  segment(0xc0, [8, 0, 8, 0, 8, 4, ...[1, 2, 3, 4].flatMap((id) => [id, 0x11, 0])]);
  // DC table: categories 0, 10 and 11 as 00, 01, 10; AC table: only end-of-block, as 0.
  segment(0xc4, [0x00, 0, 3, ...new Array(14).fill(0), 0, 10, 11, 0x10, 1, ...new Array(15).fill(0), 0x00]);
  segment(0xda, [4, ...[1, 2, 3, 4].flatMap((id) => [id, 0]), 0, 63, 0]);
  const bits = [];
  const push = (value, n) => {
    for (let i = n - 1; i >= 0; i--) bits.push((value >> i) & 1);
  };
  for (const sample of samples) {
    const dc = 8 * (sample - 128);
    const category = dc === 0 ? 0 : Math.abs(dc) < 1024 ? 10 : 11;
    push(category === 0 ? 0b00 : category === 10 ? 0b01 : 0b10, 2);
    if (category > 0) push(dc < 0 ? dc + (1 << category) - 1 : dc, category);
    push(0, 1);
  }
  while (bits.length % 8 !== 0) bits.push(1);
  for (let i = 0; i < bits.length; i += 8) {
    const byte = bits.slice(i, i + 8).reduce((acc, bit) => (acc << 1) | bit, 0);
    out.push(byte);
    if (byte === 0xff) out.push(0); // byte stuffing
  }
  out.push(0xff, 0xd9);
  return Buffer.from(out);
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

/**
 * Safetensors files that lie: about their header's length, their offsets (past the end,
 * overlapping), their shapes, their dtype; a header nested 100 000 deep; infinite weights.
 */
export function lyingSafetensors() {
  const data = f32Bytes([1, 2, 3, 4]);
  const hugeLength = safetensorsByHand('{}');
  hugeLength.writeBigUInt64LE(1n << 63n, 0);
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  return {
    'huge-header.safetensors': hugeLength,
    'past-end.safetensors': safetensorsByHand('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}}', data),
    'shape-overflow.safetensors': safetensorsByHand('{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}', data),
    'overlapping.safetensors': safetensorsByHand(
      '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
      data,
    ),
    'dtype-size.safetensors': safetensorsByHand('{"w":{"dtype":"F64","shape":[4],"data_offsets":[0,16]}}', data),
    'deep-json.safetensors': safetensorsByHand(`{"__metadata__":{"x":${deep}}}`),
    'infinite.safetensors': safetensorsByHand('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', f32Bytes([1, 2, Infinity, 4])),
  };
}

/** `name: value`s as webtune's own export writes them: a `[2, 1280]` head of zeros and `metadata`. */
export function exportWith(metadata) {
  const fc = Buffer.alloc(2 * 1280 * 4);
  const bias = Buffer.alloc(2 * 4);
  const header = JSON.stringify({
    __metadata__: { labels: '["cats","dogs"]', backbone: 'efficientnet_lite0', head_hidden_units: '0', ...metadata },
    '_fc.bias': { dtype: 'F32', shape: [2], data_offsets: [0, bias.length] },
    '_fc.weight': { dtype: 'F32', shape: [2, 1280], data_offsets: [bias.length, bias.length + fc.length] },
  });
  return safetensorsByHand(header, Buffer.concat([bias, fc]));
}

/** A zip `torch.save` checkpoint holding `dataPkl` as archive/data.pkl (and `extra` entries), stored. */
export function torchZip(dataPkl, extra = {}) {
  return zipOf({ 'archive/data.pkl': dataPkl, 'archive/byteorder': Buffer.from('little'), ...extra }, 0);
}

const pickleInt = (v) => {
  const out = Buffer.alloc(5);
  out[0] = 0x4a; // BININT
  out.writeInt32LE(v, 1);
  return out;
};
const pickleString = (s) => {
  const length = Buffer.alloc(4);
  length.writeUInt32LE(Buffer.byteLength(s));
  return Buffer.concat([Buffer.from('X'), length, Buffer.from(s)]);
};
const pickleTuple = (items) => Buffer.concat([Buffer.from('('), ...items.map(pickleInt), Buffer.from('t')]);

/** A state dict of one float32 tensor `w` over 4 stored values, viewed with `shape` and `stride`. */
export function oneTensorCheckpoint(shape, stride, extra = {}) {
  const pkl = Buffer.concat([
    Buffer.from('\x80\x02ccollections\nOrderedDict\n)R(', 'latin1'),
    pickleString('w'),
    Buffer.from('ctorch._utils\n_rebuild_tensor_v2\n((', 'latin1'),
    pickleString('storage'),
    Buffer.from('ctorch\nFloatStorage\n', 'latin1'),
    pickleString('0'),
    pickleString('cpu'),
    pickleInt(4),
    Buffer.from('tQ', 'latin1'),
    pickleInt(0),
    pickleTuple(shape),
    pickleTuple(stride),
    Buffer.from('\x89ccollections\nOrderedDict\n)RtRu.', 'latin1'),
  ]);
  return torchZip(pkl, { 'archive/data/0': f32Bytes([1, 2, 3, 4]), ...extra });
}

/**
 * Pickles no allow-list reader may run or believe: `os.system("ls")`, `eval`, `exec`, a memo
 * recall bomb, lists nested 300 000 deep, a stride of 0 that makes 4 values a 4 GB tensor, and a
 * TorchScript archive (code, not a state dict).
 */
export function hostilePickles() {
  const memoBomb = [0x80, 0x02, 0x5d, 0x4b, 0x01, 0x61, 0x71, 0x00];
  for (let k = 1; k <= 26; k++) memoBomb.push(0x28, 0x68, k - 1, 0x68, k - 1, 0x6c, 0x71, k);
  memoBomb.push(0x2e);
  const depth = 300_000;
  const nested = Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.alloc(depth, ']'), Buffer.alloc(depth - 1, 'a'), Buffer.from('.')]);
  return {
    'os-system.pth': torchZip(Buffer.from('\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.', 'latin1')),
    'eval.pth': torchZip(Buffer.from('\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.', 'latin1')),
    'exec.pth': torchZip(Buffer.from('\x80\x04\x8c\x08builtins\x8c\x04exec\x93.', 'latin1')),
    'memo-bomb.pth': torchZip(Buffer.from(memoBomb)),
    'nested.pth': torchZip(nested),
    'stride-zero.pth': oneTensorCheckpoint([1 << 20, 1 << 10], [0, 0]),
    'torchscript.pt': oneTensorCheckpoint([4], [1], { 'archive/code/__torch__/model.py': Buffer.from('def forward(self): ...') }),
  };
}
