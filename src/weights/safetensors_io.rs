//! Reading and writing safetensors files as a [`TensorMap`] plus string metadata.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::tensor_map::{TensorEntry, TensorMap, TensorValues, check_finite};
use crate::error::{Error, Result};

/// Tensors and the `__metadata__` table of a safetensors file.
pub fn read_safetensors(bytes: &[u8]) -> Result<(TensorMap, HashMap<String, String>)> {
    let bad = |e: safetensors::SafeTensorError| Error::weights(format!("not a valid safetensors file: {e}"));
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(bytes).map_err(bad)?;
    let mut map = TensorMap::new();
    for (name, view) in file.iter() {
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => TensorValues::F32(data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
            Dtype::F16 => TensorValues::F32(
                data.chunks_exact(2).map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect(),
            ),
            Dtype::BF16 => TensorValues::F32(
                data.chunks_exact(2).map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect(),
            ),
            Dtype::F64 => TensorValues::F32(
                data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            ),
            Dtype::I64 => TensorValues::I64(data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()),
            Dtype::U8 => TensorValues::U8(data.to_vec()),
            other => return Err(Error::weights(format!("{name}: unsupported element type {other:?}"))),
        };
        map.insert(name.to_string(), TensorEntry { shape: view.shape().to_vec(), values });
    }
    check_finite(&map)?;
    Ok((map, metadata))
}

/// How [`write_safetensors_as`] stores floating-point tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FloatStorage {
    /// 4 bytes a value, exact.
    #[default]
    F32,
    /// 2 bytes a value (IEEE half precision, round to nearest): half the download for the page's
    /// bundled backbone, a relative rounding of at most 2⁻¹¹ per weight. Values beyond half's
    /// range (±65 504) are refused rather than stored as infinities.
    F16,
}

/// `values` as little-endian bytes, written into a buffer of the final size (an iterator of
/// 4-byte arrays does not know it, and grows its vector as it goes).
fn f32_le_bytes(values: &[f32]) -> Vec<u8> {
    let mut bytes = vec![0u8; values.len() * 4];
    for (out, value) in bytes.chunks_exact_mut(4).zip(values) {
        out.copy_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// Serialises tensors (sorted by name) with `metadata` as the `__metadata__` table, floats as f32.
pub fn write_safetensors(map: &TensorMap, metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    write_safetensors_as(map, metadata, FloatStorage::F32)
}

/// [`write_safetensors`] with floats stored as `storage` says ([`read_safetensors`] reads either).
pub fn write_safetensors_as(map: &TensorMap, metadata: HashMap<String, String>, storage: FloatStorage) -> Result<Vec<u8>> {
    let buffers: Vec<(&String, Dtype, &Vec<usize>, Vec<u8>)> = map
        .iter()
        .map(|(name, entry)| {
            Ok(match (&entry.values, storage) {
                (TensorValues::F32(v), FloatStorage::F32) => (name, Dtype::F32, &entry.shape, f32_le_bytes(v)),
                (TensorValues::F32(v), FloatStorage::F16) => {
                    if let Some(x) = v.iter().find(|x| x.abs() > half::f16::MAX.to_f32()) {
                        return Err(Error::weights(format!("{name}: the value {x} does not fit in half precision")));
                    }
                    (name, Dtype::F16, &entry.shape, v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect())
                }
                (TensorValues::I64(v), _) => (name, Dtype::I64, &entry.shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                (TensorValues::U8(v), _) => (name, Dtype::U8, &entry.shape, v.clone()),
            })
        })
        .collect::<Result<_>>()?;
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| Ok((name.as_str(), TensorView::new(*dtype, (*shape).clone(), bytes)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| Error::weights(format!("cannot encode tensors: {e}")))?;
    let metadata = (!metadata.is_empty()).then_some(metadata);
    safetensors::serialize(views, metadata).map_err(|e| Error::weights(format!("cannot write safetensors: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_tensors_and_metadata() {
        let mut map = TensorMap::new();
        map.insert("a.weight".into(), TensorEntry::f32(vec![2, 3], vec![1., 2., 3., 4., 5., -6.5]));
        map.insert("a.count".into(), TensorEntry { shape: vec![], values: TensorValues::I64(vec![42]) });
        let meta = HashMap::from([("labels".to_string(), "[\"x\"]".to_string())]);
        let bytes = write_safetensors(&map, meta.clone()).unwrap();
        let (back, back_meta) = read_safetensors(&bytes).unwrap();
        assert_eq!(back, map);
        assert_eq!(back_meta, meta);
    }

    #[test]
    fn half_precision_halves_the_floats_and_reads_back_rounded() {
        let mut map = TensorMap::new();
        let values = vec![1.0, -2.5, 0.1, 3.14159, 1e-3, 60000.0];
        map.insert("w".into(), TensorEntry::f32(vec![6], values.clone()));
        map.insert("n".into(), TensorEntry { shape: vec![], values: TensorValues::I64(vec![7]) });
        let full = write_safetensors(&map, HashMap::new()).unwrap();
        let half = write_safetensors_as(&map, HashMap::new(), FloatStorage::F16).unwrap();
        assert_eq!(full.len() - half.len(), 6 * 2, "two bytes fewer per float, integers unchanged");
        let (back, _) = read_safetensors(&half).unwrap();
        assert_eq!(back["n"], map["n"]);
        let TensorValues::F32(read) = &back["w"].values else { panic!("floats read as f32") };
        for (a, b) in values.iter().zip(read) {
            assert!((a - b).abs() <= a.abs() * 2f32.powi(-11), "{a} read back as {b}");
        }
        assert_ne!(read[2], 0.1, "0.1 is rounded, not kept exactly");
    }

    #[test]
    fn half_precision_refuses_values_beyond_its_range() {
        let mut map = TensorMap::new();
        map.insert("bn.running_var".into(), TensorEntry::f32(vec![2], vec![1.0, 70000.0]));
        let err = write_safetensors_as(&map, HashMap::new(), FloatStorage::F16).unwrap_err().to_string();
        assert!(err.contains("bn.running_var") && err.contains("half precision"), "{err}");
    }

    #[test]
    fn garbage_is_refused_with_a_message() {
        let err = read_safetensors(b"definitely not safetensors").unwrap_err().to_string();
        assert!(err.contains("not a valid safetensors file"), "{err}");
    }
}
