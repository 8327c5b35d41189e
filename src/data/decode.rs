//! Turning the bytes of a user's file into RGB pixels, the same way in the page and natively.
//!
//! Every limit is checked before the pixel buffer is allocated: the file size first, then the
//! format by its signature, then the dimensions the header declares. A file that claims more
//! than it holds (a truncated JPEG) is refused rather than decoded with a grey fill.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// Largest accepted file, in bytes (100 MiB). A 50-megapixel phone JPEG is 15–30 MB and a
/// lossless PNG of the same size about 100 MB; anything larger is not a photo worth holding in
/// a browser tab's memory next to the model.
pub const MAX_FILE_BYTES: usize = 100 << 20;
/// Most pixels a decoded image may have (50 megapixels): the full-resolution JPEGs of 48/50 MP
/// phone sensors pass, the 108/200 MP modes are refused with a message. The model only ever
/// sees 224×224, so nothing is lost by asking for a downscaled copy.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Largest accepted side, in pixels, whatever the pixel count.
pub const MAX_SIDE: u32 = 16_384;
/// Longest side over shortest side beyond which an image is refused (20:1). The center crop of a
/// 20:1 image keeps 5% of it, which is a strip rather than a picture of the class, and the cap
/// keeps the resized copy small: a 16384×1 line would otherwise scale to 4194304×256.
pub const MAX_ASPECT_RATIO: u32 = 20;
/// Largest pixel buffer a decoder may allocate: [`MAX_PIXELS`] at 8 bytes a pixel (16-bit RGBA,
/// the widest colour type the supported formats decode to), 400 MB.
pub const MAX_DECODE_BYTES: u64 = MAX_PIXELS * 8;
/// The formats this build decodes, as users know them.
pub const SUPPORTED_FORMATS: &str = "JPEG, PNG, WebP, GIF, BMP";

/// Decodes JPEG, PNG, WebP, GIF (first frame) or BMP, applies the EXIF orientation, and returns
/// 8-bit RGB. Errors name the file and say whether it is empty, not an image, corrupt or
/// truncated, too large, or too elongated.
pub fn decode_image(file_name: &str, bytes: &[u8]) -> Result<RgbImage> {
    let refuse = |reason: String| Error::image(file_name, reason);
    if bytes.is_empty() {
        return Err(refuse("empty file (0 bytes)".into()));
    }
    if bytes.len() > MAX_FILE_BYTES {
        return Err(refuse(format!("file too large ({} MB; at most {} MB)", bytes.len() >> 20, MAX_FILE_BYTES >> 20)));
    }
    let format = format_of(bytes).map_err(refuse)?;
    // zune-jpeg returns Ok with the missing rows grey for a cut-off JPEG, so check the structure;
    // and it names a variant it cannot read as a parse error, so name it first.
    if format == ImageFormat::Jpeg {
        let mut frame = None;
        let complete = walk_jpeg(bytes, |marker, body| {
            if is_frame_marker(marker) && frame.is_none() {
                frame = Some((marker, body.first().copied()));
            }
        });
        if let Some((marker, precision)) = frame {
            jpeg_variant_problem(marker, precision).map_err(refuse)?;
        }
        if !complete {
            return Err(refuse("truncated image (the JPEG data ends before its end-of-image marker)".into()));
        }
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    // Only the header has been read at this point: check what it declares before allocating.
    let mut decoder = reader.into_decoder().map_err(|e| describe(file_name, e))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height).map_err(refuse)?;
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(refuse(format!("image too large to decode ({width}×{height} at {:?})", decoder.color_type())));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| describe(file_name, e))?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// Refuses sizes past [`MAX_PIXELS`] or [`MAX_ASPECT_RATIO`], and empty ones; the reason in words.
pub fn check_dimensions(width: u32, height: u32) -> std::result::Result<(), String> {
    let pixels = width as u64 * height as u64;
    if pixels == 0 {
        return Err(format!("image has no pixels ({width}×{height})"));
    }
    if width > MAX_SIDE || height > MAX_SIDE || pixels > MAX_PIXELS {
        return Err(format!(
            "image too large ({width}×{height} pixels; at most {} megapixels and {MAX_SIDE} pixels a side): \
             save a smaller copy",
            MAX_PIXELS / 1_000_000
        ));
    }
    let (long, short) = (width.max(height), width.min(height));
    if long as u64 > short as u64 * MAX_ASPECT_RATIO as u64 {
        return Err(format!(
            "image too elongated ({width}×{height} pixels; at most {MAX_ASPECT_RATIO}:1 between its sides)"
        ));
    }
    Ok(())
}

