//! Training-time augmentation on 8-bit pixels: random resized crop, horizontal flip, and small
//! brightness / contrast / saturation jitter. Seeded, so a run is reproducible on every platform.

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(default, rename_all = "camelCase")]
pub struct Augmentation {
    /// Off: every view is the evaluation center crop.
    pub enabled: bool,
    /// Smallest share of the image's area a random crop covers (default 0.5; 1 keeps it whole).
    /// Milder than ImageNet training's 0.08: small datasets of whole objects lose the object
    /// in tighter crops.
    pub min_crop_area: f64,
    /// Mirror left-right half of the time (default on; turn off when left and right matter,
    /// e.g. text or arrows).
    pub horizontal_flip: bool,
    /// Largest relative change of brightness, contrast and saturation (default 0.1).
    pub color_jitter: f64,
}

impl Default for Augmentation {
    fn default() -> Self {
        Self { enabled: true, min_crop_area: 0.5, horizontal_flip: true, color_jitter: 0.1 }
    }
}

impl Augmentation {
    /// One random view of `image` at `size`×`size`.
    pub fn view(&self, image: &RgbImage, size: u32, rng: &mut ChaCha8Rng) -> RgbImage {
        let (w, h) = image.dimensions();
        let (cw, ch) = crop_size(w, h, self.min_crop_area.clamp(0.05, 1.0), rng);
        let (x, y) = (rng.random_range(0..=w - cw), rng.random_range(0..=h - ch));
        let crop = imageops::crop_imm(image, x, y, cw, ch).to_image();
        let mut view = imageops::resize(&crop, size, size, FilterType::Triangle);
        if self.horizontal_flip && rng.random_bool(0.5) {
            imageops::flip_horizontal_in_place(&mut view);
        }
        if self.color_jitter > 0.0 {
            let j = self.color_jitter as f32;
            let (brightness, contrast, saturation) =
                (1.0 + rng.random_range(-j..=j), 1.0 + rng.random_range(-j..=j), 1.0 + rng.random_range(-j..=j));
            jitter(&mut view, brightness, contrast, saturation);
        }
        view
    }
}

/// A crop of random area share in `[min_area, 1]` and aspect ratio in `[3/4, 4/3]` that fits.
fn crop_size(w: u32, h: u32, min_area: f64, rng: &mut ChaCha8Rng) -> (u32, u32) {
    let area = (w * h) as f64;
    for _ in 0..10 {
        let target = area * rng.random_range(min_area..=1.0);
        let ratio = rng.random_range((3.0f64 / 4.0).ln()..=(4.0f64 / 3.0).ln()).exp();
        let (cw, ch) = ((target * ratio).sqrt().round() as u32, (target / ratio).sqrt().round() as u32);
        if (1..=w).contains(&cw) && (1..=h).contains(&ch) {
            return (cw, ch);
        }
    }
    let side = w.min(h);
    (side, side)
}

fn jitter(image: &mut RgbImage, brightness: f32, contrast: f32, saturation: f32) {
    let mean = image.pixels().map(|p| luma(p)).sum::<f32>() / (image.width() * image.height()).max(1) as f32;
    for p in image.pixels_mut() {
        let gray = luma(p);
        for c in 0..3 {
            let v = p.0[c] as f32 * brightness;
            let v = (v - mean * brightness) * contrast + mean * brightness;
            let v = gray * brightness + (v - gray * brightness) * saturation;
            p.0[c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
}

fn luma(p: &Rgb<u8>) -> f32 {
    0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn picture() -> RgbImage {
        RgbImage::from_fn(300, 256, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]))
    }

    #[test]
    fn views_have_the_input_size_and_differ() {
        let aug = Augmentation::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = aug.view(&picture(), 224, &mut rng);
        let b = aug.view(&picture(), 224, &mut rng);
        assert_eq!(a.dimensions(), (224, 224));
        assert_ne!(a, b);
    }

    #[test]
    fn same_seed_same_views() {
        let aug = Augmentation::default();
        let view = |seed| aug.view(&picture(), 224, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(view(7), view(7));
    }

    #[test]
    fn without_flip_and_jitter_a_whole_crop_is_a_plain_resize() {
        let aug = Augmentation { min_crop_area: 1.0, horizontal_flip: false, color_jitter: 0.0, enabled: true };
        let square = RgbImage::from_fn(256, 256, |x, y| Rgb([x as u8, y as u8, 7]));
        let view = aug.view(&square, 224, &mut ChaCha8Rng::seed_from_u64(3));
        // Area 1 with a square image leaves only ratio 1 → the whole image.
        assert_eq!(view, imageops::resize(&square, 224, 224, FilterType::Triangle));
    }

    #[test]
    fn jitter_keeps_gray_gray_and_identity_is_identity() {
        let mut img = RgbImage::from_pixel(4, 4, Rgb([100, 100, 100]));
        jitter(&mut img, 1.0, 1.0, 1.5);
        assert_eq!(img.get_pixel(0, 0).0, [100, 100, 100]);
        let original = picture();
        let mut same = original.clone();
        jitter(&mut same, 1.0, 1.0, 1.0);
        assert_eq!(same, original);
    }
}
