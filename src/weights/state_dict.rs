//! Making sense of an unpickled `torch.save` object: where its state dict is, which storage and
//! view each tensor is, and copying each view out of its storage. Shared by the legacy and the
//! zip front ends, which differ only in where storages come from.

use std::collections::HashMap;

use super::pickle::Value;
use super::tensor_map::{TensorEntry, TensorMap, TensorValues};
use crate::error::{Error, Result};

/// Keys training scripts keep the model's state dict under, beside epochs and optimizer state.
const WRAPPER_KEYS: [&str; 3] = ["state_dict", "model_state_dict", "model"];

/// Guards allocations against sizes a hostile file could claim (about 4 GiB of `f32`).
const MAX_ELEMENTS: usize = 1 << 30;

/// A storage's element type, named in each tensor's persistent id either by a storage class
/// (`torch.FloatStorage`, what `torch.save` writes) or by a dtype (`torch.float32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StorageType {
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

/// A decoded storage: floats widened or narrowed to `f32`, integers widened to `i64`.
pub(super) enum StorageData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl StorageType {
    pub fn from_global_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" | "float32" | "float" => Self::F32,
            "HalfStorage" | "float16" | "half" => Self::F16,
            "BFloat16Storage" | "bfloat16" => Self::BF16,
            "DoubleStorage" | "float64" | "double" => Self::F64,
            "LongStorage" | "int64" | "long" => Self::I64,
            "IntStorage" | "int32" | "int" => Self::I32,
            "ShortStorage" | "int16" | "short" => Self::I16,
            "CharStorage" | "int8" => Self::I8,
            "ByteStorage" | "uint8" => Self::U8,
            "BoolStorage" | "bool" => Self::Bool,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// Decodes little-endian elements; `raw` must hold a whole number of them.
    pub fn decode(self, raw: &[u8]) -> StorageData {
        fn each<const N: usize, T>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            raw.chunks_exact(N).map(|c| f(c.try_into().unwrap())).collect()
        }
        match self {
            Self::F32 => StorageData::F32(each(raw, f32::from_le_bytes)),
            Self::F16 => StorageData::F32(each(raw, |b| half::f16::from_le_bytes(b).to_f32())),
            Self::BF16 => StorageData::F32(each(raw, |b| half::bf16::from_le_bytes(b).to_f32())),
            Self::F64 => StorageData::F32(each(raw, |b| f64::from_le_bytes(b) as f32)),
            Self::I64 => StorageData::I64(each(raw, i64::from_le_bytes)),
            Self::I32 => StorageData::I64(each(raw, |b| i32::from_le_bytes(b) as i64)),
            Self::I16 => StorageData::I64(each(raw, |b| i16::from_le_bytes(b) as i64)),
            Self::I8 => StorageData::I64(each(raw, |[b]| b as i8 as i64)),
            Self::U8 | Self::Bool => StorageData::I64(each(raw, |[b]| b as i64)),
        }
    }
}

/// One tensor of the state dict: a strided view into a storage.
#[derive(Debug)]
pub(super) struct TensorRef {
    pub storage_key: String,
    pub storage_type: StorageType,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

impl TensorRef {
    /// Copies the (possibly strided) view out of its storage into a row-major tensor.
    fn materialize(&self, name: &str, storage: &StorageData) -> Result<TensorEntry> {
        let values = match storage {
            StorageData::F32(data) => TensorValues::F32(self.gather(name, data)?),
            StorageData::I64(data) => TensorValues::I64(self.gather(name, data)?),
        };
        Ok(TensorEntry { shape: self.shape.clone(), values })
    }

