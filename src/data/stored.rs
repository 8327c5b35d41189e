//! How the image set keeps a picture between adding it and training on it: JPEG-compressed.
//!
//! A photo resized to a shorter side of 256 is 262 KB of RGB at 4:3 and 349 KB at 16:9, so
//! 5 000 photos held raw take 1.3–1.7 GB: more than a browser tab can spare next to the model.
//! Compressed at quality [`STORED_QUALITY`] without chroma subsampling a real photo takes 5 to 7
//! times less (generated ones 13 to 15; measured in the README), while the error (a level or two
//! out of 255) stays far below what augmentation changes. Pictures are decoded again only when a
//! run builds its views (features, cached views, evaluation), a few milliseconds each. The page
//! and the command line store and decode with the same code, so both still see identical pixels.

use std::io::Cursor;

use image::codecs::jpeg::{JpegDecoder, JpegEncoder};
use image::{DynamicImage, RgbImage};

use crate::error::{Error, Result};

/// JPEG quality of stored pictures: high enough that the stored pixels differ from the
/// resized ones by about one level on average.
pub const STORED_QUALITY: u8 = 95;

/// One picture, compressed. Equal pixels give equal bytes (the encoder is deterministic), so
/// exact copies can be found by comparing [`StoredPicture::bytes`].
#[derive(Debug, Clone)]
pub struct StoredPicture {
    width: u32,
    height: u32,
    jpeg: Vec<u8>,
}

impl StoredPicture {
    /// Compresses `pixels` (already resized: both sides are far below JPEG's 65 535 limit).
    pub fn new(file_name: &str, pixels: &RgbImage) -> Result<Self> {
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, STORED_QUALITY)
            .encode_image(pixels)
            .map_err(|e| Error::image(file_name, format!("could not keep the resized picture ({e})")))?;
        jpeg.shrink_to_fit();
        Ok(Self { width: pixels.width(), height: pixels.height(), jpeg })
    }

    /// Takes back bytes that [`StoredPicture::bytes`] gave out (the page keeps them in the
    /// browser's storage, so that a reload needs no full-size decode) when they still are such a
    /// picture: `decoded` is what the image decoder, with all its checks, made of them, and the
    /// stored decoding must give exactly the same pixels (so no EXIF turn, no other format). The
    /// bytes are kept as they are, so the picture is exactly the one it was; None otherwise.
    pub fn reopen(jpeg: &[u8], decoded: &RgbImage) -> Option<Self> {
        let picture = Self { width: decoded.width(), height: decoded.height(), jpeg: jpeg.to_vec() };
        (picture.decode().as_ref() == Some(decoded)).then_some(picture)
    }

    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The compressed bytes: what the picture costs in memory, and its identity for exact copies.
    pub fn bytes(&self) -> &[u8] {
        &self.jpeg
    }

    /// The stored pixels, decoded.
    pub fn pixels(&self) -> RgbImage {
        // These bytes were written by `new` above or checked by `reopen`, so reading them back
        // cannot fail short of a broken decoder; a grey picture would silently train on nothing,
        // so say so instead.
        self.decode().expect("a picture the image set compressed itself decodes")
    }

    fn decode(&self) -> Option<RgbImage> {
        Self::decode_bytes(&self.jpeg).filter(|pixels| pixels.dimensions() == self.dimensions())
    }

    /// The pixels of bytes that [`StoredPicture::bytes`] gave out, decoded as [`pixels`]
    /// decodes them (a helper engine makes its views from them); None when they are no JPEG.
    ///
    /// [`pixels`]: StoredPicture::pixels
    pub fn decode_bytes(jpeg: &[u8]) -> Option<RgbImage> {
        JpegDecoder::new(Cursor::new(jpeg)).and_then(DynamicImage::from_decoder).ok().map(DynamicImage::into_rgb8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// Smooth gradients with some texture, like a resized photo.
    fn photo_like(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let t = ((x * 7 + y * 13) % 17) as u8;
            Rgb([(x * 255 / w) as u8 / 2 + t, (y * 255 / h) as u8 / 2 + t, ((x + y) % 256) as u8 / 3 + t])
        })
    }

    #[test]
    fn stored_pixels_are_close_to_the_given_ones_and_much_smaller() {
        let pixels = photo_like(341, 256);
        let stored = StoredPicture::new("a.jpg", &pixels).unwrap();
        let back = stored.pixels();
        assert_eq!(back.dimensions(), (341, 256));
        assert_eq!(stored.dimensions(), (341, 256));
        let diffs: Vec<f64> = pixels.as_raw().iter().zip(back.as_raw()).map(|(&a, &b)| (a as f64 - b as f64).abs()).collect();
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        assert!(mean < 2.0, "mean error {mean}");
        assert!(stored.bytes().len() * 3 < pixels.as_raw().len(), "{} bytes", stored.bytes().len());
    }

    #[test]
    fn equal_pixels_give_equal_bytes_and_different_pixels_different_bytes() {
        let a = StoredPicture::new("a.png", &photo_like(300, 256)).unwrap();
        let b = StoredPicture::new("b.png", &photo_like(300, 256)).unwrap();
        let mut other = photo_like(300, 256);
        other.put_pixel(150, 100, Rgb([255, 0, 255]));
        let c = StoredPicture::new("c.png", &other).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_ne!(a.bytes(), c.bytes());
    }
}