/// Whether a file's first bytes (512 are enough) are those of a supported image; if not, the
/// reason, as [`decode_image`] would give it. Lets a reader skip a video or a zip bomb of zeros
/// without reading the rest of it.
pub fn check_image_signature(head: &[u8]) -> std::result::Result<(), String> {
    if head.is_empty() {
        return Err("empty file (0 bytes)".into());
    }
    format_of(head).map(drop)
}

/// The format by its signature (file names lie, and the page only has bytes), or why it is not
/// one this build decodes, naming what it looks like when that is recognisable.
fn format_of(bytes: &[u8]) -> std::result::Result<ImageFormat, String> {
    let unsupported = |what: &str| format!("not a supported image format ({SUPPORTED_FORMATS}): {what}");
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif | ImageFormat::Bmp)) => Ok(f),
        Ok(other) => Err(unsupported(&format!("this is a {other:?} image"))),
        Err(_) => Err(match what_else(bytes) {
            Some(what) => unsupported(what),
            None => format!("not a supported image format ({SUPPORTED_FORMATS})"),
        }),
    }
}

/// Files people drop among their photos that the signature table above does not know.
fn what_else(bytes: &[u8]) -> Option<&'static str> {
    let brand = bytes.get(4..12);
    if matches!(brand, Some(b) if b.starts_with(b"ftyp")) {
        let brand = &bytes[8..12];
        return Some(match brand {
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
                "this is a HEIC/HEIF photo (export it as JPEG)"
            }
            b"avif" | b"avis" => "this is an AVIF image",
            _ => "this is a video",
        });
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len());
    let head = &text[start..text.len().min(start + 512)];
    let lower = head.to_ascii_lowercase();
    if lower.starts_with(b"<svg") || (lower.starts_with(b"<?xml") && lower.windows(4).any(|w| w == b"<svg")) {
        return Some("this is an SVG drawing");
    }
    if head.starts_with(b"%PDF") {
        return Some("this is a PDF document");
    }
    if !head.is_empty() && std::str::from_utf8(head).is_ok_and(|s| !s.chars().any(|c| c.is_control() && !c.is_whitespace())) {
        return Some("this is text");
    }
    None
}