    fn gather<T: Copy>(&self, name: &str, data: &[T]) -> Result<Vec<T>> {
        let bad = |why: &str| Error::weights(format!("{name}: {why}"));
        if self.shape.len() != self.stride.len() {
            return Err(bad("size and stride differ in length"));
        }
        let count = self
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| bad("tensor too large"))?;
        if count == 0 {
            return Ok(Vec::new());
        }
        // A stride of 0 repeats elements: 700 bytes could stand for a 4 GiB tensor.
        if self.shape.iter().zip(&self.stride).any(|(&d, &s)| d > 1 && s == 0) {
            return Err(bad(&format!(
                "stride 0 in {:?} (an expanded view); save `tensor.contiguous()` or `.clone()` instead",
                self.stride
            )));
        }
        self.shape
            .iter()
            .zip(&self.stride)
            .try_fold(self.offset, |at, (&d, &s)| at.checked_add((d - 1).checked_mul(s)?))
            .filter(|&last| last < data.len())
            .ok_or_else(|| bad(&format!("storage {} is too short for the tensor", self.storage_key)))?;
        // More elements than the storage holds means the view overlaps itself: the same kind of
        // amplification, and never what `state_dict()` saves.
        if count > data.len() {
            return Err(bad(&format!("a view of {count} elements overlaps itself in storage {}", self.storage_key)));
        }
        if self.is_contiguous() {
            return Ok(data[self.offset..self.offset + count].to_vec());
        }
        let mut out = Vec::with_capacity(count);
        let mut index = vec![0usize; self.shape.len()];
        for _ in 0..count {
            out.push(data[self.offset + index.iter().zip(&self.stride).map(|(i, s)| i * s).sum::<usize>()]);
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < self.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(out)
    }

    /// Row-major with no gaps (the stride of a size-1 dimension does not matter).
    fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.shape.iter().zip(&self.stride).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }
}

/// The tensors of the state dict in `root`, in file order: `root` itself, or the dict a training
/// checkpoint keeps under one of [`WRAPPER_KEYS`].
pub(super) fn find_state_dict(root: &Value) -> Result<Vec<(String, TensorRef)>> {
    let Some(items) = root.dict_items() else {
        return Err(Error::weights(format!(
            "a PyTorch checkpoint, but it holds {} rather than a state dict (tensors by name)",
            root.describe()
        )));
    };
    for key in WRAPPER_KEYS {
        if let Some((_, inner)) = items.iter().find(|(k, v)| *k == Value::Str(key.into()) && v.dict_items().is_some()) {
            return find_state_dict(inner);
        }
    }
    if !items.iter().any(|(_, v)| tensor_call(v).is_some()) {
        let keys: Vec<String> = items
            .iter()
            .take(8)
            .map(|(k, _)| match k {
                Value::Str(s) => format!("{s:?}"),
                other => other.describe(),
            })
            .collect();
        return Err(Error::weights(format!(
            "a PyTorch checkpoint, but no state dict in it: its top-level keys are [{}{}]; expected tensors by \
             name, or a dict holding them under \"state_dict\" or \"model\"",
            keys.join(", "),
            if items.len() > keys.len() { ", ..." } else { "" }
        )));
    }
    items
        .iter()
        .map(|(key, value)| {
            let Value::Str(name) = key else {
                return Err(Error::weights(format!("state dict key is {}, not a string", key.describe())));
            };
            let args = tensor_call(value)
                .ok_or_else(|| Error::weights(format!("{name}: {} where a tensor should be", value.describe())))?;
            Ok((name.clone(), tensor_ref(name, args)?))
        })
        .collect()
}

/// The arguments of `_rebuild_tensor(_v2)` if `value` is a tensor (or a parameter wrapping one).
fn tensor_call(value: &Value) -> Option<&[Value]> {
    let Value::Call { callable, args, .. } = value else { return None };
    match &**callable {
        Value::Global(m, n) if m == "torch._utils" && n.starts_with("_rebuild_tensor") => Some(args),
        Value::Global(m, n) if m == "torch._utils" && n == "_rebuild_parameter" => tensor_call(args.first()?),
        _ => None,
    }
}

