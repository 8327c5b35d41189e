//! Activations of the frozen backbone prefix, cached so phase 2 runs only the unfrozen tail.
//!
//! The prefix is deterministic for a given input, so its output for each (augmented) view of an
//! image is computed once and reused every epoch. Stored as f16 by default: half the memory, and
//! the tail sees inputs within 1e-3 relative of the f32 values.

use std::collections::HashMap;

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

#[derive(Debug, Clone, PartialEq)]
enum Values {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

/// Cached prefix outputs, one row per view, each with its class index.
#[derive(Debug, Clone, PartialEq)]
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
        let (shape, values) = read_rows(out).await?;
        self.check_shape(shape)?;
        match &mut self.values {
            Values::F16(v) => v.extend(values.iter().map(|&x| f16::from_f32(x))),
            Values::F32(v) => v.extend(values),
        }
        self.targets.extend(views.iter().map(|(_, target)| *target));
        Ok(())
    }

    /// Appends row `row` of `other` (same row shape) with class `target`.
    pub fn push_from(&mut self, other: &PrefixCache, row: usize, target: usize) -> Result<()> {
        let n = other.row_len();
        match &other.values {
            Values::F16(v) => self.push_f16(other.shape, &v[row * n..(row + 1) * n], target),
            Values::F32(v) => {
                self.check_shape(other.shape)?;
                match &mut self.values {
                    Values::F16(mine) => mine.extend(v[row * n..(row + 1) * n].iter().map(|&x| f16::from_f32(x))),
                    Values::F32(mine) => mine.extend_from_slice(&v[row * n..(row + 1) * n]),
                }
                self.targets.push(target);
                Ok(())
            }
        }
    }

    /// Appends one row of shape `shape` stored as f16, with class `target`.
    fn push_f16(&mut self, shape: [usize; 3], row: &[f16], target: usize) -> Result<()> {
        self.check_shape(shape)?;
        match &mut self.values {
            Values::F16(v) => v.extend_from_slice(row),
            Values::F32(v) => v.extend(row.iter().map(|x| x.to_f32())),
        }
        self.targets.push(target);
        Ok(())
    }

    /// Takes `shape` as the row shape of an empty cache; refuses a different one later.
    fn check_shape(&mut self, shape: [usize; 3]) -> Result<()> {
        if self.is_empty() {
            self.shape = shape;
        } else if self.shape != shape {
            return Err(Error::Training("cached activations changed shape: images must share one input size".into()));
        }
        Ok(())
    }

    /// Appends rows of shape `shape` (one per target, one after the other) with their classes.
    pub fn push_rows(&mut self, shape: [usize; 3], rows: &[f32], targets: &[usize]) -> Result<()> {
        if rows.len() != targets.len() * shape.iter().product::<usize>() {
            return Err(Error::Training(format!("{} values for {} rows of {shape:?}", rows.len(), targets.len())));
        }
        self.check_shape(shape)?;
        match &mut self.values {
            Values::F16(v) => v.extend(rows.iter().map(|&x| f16::from_f32(x))),
            Values::F32(v) => v.extend_from_slice(rows),
        }
        self.targets.extend_from_slice(targets);
        Ok(())
    }

    /// The rows `indices` as f32 values, and their shape `[indices.len(), channels, height, width]`.
    pub fn rows(&self, indices: &[usize]) -> (Vec<usize>, Vec<f32>) {
        let n = self.row_len();
        let mut rows = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            match &self.values {
                Values::F16(v) => rows.extend(v[i * n..(i + 1) * n].iter().map(|x| x.to_f32())),
                Values::F32(v) => rows.extend_from_slice(&v[i * n..(i + 1) * n]),
            }
        }
        let [c, h, w] = self.shape;
        (vec![indices.len(), c, h, w], rows)
    }

    /// The rows `indices` as a batch tensor on `device`.
    ///
    /// # Shapes
    /// - output: `[indices.len(), channels, height, width]`
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        let (shape, rows) = self.rows(indices);
        Tensor::from_data(TensorData::new(rows, shape), device)
    }
}

/// The prefix outputs of pictures' center views, computed in the same forward pass as their
/// features (see [`FeatureCache::extract_with_prefixes`](super::FeatureCache::extract_with_prefixes))
/// and held by picture id until phase 2's cache takes them: every picture's center view is
/// cached (a training picture's first view, a validation picture's only one), so computing it
/// there saves one prefix pass per picture. Stored as f16, as the cache stores them.
#[derive(Debug, Default)]
pub struct CenterPrefixes {
    /// The unit whose input these are; rows of another split are not asked for.
    first_tail_unit: usize,
    shape: [usize; 3],
    rows: HashMap<u32, Vec<f16>>,
}

