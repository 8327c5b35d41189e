//! Generators for hostile inputs, shared by the hostile-input and CLI tests: every file is built
//! in memory here (no binary fixtures), most of them by hand so that they can lie.
#![allow(dead_code)]

use std::io::{Cursor, Write};

use image::{ImageFormat, Rgb, RgbImage};

pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// zlib with stored (uncompressed) deflate blocks: enough to write any PNG by hand.
pub fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() { vec![&[]] } else { data.chunks(65_535).collect() };
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        out.extend((block.len() as u16).to_le_bytes());
        out.extend((!(block.len() as u16)).to_le_bytes());
        out.extend(*block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + byte as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend(((b << 16) | a).to_be_bytes());
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

/// A PNG that says whatever it is told: `raw` is the filtered scanline data (filter bytes
/// included), compressed as stored blocks.
pub fn png_by_hand(width: u32, height: u32, bit_depth: u8, color_type: u8, interlaced: bool, palette: Option<&[u8]>, raw: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([bit_depth, color_type, 0, 0, u8::from(interlaced)]);
    chunk(&mut out, b"IHDR", &ihdr);
    if let Some(palette) = palette {
        chunk(&mut out, b"PLTE", palette);
    }
    chunk(&mut out, b"IDAT", &zlib_stored(raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Gray 8-bit value of pixel (x, y) in [`interlaced_gray`].
pub fn gray_at(x: u32, y: u32) -> u8 {
    (x * 31 + y * 7) as u8
}

/// An 8×8 gray Adam7-interlaced PNG (the image crate's encoder writes no interlaced files).
pub fn interlaced_gray() -> Vec<u8> {
    let passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];
    let mut raw = Vec::new();
    for (x0, y0, dx, dy) in passes {
        for y in (y0..8).step_by(dy) {
            raw.push(0);
            raw.extend((x0..8).step_by(dx).map(|x| gray_at(x, y)));
        }
    }
    png_by_hand(8, 8, 8, 0, true, None, &raw)
}

pub fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128]))
}

pub fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A zip of `(name, bytes)` entries, each stored or deflated.
pub fn zip_of(entries: &[(&str, &[u8])], deflated: bool) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = if deflated { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Pickle opcodes for the pieces of a `torch.save` state dict (protocol 2).
pub mod pickle {
    pub fn int(v: i64) -> Vec<u8> {
        if let Ok(small) = i32::try_from(v) {
            let mut out = vec![b'J'];
            out.extend(small.to_le_bytes());
            out
        } else {
            let mut out = vec![0x8a, 8];
            out.extend(v.to_le_bytes());
            out
        }
    }

    pub fn string(s: &str) -> Vec<u8> {
        let mut out = vec![b'X'];
        out.extend((s.len() as u32).to_le_bytes());
        out.extend(s.as_bytes());
        out
    }

    fn tuple(items: &[i64]) -> Vec<u8> {
        let mut out = vec![b'('];
        for &i in items {
            out.extend(int(i));
        }
        out.push(b't');
        out
    }

    /// One tensor entry: `name: _rebuild_tensor_v2(storage key, offset, shape, stride)`.
    pub struct Tensor<'a> {
        pub name: &'a str,
        pub key: &'a str,
        pub numel: i64,
        pub offset: i64,
        pub shape: &'a [i64],
        pub stride: &'a [i64],
    }

    /// `OrderedDict` of float32 tensors, as `data.pkl` of a zip checkpoint holds it.
    pub fn state_dict(tensors: &[Tensor]) -> Vec<u8> {
        let mut out = b"\x80\x02ccollections\nOrderedDict\n)R(".to_vec();
        for t in tensors {
            out.extend(string(t.name));
            out.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            out.push(b'(');
            out.extend(string("storage"));
            out.extend(b"ctorch\nFloatStorage\n");
            out.extend(string(t.key));
            out.extend(string("cpu"));
            out.extend(int(t.numel));
            out.extend(b"tQ");
            out.extend(int(t.offset));
            out.extend(tuple(t.shape));
            out.extend(tuple(t.stride));
            out.extend(b"\x89ccollections\nOrderedDict\n)RtR");
        }
        out.extend(b"u.");
        out
    }

    /// A pickle whose memo recalls double a list twenty-six times: a few hundred bytes asking
    /// for 2^26 copies.
    pub fn memo_bomb() -> Vec<u8> {
        let mut out = b"\x80\x02]K\x01aq\x00".to_vec();
        for k in 1..=26u8 {
            out.extend([b'(', b'h', k - 1, b'h', k - 1, b'l', b'q', k]);
        }
        out.push(b'.');
        out
    }

    /// `depth` lists nested in each other.
    pub fn nested_lists(depth: usize) -> Vec<u8> {
        let mut out = b"\x80\x02".to_vec();
        out.extend(std::iter::repeat_n(b']', depth));
        out.extend(std::iter::repeat_n(b'a', depth - 1));
        out.push(b'.');
        out
    }
}