fn tensor_ref(name: &str, args: &[Value]) -> Result<TensorRef> {
    let bad = || Error::weights(format!("{name}: unexpected tensor encoding"));
    let [Value::PersistentId(pid), offset, shape, stride, ..] = args else {
        return Err(bad());
    };
    let (storage_key, storage_type, view_offset) = storage_of(pid).map_err(|e| Error::weights(format!("{name}: {e}")))?;
    let at = |what: &str, e: Error| Error::weights(format!("{name}: {what}: {e}"));
    Ok(TensorRef {
        storage_key,
        storage_type,
        offset: view_offset
            .checked_add(as_usize(offset).map_err(|e| at("storage offset", e))?)
            .ok_or_else(|| Error::weights(format!("{name}: storage offset too large")))?,
        shape: as_usizes(shape).map_err(|e| at("size", e))?,
        stride: as_usizes(stride).map_err(|e| at("stride", e))?,
    })
}

/// `('storage', type, key, location, numel[, view_metadata])`: the storage key, its element type
/// and, for the storage views of very old files, where the view starts in its storage.
fn storage_of(pid: &Value) -> Result<(String, StorageType, usize)> {
    let Value::Tuple(pid) = pid else { return Err(Error::weights("unexpected storage reference")) };
    let [Value::Str(kind), Value::Global(_, type_name), Value::Str(key), rest @ ..] = pid.as_slice() else {
        return Err(Error::weights("unexpected storage reference"));
    };
    if kind != "storage" {
        return Err(Error::weights(format!("unexpected storage reference kind {kind:?}")));
    }
    let storage_type = StorageType::from_global_name(type_name)
        .ok_or_else(|| Error::weights(format!("unsupported storage type {type_name}")))?;
    let view_offset = match rest.get(2) {
        Some(Value::Tuple(view)) if view.len() == 3 => as_usize(&view[1])?,
        _ => 0,
    };
    Ok((key.clone(), storage_type, view_offset))
}

/// Element types of every storage `root` refers to, inside the state dict or not (the legacy
/// format stores them back to back, so skipping an unused one needs its element size too).
pub(super) fn storage_types(root: &Value) -> Result<HashMap<String, StorageType>> {
    fn walk(value: &Value, out: &mut HashMap<String, StorageType>) -> Result<()> {
        match value {
            Value::PersistentId(pid) => {
                let (key, ty, _) = storage_of(pid)?;
                out.insert(key, ty);
            }
            Value::Tuple(items) | Value::List(items) => items.iter().try_for_each(|v| walk(v, out))?,
            Value::Dict(items) => items.iter().try_for_each(|(k, v)| walk(k, out).and(walk(v, out)))?,
            Value::Call { callable, args, items } => {
                walk(callable, out)?;
                args.iter().try_for_each(|v| walk(v, out))?;
                items.iter().try_for_each(|(k, v)| walk(k, out).and(walk(v, out)))?;
            }
            _ => {}
        }
        Ok(())
    }
    let mut out = HashMap::new();
    walk(root, &mut out)?;
    Ok(out)
}

/// Copies every tensor out of its decoded storage.
pub(super) fn materialize(tensors: &[(String, TensorRef)], storages: &HashMap<String, StorageData>) -> Result<TensorMap> {
    let mut map = TensorMap::new();
    for (name, tensor) in tensors {
        let storage = storages
            .get(&tensor.storage_key)
            .ok_or_else(|| Error::weights(format!("{name}: storage {} is missing", tensor.storage_key)))?;
        if map.insert(name.clone(), tensor.materialize(name, storage)?).is_some() {
            return Err(Error::weights(format!("{name}: appears twice in the state dict")));
        }
    }
    Ok(map)
}

/// A non-negative integer that fits this target's `usize` (32 bits on wasm32, where `as` would
/// silently wrap 2^32 + 4 to 4).
fn as_usize(v: &Value) -> Result<usize> {
    match v {
        Value::Int(i) if *i >= 0 => {
            usize::try_from(*i).map_err(|_| Error::weights(format!("{i} is too large for this platform")))
        }
        Value::Int(i) => Err(Error::weights(format!("expected a non-negative integer, found {i}"))),
        other => Err(Error::weights(format!("expected a non-negative integer, found {}", other.describe()))),
    }
}

