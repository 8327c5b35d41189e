//! Grad-CAM (Selvaraju et al., 2017): which parts of a picture made the classifier choose a
//! class. The activations `A` of the backbone's last convolution (before global pooling) are
//! weighed by the spatial mean of the gradient of the class logit with respect to them:
//! `cam = ReLU(Σ_k w_k A_k)`, `w_k = mean_ij ∂y_c/∂A_k[i, j]`. The gradient comes from burn's
//! autodiff through the head, so a head with a hidden layer is explained as faithfully as a
//! linear one.

use burn::module::Module;
use burn::tensor::Tensor;
use image::RgbImage;
use serde::Serialize;

use crate::data::to_input_tensor;
use crate::error::{Error, Result};
use crate::inference::TrainedModel;
use crate::train::{argmax, softmax};

/// One picture's Grad-CAM for one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct GradCam {
    /// The class explained: the predicted one unless another was asked for.
    pub label: String,
    pub class_index: usize,
    /// The model's probability of that class for this picture.
    pub probability: f32,
    /// `ReLU(Σ_k w_k A_k)` on the last convolution's grid, row-major `[map_height, map_width]`,
    /// unnormalised.
    pub map: Vec<f32>,
    pub map_width: usize,
    pub map_height: usize,
    /// Side of the input crop the map explains.
    pub size: usize,
}

impl GradCam {
    /// The map bilinearly upsampled to the `size`² input crop (pixel centers aligned, as image
    /// resizers do) and divided by its maximum: row-major values in `0..=1`, all 0 when no
    /// region speaks for the class.
    pub fn heatmap(&self) -> Vec<f32> {
        let (w, h, size) = (self.map_width, self.map_height, self.size);
        let max = self.map.iter().copied().fold(0f32, f32::max);
        let scale = if max > 0.0 { 1.0 / max } else { 0.0 };
        // Source coordinate and the two neighbours with their weights, once per output column/row.
        let taps = |n: usize| -> Vec<(usize, usize, f32)> {
            (0..size)
                .map(|x| {
                    let src = ((x as f32 + 0.5) * n as f32 / size as f32 - 0.5).clamp(0.0, (n - 1) as f32);
                    let i0 = src.floor() as usize;
                    (i0, (i0 + 1).min(n - 1), src - i0 as f32)
                })
                .collect()
        };
        let (cols, rows) = (taps(w), taps(h));
        let mut out = Vec::with_capacity(size * size);
        for &(y0, y1, ty) in &rows {
            for &(x0, x1, tx) in &cols {
                let at = |y: usize, x: usize| self.map[y * w + x];
                let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
                let bottom = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
                out.push((top * (1.0 - ty) + bottom * ty) * scale);
            }
        }
        out
    }

    /// The crop with the heatmap laid over it as RGBA rows (`size`² pixels): a blue → red colour
    /// ramp, more opaque where the map is higher, so the picture stays visible where it is low.
    pub fn overlay(&self, crop: &RgbImage) -> Vec<u8> {
        let heat = self.heatmap();
        let mut out = Vec::with_capacity(heat.len() * 4);
        for (pixel, &v) in crop.pixels().zip(&heat) {
            let colour = ramp(v);
            let alpha = 0.2 + 0.5 * v;
            for c in 0..3 {
                out.push((pixel[c] as f32 * (1.0 - alpha) + colour[c] * alpha).round() as u8);
            }
            out.push(255);
        }
        out
    }
}

/// The "jet" colour ramp: 0 dark blue, 0.5 green-yellow, 1 dark red.
fn ramp(v: f32) -> [f32; 3] {
    let channel = |centre: f32| (1.5 - (4.0 * v - centre).abs()).clamp(0.0, 1.0) * 255.0;
    [channel(3.0), channel(2.0), channel(1.0)]
}

impl TrainedModel {
    /// Grad-CAM of `class` (the predicted class when `None`) for an image already cropped to
    /// the input size.
    pub async fn grad_cam(&self, crop: &RgbImage, class: Option<usize>) -> Result<GradCam> {
        if let Some(class) = class.filter(|&c| c >= self.labels.len()) {
            return Err(Error::Settings {
                setting: "class".into(),
                message: format!("class {class} does not exist: the model has {} classes", self.labels.len()),
            });
        }
        let device = self.classifier.backbone.device();
        let maps = self.classifier.backbone.feature_maps(to_input_tensor(&[crop], &self.spec, &device)); // [1, K, h, w]
        let [_, channels, map_height, map_width] = maps.dims();
        let pool = |a: Tensor<4>| a.mean_dim(3).mean_dim(2).reshape([1, channels]); // [1, K]

        let logits = self.classifier.head.forward(pool(maps.clone())); // [1, classes]
        let logits = read(logits, "reading logits").await?;
        let probabilities = softmax(&logits);
        let class = class.unwrap_or_else(|| argmax(&logits));

        // The maps become a leaf of a graph on the autodiff twin of the device; the head
        // follows them there, frozen (no parameter gradients, dropout off).
        let training_device = device.clone().autodiff();
        let head = self.classifier.head.clone().fork(&training_device).freeze();
        let leaf = maps.clone().autodiff().require_grad();
        let logit = head.forward(pool(leaf.clone())).slice([0..1, class..class + 1]).sum(); // y_c
        let grads = logit.backward();
        let gradient = leaf.grad(&grads).ok_or_else(|| Error::Backend("Grad-CAM: no gradient reached the activation maps".into()))?; // [1, K, h, w]
        let weights = gradient.mean_dim(3).mean_dim(2); // [1, K, 1, 1]
        let cam = burn::tensor::activation::relu((maps * weights).sum_dim(1)); // [1, 1, h, w]
        let map = read(cam, "reading the Grad-CAM map").await?;
        Ok(GradCam {
            label: self.labels[class].clone(),
            class_index: class,
            probability: probabilities[class],
            map,
            map_width,
            map_height,
            size: self.spec.input_size as usize,
        })
    }
}