/// A zip `torch.save` checkpoint: `archive/data.pkl` and `archive/data/<key>` entries, stored.
pub fn torch_zip(data_pkl: &[u8], storages: &[(&str, Vec<u8>)], extra: &[(&str, &[u8])]) -> Vec<u8> {
    let names: Vec<String> = storages.iter().map(|(k, _)| format!("archive/data/{k}")).collect();
    let mut entries: Vec<(&str, &[u8])> = vec![("archive/data.pkl", data_pkl), ("archive/byteorder", b"little")];
    entries.extend(names.iter().zip(storages).map(|(n, (_, b))| (n.as_str(), b.as_slice())));
    entries.extend(extra.iter().copied());
    zip_of(&entries, false)
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A safetensors file with a header written by hand.
pub fn safetensors_by_hand(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// A legacy (pre-1.6) `torch.save` file: magic, protocol, sys_info, the state-dict pickle, the
/// storage keys, then each storage's element count and float32 data.
pub fn torch_legacy(data_pkl: &[u8], storages: &[(&str, Vec<f32>)]) -> Vec<u8> {
    const MAGIC: u128 = 0x1950a86a20f9469cfc6c;
    let mut f = vec![0x80, 2, 0x8a, 10];
    f.extend(&MAGIC.to_le_bytes()[..10]);
    f.extend([b'.', 0x80, 2, b'M']);
    f.extend(1001u16.to_le_bytes());
    f.extend([b'.', 0x80, 2, b'}', b'.']);
    f.extend(data_pkl);
    f.extend([0x80, 2, b']', b'(']);
    for (key, _) in storages {
        f.extend(pickle::string(key));
    }
    f.extend(b"e.");
    for (_, values) in storages {
        f.extend((values.len() as u64).to_le_bytes());
        f.extend(f32_bytes(values));
    }
    f
}

/// An 8×8 baseline JPEG in Adobe CMYK (four components, APP14 transform 0) of one flat colour,
/// written by hand since no encoder at hand writes CMYK. Samples are stored the Adobe way
/// (inverted: 255 is no ink), so `cmyk_jpeg([255, 0, 0, 255])` is red: no cyan ink, full
/// magenta and yellow, no black.
pub fn cmyk_jpeg(samples: [u8; 4]) -> Vec<u8> {
    let segment = |out: &mut Vec<u8>, marker: u8, body: &[u8]| {
        out.extend([0xFF, marker]);
        out.extend(((body.len() + 2) as u16).to_be_bytes());
        out.extend(body);
    };
    let mut out = vec![0xFF, 0xD8];
    segment(&mut out, 0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00");
    segment(&mut out, 0xDB, &[[0u8].as_slice(), &[1; 64]].concat()); // all quantisers 1
    let mut sof = vec![8, 0, 8, 0, 8, 4];
    for id in 1..=4 {
        sof.extend([id, 0x11, 0]);
    }
    segment(&mut out, 0xC0, &sof);
    // DC table: categories 0, 10 and 11 as 00, 01, 10; AC table: only end-of-block, as 0.
    let mut dht = vec![0x00, 0, 3];
    dht.extend([0; 14]);
    dht.extend([0, 10, 11]);
    dht.extend([0x10, 1]);
    dht.extend([0; 15]);
    dht.push(0x00);
    segment(&mut out, 0xC4, &dht);
    let mut sos = vec![4];
    for id in 1..=4 {
        sos.extend([id, 0x00]);
    }
    sos.extend([0, 63, 0]);
    segment(&mut out, 0xDA, &sos);
    // One block per component: its DC coefficient (8 × (sample − 128)), then end-of-block.
    let mut bits: Vec<bool> = Vec::new();
    let mut push = |value: u32, n: u32| bits.extend((0..n).rev().map(|i| value >> i & 1 == 1));
    for sample in samples {
        let dc = 8 * (sample as i32 - 128);
        let (code, category) = match dc {
            0 => (0b00, 0),
            d if d.unsigned_abs() < 1024 => (0b01, 10),
            _ => (0b10, 11),
        };
        push(code, 2);
        if category > 0 {
            let raw = if dc < 0 { dc + (1 << category) - 1 } else { dc };
            push(raw as u32, category);
        }
        push(0, 1);
    }
    while bits.len() % 8 != 0 {
        bits.push(true);
    }
    for byte in bits.chunks(8).map(|b| b.iter().fold(0u8, |acc, &bit| acc << 1 | u8::from(bit))) {
        out.push(byte);
        if byte == 0xFF {
            out.push(0); // byte stuffing
        }
    }
    out.extend([0xFF, 0xD9]);
    out
}
