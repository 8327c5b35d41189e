//! Turning the bytes of a user's file into RGB pixels, the same way in the page and natively.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// Largest accepted side, in pixels. A 16k × 16k photo decodes to 768 MB of RGBA in some
/// decoders; anything bigger is refused with a message rather than exhausting the tab's memory.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoder allocation allowed, in bytes.
pub const MAX_ALLOC: u64 = 1 << 30;

/// Decodes JPEG, PNG, WebP, GIF (first frame) or BMP, applies the EXIF orientation, and returns
/// 8-bit RGB. Errors name the file and say whether it is not an image, corrupt, or too large.
pub fn decode_image(file_name: &str, bytes: &[u8]) -> Result<RgbImage> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::image(file_name, format!("cannot read file ({e})")))?;
    if reader.format().is_none() {
        return Err(Error::image(file_name, "not a supported image (JPEG, PNG, WebP, GIF or BMP expected)"));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    let mut reader = reader;
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| describe(file_name, e))?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| describe(file_name, e))?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

fn describe(file_name: &str, error: image::ImageError) -> Error {
    use image::ImageError::*;
    let reason = match &error {
        Limits(_) => format!("image too large (at most {MAX_SIDE}×{MAX_SIDE} pixels)"),
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