fn as_usizes(v: &Value) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(as_usize).collect(),
        other => Err(Error::weights(format!("expected a tuple of sizes, found {}", other.describe()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(m: &str, n: &str) -> Value {
        Value::Global(m.into(), n.into())
    }

    fn ints(v: &[i64]) -> Value {
        Value::Tuple(v.iter().map(|&i| Value::Int(i)).collect())
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` as unpickled.
    fn tensor(ty: Value, key: &str, offset: i64, shape: &[i64], stride: &[i64]) -> Value {
        let pid = Value::Tuple(vec![Value::Str("storage".into()), ty, Value::Str(key.into()), Value::Str("cpu".into()), Value::Int(6)]);
        Value::Call {
            callable: Box::new(global("torch._utils", "_rebuild_tensor_v2")),
            args: vec![Value::PersistentId(Box::new(pid)), Value::Int(offset), ints(shape), ints(stride), Value::Bool(false)],
            items: vec![],
        }
    }

    fn dict(items: Vec<(&str, Value)>) -> Value {
        Value::Dict(items.into_iter().map(|(k, v)| (Value::Str(k.into()), v)).collect())
    }

    fn storages() -> HashMap<String, StorageData> {
        HashMap::from([("0".to_string(), StorageData::F32(vec![0., 1., 2., 3., 4., 5.]))])
    }

    #[test]
    fn views_with_offsets_and_strides_are_copied_row_major() {
        let root = dict(vec![
            ("t", tensor(global("torch", "FloatStorage"), "0", 0, &[3, 2], &[1, 3])),
            ("tail", tensor(global("torch", "float32"), "0", 4, &[2], &[1])),
            ("row", tensor(global("torch", "FloatStorage"), "0", 3, &[1, 3], &[7, 1])),
            ("one", tensor(global("torch", "FloatStorage"), "0", 2, &[1, 2], &[0, 1])),
        ]);
        let map = materialize(&find_state_dict(&root).unwrap(), &storages()).unwrap();
        assert_eq!(map["t"].as_f32().unwrap(), &[0., 3., 1., 4., 2., 5.]);
        assert_eq!(map["tail"].as_f32().unwrap(), &[4., 5.]);
        assert_eq!(map["row"].as_f32().unwrap(), &[3., 4., 5.]);
        assert_eq!(map["one"].as_f32().unwrap(), &[2., 3.], "stride 0 on a size-1 dimension is harmless");
    }

    #[test]
    fn views_past_the_end_of_their_storage_are_refused() {
        for (offset, shape, stride) in [(5, vec![2], vec![1]), (0, vec![3, 3], vec![3, 1]), (0, vec![1 << 40, 1 << 40], vec![0, 0])] {
            let root = dict(vec![("t", tensor(global("torch", "FloatStorage"), "0", offset, &shape, &stride))]);
            let err = materialize(&find_state_dict(&root).unwrap(), &storages()).unwrap_err().to_string();
            assert!(err.starts_with("t: "), "{err}");
        }
    }

    #[test]
    fn views_that_repeat_elements_are_refused() {
        // stride 0 (an expanded tensor), a self-overlapping view, a negative stride and offset.
        let cases: [(i64, &[i64], &[i64], &str); 5] = [
            (0, &[2, 2], &[0, 1], "stride 0"),
            (0, &[1 << 20, 1 << 9], &[0, 0], "stride 0"),
            (0, &[3, 3], &[1, 1], "overlaps itself"),
            (5, &[2], &[-1], "stride: expected a non-negative integer, found -1"),
            (-1, &[2], &[1], "storage offset: expected a non-negative integer, found -1"),
        ];
        for (offset, shape, stride, expected) in cases {
            let root = dict(vec![("t", tensor(global("torch", "FloatStorage"), "0", offset, shape, stride))]);
            let err = find_state_dict(&root)
                .and_then(|tensors| materialize(&tensors, &storages()).map(drop))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("t: ") && err.contains(expected), "{err}");
        }
    }

    #[test]
    fn training_checkpoints_are_unwrapped() {
        let sd = dict(vec![("w", tensor(global("torch", "FloatStorage"), "0", 0, &[2], &[1]))]);
        for key in WRAPPER_KEYS {
            let root = dict(vec![("epoch", Value::Int(3)), (key, sd.clone()), ("optimizer", dict(vec![]))]);
            let found = find_state_dict(&root).unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].0, "w");
        }
    }

    #[test]
    fn parameters_are_read_as_their_tensor() {
        let parameter = Value::Call {
            callable: Box::new(global("torch._utils", "_rebuild_parameter")),
            args: vec![tensor(global("torch", "FloatStorage"), "0", 1, &[2], &[2]), Value::Bool(true), Value::Dict(vec![])],
            items: vec![],
        };
        let map = materialize(&find_state_dict(&dict(vec![("p", parameter)])).unwrap(), &storages()).unwrap();
        assert_eq!(map["p"].as_f32().unwrap(), &[1., 3.]);
    }

    #[test]
    fn dicts_without_tensors_are_described() {
        let root = dict(vec![("epoch", Value::Int(3)), ("optimizer", dict(vec![]))]);
        let err = find_state_dict(&root).unwrap_err().to_string();
        assert!(err.contains("no state dict in it: its top-level keys are [\"epoch\", \"optimizer\"]"), "{err}");
        let err = find_state_dict(&Value::List(vec![])).unwrap_err().to_string();
        assert!(err.contains("holds a list rather than a state dict"), "{err}");
        let mixed = dict(vec![("w", tensor(global("torch", "FloatStorage"), "0", 0, &[2], &[1])), ("step", Value::Int(1))]);
        let err = find_state_dict(&mixed).unwrap_err().to_string();
        assert_eq!(err, "step: an integer where a tensor should be");
    }

    #[test]
    fn every_storage_type_is_found_for_skipping() {
        let root = dict(vec![
            ("model", dict(vec![("w", tensor(global("torch", "HalfStorage"), "a", 0, &[1], &[1]))])),
            ("optimizer", Value::List(vec![tensor(global("torch", "bfloat16"), "b", 0, &[1], &[1])])),
        ]);
        let types = storage_types(&root).unwrap();
        assert_eq!(types["a"], StorageType::F16);
        assert_eq!(types["b"], StorageType::BF16);
    }

    #[test]
    fn every_element_type_decodes() {
        let f = |ty: StorageType, raw: &[u8]| match ty.decode(raw) {
            StorageData::F32(v) => v.iter().map(|&x| x as f64).collect::<Vec<_>>(),
            StorageData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        };
        assert_eq!(f(StorageType::F32, &1.5f32.to_le_bytes()), [1.5]);
        assert_eq!(f(StorageType::F16, &half::f16::from_f32(-2.5).to_le_bytes()), [-2.5]);
        assert_eq!(f(StorageType::BF16, &half::bf16::from_f32(3.0).to_le_bytes()), [3.0]);
        assert_eq!(f(StorageType::F64, &0.25f64.to_le_bytes()), [0.25]);
        assert_eq!(f(StorageType::I64, &(-7i64).to_le_bytes()), [-7.]);
        assert_eq!(f(StorageType::I32, &(-7i32).to_le_bytes()), [-7.]);
        assert_eq!(f(StorageType::I16, &(-7i16).to_le_bytes()), [-7.]);
        assert_eq!(f(StorageType::I8, &[0xf9]), [-7.]);
        assert_eq!(f(StorageType::U8, &[0xf9]), [249.]);
        assert_eq!(f(StorageType::Bool, &[1, 0]), [1., 0.]);
    }
}
