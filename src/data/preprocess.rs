//! Evaluation preprocessing: resize the shorter side, center-crop, normalise into a tensor.

use burn::tensor::{Device, Tensor, TensorData};
use image::imageops::{self, FilterType};
use image::RgbImage;

use super::decode::MAX_ASPECT_RATIO;
use crate::model::BackboneSpec;

/// Resizes so the shorter side is `spec.resize_size` (keeping the aspect ratio), then crops the
/// central `spec.input_size` square. Bilinear (triangle) filtering, which `image` widens when
/// shrinking so large photos are averaged rather than aliased.
pub fn resize_and_center_crop(image: &RgbImage, spec: &BackboneSpec) -> RgbImage {
    center_crop(&resize_shorter_side(image, spec), spec)
}

/// The first half of [`resize_and_center_crop`]: shorter side to `spec.resize_size`. What the
/// image set keeps, so augmentation can crop elsewhere than the center.
///
/// The longer side is capped at [`MAX_ASPECT_RATIO`] times `spec.resize_size`: `decode_image`
/// already refuses images more elongated than that, and the cap keeps any other caller's strip
/// (a 16384×1 buffer) from scaling up to gigabytes; such an image is squeezed instead.
pub fn resize_shorter_side(image: &RgbImage, spec: &BackboneSpec) -> RgbImage {
    let (w, h) = shorter_side_size(image.dimensions(), spec);
    imageops::resize(image, w, h, FilterType::Triangle)
}

/// The size [`resize_shorter_side`] gives an image of `(width, height)`.
pub fn shorter_side_size((w, h): (u32, u32), spec: &BackboneSpec) -> (u32, u32) {
    let short = w.min(h).max(1) as f64;
    let scale = spec.resize_size as f64 / short;
    let cap = spec.resize_size as f64 * MAX_ASPECT_RATIO as f64;
    let side = |s: u32| ((s as f64 * scale).round().min(cap) as u32).max(spec.input_size);
    (side(w), side(h))
}

/// The central `spec.input_size` square of an image at least that large.
pub fn center_crop(image: &RgbImage, spec: &BackboneSpec) -> RgbImage {
    let (w, h) = image.dimensions();
    let (x, y) = ((w - spec.input_size) / 2, (h - spec.input_size) / 2);
    imageops::crop_imm(image, x, y, spec.input_size, spec.input_size).to_image()
}

/// Normalised NCHW input for a batch of already cropped images.
///
/// # Shapes
/// - output: `[images.len(), 3, size, size]`
pub fn to_input_tensor(images: &[&RgbImage], spec: &BackboneSpec, device: &Device) -> Tensor<4> {
    let size = spec.input_size as usize;
    Tensor::from_data(TensorData::new(input_values(images, spec), [images.len(), 3, size, size]), device)
}

/// The values of [`to_input_tensor`]'s tensor (`[images, 3, size, size]`, row-major).
pub fn input_values(images: &[&RgbImage], spec: &BackboneSpec) -> Vec<f32> {
    let size = spec.input_size as usize;
    let mut values = Vec::with_capacity(images.len() * 3 * size * size);
    for image in images {
        assert_eq!(image.dimensions(), (spec.input_size, spec.input_size), "crop images before batching");
        for c in 0..3 {
            values.extend(image.pixels().map(|p| (p.0[c] as f32 - spec.mean[c]) / spec.std[c]));
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn crop_is_central_and_square() {
        let spec = BackboneSpec::efficientnet_lite0();
        // Left half black, right half white, wide image: the crop straddles the middle.
        let img = RgbImage::from_fn(600, 300, |x, _| if x < 300 { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) });
        let crop = resize_and_center_crop(&img, &spec);
        assert_eq!(crop.dimensions(), (224, 224));
        assert_eq!(crop.get_pixel(5, 100).0, [0, 0, 0]);
        assert_eq!(crop.get_pixel(218, 100).0, [255, 255, 255]);
        // Tiny images are upscaled rather than refused.
        assert_eq!(resize_and_center_crop(&RgbImage::new(3, 9), &spec).dimensions(), (224, 224));
    }

    #[test]
    fn strips_are_capped_not_scaled_to_gigabytes() {
        let spec = BackboneSpec::efficientnet_lite0();
        let cap = spec.resize_size * MAX_ASPECT_RATIO;
        // Uncapped, 16384×1 would become 4194304×256 (3.2 GB of RGB).
        assert_eq!(resize_shorter_side(&RgbImage::new(16_384, 1), &spec).dimensions(), (cap, 256));
        assert_eq!(resize_shorter_side(&RgbImage::new(1, 16_384), &spec).dimensions(), (256, cap));
        assert_eq!(resize_and_center_crop(&RgbImage::new(16_384, 1), &spec).dimensions(), (224, 224));
        // Within the ratio nothing changes: 20:1 keeps its aspect.
        assert_eq!(resize_shorter_side(&RgbImage::new(2000, 100), &spec).dimensions(), (cap, 256));
    }

    #[test]
    fn normalisation_is_channel_planar() {
        let spec = BackboneSpec::efficientnet_lite0();
        let img = RgbImage::from_pixel(224, 224, Rgb([255, 127, 0]));
        let t = to_input_tensor(&[&img], &spec, &Device::flex());
        let data = t.into_data().try_to_vec::<f32>().unwrap();
        let plane = 224 * 224;
        assert_eq!(data[0], 128.0 / 128.0);
        assert_eq!(data[plane], 0.0);
        assert_eq!(data[2 * plane], -127.0 / 128.0);
    }
}