impl CenterPrefixes {
    /// Empty, for the tail starting at `first_tail_unit`.
    pub fn new(first_tail_unit: usize) -> Self {
        Self { first_tail_unit, ..Default::default() }
    }

    pub fn first_tail_unit(&self) -> usize {
        self.first_tail_unit
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn contains(&self, image_id: u32) -> bool {
        self.rows.contains_key(&image_id)
    }

    /// Keeps the prefix outputs `prefix` (`[batch, c, h, w]`) of the pictures `ids`, in order.
    pub(crate) async fn insert(&mut self, ids: &[u32], prefix: Tensor<4>) -> Result<()> {
        let (shape, values) = read_rows(prefix).await?;
        self.insert_rows(ids, shape, &values)
    }

    /// Keeps `values`, rows of `shape` one after the other, as the prefix outputs of the pictures
    /// `ids`, in order.
    pub(crate) fn insert_rows(&mut self, ids: &[u32], shape: [usize; 3], values: &[f32]) -> Result<()> {
        if values.len() != ids.len() * shape.iter().product::<usize>() {
            return Err(Error::Training(format!("{} prefix values for {} pictures of {shape:?}", values.len(), ids.len())));
        }
        if !self.rows.is_empty() && self.shape != shape {
            return Err(Error::Training("cached activations changed shape: images must share one input size".into()));
        }
        self.shape = shape;
        let n = shape.iter().product::<usize>().max(1);
        for (&id, row) in ids.iter().zip(values.chunks_exact(n)) {
            self.rows.insert(id, row.iter().map(|&x| f16::from_f32(x)).collect());
        }
        Ok(())
    }

    /// Moves picture `image_id`'s row to the end of `cache` with class `target`. An error when
    /// it is not held (see [`contains`](Self::contains): pictures whose features an earlier run
    /// computed have none).
    pub fn move_into(&mut self, image_id: u32, cache: &mut PrefixCache, target: usize) -> Result<()> {
        match self.rows.remove(&image_id) {
            Some(row) => cache.push_f16(self.shape, &row, target),
            None => Err(Error::Training(format!("no center view kept for picture {image_id}"))),
        }
    }
}

/// Reads a `[batch, c, h, w]` tensor back as `([c, h, w], values)`.
async fn read_rows(out: Tensor<4>) -> Result<([usize; 3], Vec<f32>)> {
    let [_, c, h, w] = out.dims();
    let data = out.into_data_async().await.map_err(|e| Error::read_back("reading activations", e))?;
    let values = data.try_to_vec_as::<f32>().map_err(|e| Error::read_back("reading tensor data", e))?;
    Ok(([c, h, w], values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn center_rows_move_into_a_cache_in_the_order_asked() {
        let device = Device::flex();
        let rows = Tensor::<4>::from_data(TensorData::new((0..12).map(|x| x as f32 * 0.5).collect::<Vec<_>>(), [3, 1, 2, 2]), &device);
        let mut centers = CenterPrefixes::new(7);
        pollster::block_on(centers.insert(&[10, 11, 12], rows)).unwrap();
        assert_eq!((centers.len(), centers.first_tail_unit()), (3, 7));

        // A fresh pass's row (f32) between two held ones, as the cache step interleaves them.
        let mut fresh = PrefixCache::new(CacheStorage::F32);
        fresh.push_rows([1, 2, 2], &[9.0, 9.5, 10.0, 10.5], &[0]).unwrap();
        let mut cache = PrefixCache::new(CacheStorage::F16);
        centers.move_into(12, &mut cache, 2).unwrap();
        cache.push_from(&fresh, 0, 5).unwrap();
        centers.move_into(10, &mut cache, 0).unwrap();
        assert!(centers.move_into(10, &mut cache, 0).is_err(), "a row moves once");
        assert!(!centers.contains(10) && centers.contains(11));

        assert_eq!(cache.targets(), &[2, 5, 0]);
        let batch = cache.batch(&[0, 1, 2], &device).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(batch, [4.0, 4.5, 5.0, 5.5, 9.0, 9.5, 10.0, 10.5, 0.0, 0.5, 1.0, 1.5]);

        let mut other_shape = PrefixCache::new(CacheStorage::F32);
        other_shape.push_rows([4, 1, 1], &[1.0; 4], &[0]).unwrap();
        assert!(cache.push_from(&other_shape, 0, 0).is_err(), "rows of another shape are refused");
    }
}