/// Start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC, which share the range).
fn is_frame_marker(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// The JPEG variants the decoder reads: 8-bit baseline, extended and progressive Huffman frames.
/// Others are refused in words a user can act on.
fn jpeg_variant_problem(marker: u8, precision: Option<u8>) -> std::result::Result<(), String> {
    let what = match marker {
        0xC3 | 0xC7 | 0xCB | 0xCF => "a lossless JPEG",
        0xC5..=0xC7 | 0xCD..=0xCF => "a hierarchical JPEG",
        0xC9..=0xCB => "an arithmetic-coded JPEG",
        _ => match precision {
            Some(8) | None => return Ok(()),
            Some(bits) => return Err(format!("a {bits}-bit JPEG (only 8 bits a sample are read): save an 8-bit JPEG or PNG copy")),
        },
    };
    Err(format!("{what}, which this decoder does not read: save a baseline JPEG or PNG copy"))
}

/// Walks a JPEG's marker structure, giving each segment's marker and body to `segment`; true when
/// it reaches the end-of-image marker. Segments are skipped by their length, entropy-coded scans
/// up to the next marker that is not a stuffed byte or a restart. A file cut anywhere before EOI
/// fails this, trailers after EOI do not.
fn walk_jpeg(bytes: &[u8], mut segment: impl FnMut(u8, &[u8])) -> bool {
    let mut at = 2; // after SOI
    loop {
        // Decoders skip stray bytes between segments; so does this walk.
        let Some(ff) = bytes.get(at..).and_then(|rest| rest.iter().position(|&b| b == 0xFF)) else { return false };
        at += ff;
        while bytes.get(at) == Some(&0xFF) {
            at += 1;
        }
        let Some(&marker) = bytes.get(at) else { return false };
        at += 1;
        match marker {
            0xD9 => return true,
            0x01 | 0xD0..=0xD8 => {}
            _ => {
                let Some(len) = bytes.get(at..at + 2).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else { return false };
                segment(marker, bytes.get(at + 2..at + len).unwrap_or_default());
                at += len;
                if marker == 0xDA {
                    // Entropy-coded data: 0xFF is followed by 0x00 (a stuffed byte) or a restart.
                    loop {
                        let Some(ff) = bytes.get(at..).and_then(|rest| rest.iter().position(|&b| b == 0xFF)) else {
                            return false;
                        };
                        at += ff;
                        match bytes.get(at + 1) {
                            Some(0x00 | 0xD0..=0xD7) => at += 2,
                            Some(_) => break,
                            None => return false,
                        }
                    }
                }
            }
        }
    }
}

fn describe(file_name: &str, error: image::ImageError) -> Error {
    use image::ImageError::*;
    let reason = match &error {
        Limits(_) => format!(
            "image too large (at most {} megapixels and {MAX_SIDE} pixels a side): save a smaller copy",
            MAX_PIXELS / 1_000_000
        ),
        Unsupported(e) => format!("unsupported image variant ({e})"),
        Decoding(e) => format!("truncated or corrupt image ({e})"),
        IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => "truncated image".to_string(),
        other => format!("cannot decode image ({other})"),
    };
    Error::image(file_name, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb};

    pub(crate) fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128]))
    }

    #[test]
    fn decodes_every_supported_format_to_the_same_size() {
        let img = gradient(40, 30);
        for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Bmp, ImageFormat::Gif, ImageFormat::WebP] {
            let decoded = decode_image("x", &encode(&img, format)).unwrap();
            assert_eq!(decoded.dimensions(), (40, 30), "{format:?}");
        }
        let png = decode_image("x.png", &encode(&img, ImageFormat::Png)).unwrap();
        assert_eq!(png, img, "PNG is lossless");
    }

    #[test]
    fn non_images_and_truncated_files_are_named() {
        let err = decode_image("notes.txt", b"hello, these are my notes").unwrap_err().to_string();
        assert!(err.starts_with("notes.txt: not a supported image"), "{err}");
        let png = encode(&gradient(64, 64), ImageFormat::Png);
        let err = decode_image("cut.png", &png[..png.len() / 2]).unwrap_err().to_string();
        assert!(err.starts_with("cut.png: ") && err.contains("truncated"), "{err}");
        let jpeg = encode(&gradient(64, 64), ImageFormat::Jpeg);
        let err = decode_image("cut.jpg", &jpeg[..40]).unwrap_err().to_string();
        assert!(err.starts_with("cut.jpg: "), "{err}");
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A JPEG with an APP1 Exif segment saying "rotate 90° clockwise" (orientation 6).
        let jpeg = encode(&gradient(40, 30), ImageFormat::Jpeg);
        let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
        tiff.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
        app1.extend(b"Exif\0\0");
        app1.extend(tiff);
        let rotated: Vec<u8> = jpeg[..2].iter().chain(&app1).chain(&jpeg[2..]).copied().collect();
        let decoded = decode_image("phone.jpg", &rotated).unwrap();
        assert_eq!(decoded.dimensions(), (30, 40));
        // The top-left corner of the original (dark red, dark green) is now top-right.
        let corner = decoded.get_pixel(29, 0).0;
        assert!(corner[0] < 40 && corner[1] < 40, "{corner:?}");
    }

    #[test]
    fn huge_images_are_refused_before_decoding() {
        // A valid BMP header that claims 20000 × 20000 pixels, with no pixel data.
        let mut bmp = encode(&gradient(2, 2), ImageFormat::Bmp);
        bmp[18..22].copy_from_slice(&20_000i32.to_le_bytes());
        bmp[22..26].copy_from_slice(&20_000i32.to_le_bytes());
        let err = decode_image("huge.bmp", &bmp).unwrap_err().to_string();
        assert!(err.contains("huge.bmp: image too large"), "{err}");
    }
}
