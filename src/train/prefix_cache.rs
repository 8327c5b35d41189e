//! Activations of the frozen backbone prefix, cached so phase 2 runs only the unfrozen tail.
//!
//! The prefix is deterministic for a given input, so its output for each (augmented) view of an
//! image is computed once and reused every epoch. Stored as f16 by default: half the memory, and
//! the tail sees inputs within 1e-3 relative of the f32 values.

use burn::tensor::{Device, Tensor, TensorData};
use half::f16;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::data::to_input_tensor;
use crate::error::{Error, Result};
use crate::model::{Backbone, BackboneSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CacheStorage {
    #[default]
    F16,
    F32,
}

#[derive(Debug, Clone)]
enum Values {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

/// Cached prefix outputs, one row per view, each with its class index.
#[derive(Debug, Clone)]
pub struct PrefixCache {
    /// `[channels, height, width]` of one row.
    shape: [usize; 3],
    values: Values,
    targets: Vec<usize>,
}

impl PrefixCache {
    pub fn new(storage: CacheStorage) -> Self {
        let values = match storage {
            CacheStorage::F16 => Values::F16(Vec::new()),
            CacheStorage::F32 => Values::F32(Vec::new()),
        };
        Self { shape: [0; 3], values, targets: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    pub fn targets(&self) -> &[usize] {
        &self.targets
    }

    /// Memory held by the cached activations.
    pub fn bytes(&self) -> usize {
        match &self.values {
            Values::F16(v) => v.len() * 2,
            Values::F32(v) => v.len() * 4,
        }
    }

    fn row_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Runs the prefix (inference mode) on a batch of views already cropped to the input size
    /// and appends their activations.
    pub async fn extend(
        &mut self,
        backbone: &Backbone,
        spec: &BackboneSpec,
        first_tail_unit: usize,
        views: &[(&RgbImage, usize)],
        device: &Device,
    ) -> Result<()> {
        if views.is_empty() {
            return Ok(());
        }
        let pixels: Vec<&RgbImage> = views.iter().map(|(image, _)| *image).collect();
        let out = backbone.forward_prefix(to_input_tensor(&pixels, spec, device), first_tail_unit);
        let [_, c, h, w] = out.dims();
        if self.is_empty() {
            self.shape = [c, h, w];
        } else if self.shape != [c, h, w] {
            return Err(Error::Training("cached activations changed shape: images must share one input size".into()));
        }
        let data = out.into_data_async().await.map_err(|e| Error::read_back("reading activations", e))?;
        let values = data.try_to_vec_as::<f32>().map_err(|e| Error::read_back("reading tensor data", e))?;
        match &mut self.values {
            Values::F16(v) => v.extend(values.iter().map(|&x| f16::from_f32(x))),
            Values::F32(v) => v.extend(values),
        }
        self.targets.extend(views.iter().map(|(_, target)| *target));
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn push_rows_for_test(&mut self, shape: [usize; 3], rows: &[f32], targets: &[usize]) {
        self.shape = shape;
        match &mut self.values {
            Values::F16(v) => v.extend(rows.iter().map(|&x| f16::from_f32(x))),
            Values::F32(v) => v.extend_from_slice(rows),
        }
        self.targets.extend_from_slice(targets);
    }

    /// The rows `indices` as a batch tensor on `device`.
    ///
    /// # Shapes
    /// - output: `[indices.len(), channels, height, width]`
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        let n = self.row_len();
        let mut rows = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            match &self.values {
                Values::F16(v) => rows.extend(v[i * n..(i + 1) * n].iter().map(|x| x.to_f32())),
                Values::F32(v) => rows.extend_from_slice(&v[i * n..(i + 1) * n]),
            }
        }
        let [c, h, w] = self.shape;
        Tensor::from_data(TensorData::new(rows, [indices.len(), c, h, w]), device)
    }
}