async fn read<const D: usize>(tensor: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    let data = tensor.into_data_async().await.map_err(|e| Error::read_back(what, e))?;
    data.try_to_vec_as::<f32>().map_err(|e| Error::read_back("reading tensor data", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BackboneKind, Classifier, HeadConfig};
    use burn::tensor::Device;
    use image::Rgb;

    fn model(hidden: usize, device: &Device) -> TrainedModel {
        device.seed(5);
        let kind = BackboneKind::ResNet18;
        let head = HeadConfig::new(kind.features(), 3).with_hidden(hidden).init_seeded(device, 9);
        let classifier = Classifier { backbone: crate::model::Backbone::init(kind, device), head };
        TrainedModel { classifier, labels: vec!["a".into(), "b".into(), "c".into()], spec: kind.spec(), hidden_units: hidden, training: serde_json::Value::Null }
    }

    fn picture() -> RgbImage {
        RgbImage::from_fn(224, 224, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 251) as u8]))
    }

    /// The same map computed by hand from the activation maps: with global average pooling the
    /// gradient of `y_c` is constant over the grid, `∂y_c/∂f / (h·w)`, where `f` are the pooled
    /// features; for a linear head `∂y_c/∂f` is the class's weight row.
    #[test]
    fn linear_head_map_is_the_class_weights_times_the_activations() {
        let device = Device::flex();
        let model = model(0, &device);
        let crop = picture();
        let maps = model.classifier.backbone.feature_maps(to_input_tensor(&[&crop], &model.spec, &device));
        let [_, k, h, w] = maps.dims();
        let a = maps.into_data().try_to_vec::<f32>().unwrap();
        let weights = model.classifier.head.output.weight.val().into_data().try_to_vec::<f32>().unwrap(); // [in, out]
        let mut positive = 0;
        for class in 0..3 {
            let cam = pollster::block_on(model.grad_cam(&crop, Some(class))).unwrap();
            assert_eq!((cam.map_height, cam.map_width, cam.class_index), (h, w, class));
            let expected: Vec<f32> = (0..h * w)
                .map(|p| (0..k).map(|c| weights[c * 3 + class] / (h * w) as f32 * a[c * h * w + p]).sum::<f32>().max(0.0))
                .collect();
            let scale = expected.iter().copied().fold(0f32, f32::max);
            positive += expected.iter().filter(|&&v| v > 0.0).count();
            for (got, want) in cam.map.iter().zip(&expected) {
                assert!((got - want).abs() <= 1e-4 * scale.max(1e-6), "class {class}: {got} vs {want}");
            }
        }
        assert!(positive > 0, "maps that are all 0 check nothing");
    }

    #[test]
    fn predicted_class_by_default_and_out_of_range_classes_refused() {
        let device = Device::flex();
        let model = model(8, &device);
        let crop = picture();
        let cam = pollster::block_on(model.grad_cam(&crop, None)).unwrap();
        let probabilities = pollster::block_on(model.probabilities(&[&crop])).unwrap().remove(0);
        assert_eq!(cam.class_index, argmax(&probabilities));
        assert!((cam.probability - probabilities[cam.class_index]).abs() < 1e-6);
        let err = pollster::block_on(model.grad_cam(&crop, Some(3))).unwrap_err().to_string();
        assert!(err.contains("class 3 does not exist"), "{err}");
    }

    #[test]
    fn heatmap_is_normalised_and_follows_the_map() {
        let cam = GradCam { label: "a".into(), class_index: 0, probability: 1.0, map: vec![0.0, 2.0, 0.0, 0.0], map_width: 2, map_height: 2, size: 8 };
        let heat = cam.heatmap();
        assert_eq!(heat.len(), 64);
        let max = heat.iter().copied().fold(0f32, f32::max);
        assert!((max - 1.0).abs() < 1e-6);
        // The top-right quarter is where the map is high; the bottom-left corner is 0.
        assert_eq!(heat[7], 1.0);
        assert_eq!(heat[56], 0.0);
        assert!(heat[1] < heat[6]);
        let overlay = cam.overlay(&RgbImage::from_pixel(8, 8, Rgb([0, 0, 0])));
        assert_eq!(overlay.len(), 256);
        assert!(overlay[7 * 4] > overlay[7 * 4 + 2], "high is red");
        let blank = GradCam { map: vec![0.0; 4], ..cam };
        assert!(blank.heatmap().iter().all(|&v| v == 0.0));
    }
}
