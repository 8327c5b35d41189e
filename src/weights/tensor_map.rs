//! A framework-neutral bag of named tensors: what every weight format is read into and written from.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Element values of one tensor. Floating point formats are widened or narrowed to `f32` on read,
/// since every model in this crate computes in `f32`; integer buffers (BatchNorm's
/// `num_batches_tracked`) are kept so exports can write them back.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorValues {
    F32(Vec<f32>),
    I64(Vec<i64>),
    /// Bytes (a helper's stored pictures, see `train::data_parallel`).
    U8(Vec<u8>),
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
            TensorValues::I64(_) | TensorValues::U8(_) => None,
        }
    }

    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Tensors by name, sorted by name so every export is byte-for-byte reproducible.
pub type TensorMap = BTreeMap<String, TensorEntry>;

/// Refuses weights holding NaN or infinite values, naming the first such tensor: imported as
/// they are, they would surface later as a training loss of NaN and be blamed on the learning
/// rate.
pub fn check_finite(map: &TensorMap) -> Result<()> {
    for (name, entry) in map {
        if let TensorValues::F32(values) = &entry.values
            && let Some(bad) = values.iter().find(|v| !v.is_finite())
        {
            return Err(Error::weights(format!(
                "{name}: holds {bad} values; the weights are damaged (or were saved after training diverged)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_refused_by_tensor_name() {
        let mut map = TensorMap::new();
        map.insert("a".into(), TensorEntry::f32(vec![2], vec![1., -2.]));
        assert!(check_finite(&map).is_ok());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            map.insert("b.weight".into(), TensorEntry::f32(vec![2], vec![0., bad]));
            let err = check_finite(&map).unwrap_err().to_string();
            assert!(err.starts_with(&format!("b.weight: holds {bad} values")), "{err}");
        }
    }
}
