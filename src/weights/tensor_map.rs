//! A framework-neutral bag of named tensors: what every weight format is read into and written from.

use std::collections::BTreeMap;

/// Element values of one tensor. Floating point formats are widened or narrowed to `f32` on read,
/// since every model in this crate computes in `f32`; integer buffers (BatchNorm's
/// `num_batches_tracked`) are kept so exports can write them back.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorValues {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// One named tensor: a row-major (C order) shape and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    pub shape: Vec<usize>,
    pub values: TensorValues,
}

impl TensorEntry {
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Self { shape, values: TensorValues::F32(values) }
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.values {
            TensorValues::F32(v) => Some(v),
            TensorValues::I64(_) => None,
        }
    }

    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Tensors by name, sorted by name so every export is byte-for-byte reproducible.
pub type TensorMap = BTreeMap<String, TensorEntry>;
