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
            other => return Err(Error::weights(format!("{name}: unsupported element type {other:?}"))),
        };
        map.insert(name.to_string(), TensorEntry { shape: view.shape().to_vec(), values });
    }
    check_finite(&map)?;
    Ok((map, metadata))
}

/// Serialises tensors (sorted by name) with `metadata` as the `__metadata__` table.
pub fn write_safetensors(map: &TensorMap, metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    let buffers: Vec<(&String, Dtype, &Vec<usize>, Vec<u8>)> = map
        .iter()
        .map(|(name, entry)| match &entry.values {
            TensorValues::F32(v) => (name, Dtype::F32, &entry.shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            TensorValues::I64(v) => (name, Dtype::I64, &entry.shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        })
        .collect();
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
    fn garbage_is_refused_with_a_message() {
        let err = read_safetensors(b"definitely not safetensors").unwrap_err().to_string();
        assert!(err.contains("not a valid safetensors file"), "{err}");
    }
}
