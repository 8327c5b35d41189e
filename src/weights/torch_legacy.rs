//! Reader for PyTorch's legacy (pre-1.6, non-zip) `torch.save` format, the format the default
//! EfficientNet-Lite0 weights ship in. No torch needed.
//!
//! The file is a sequence of pickles: a magic number, a protocol version, a `sys_info` dict, the
//! saved object (a state dict whose tensors refer to storages through persistent ids), a list of
//! storage keys, and then, for each key in that order, an 8-byte little-endian element count
//! followed by the raw little-endian elements.

use std::collections::HashMap;

use super::pickle::{self, Cursor, Value};
use super::state_dict::{find_state_dict, materialize, storage_types};
use super::tensor_map::TensorMap;
use crate::error::{Error, Result};

const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;

/// Reads the state dict of a legacy `torch.save` file.
pub(super) fn read_legacy_state_dict(bytes: &[u8]) -> Result<TensorMap> {
    let mut cursor = Cursor::new(bytes);
    let not_torch = || Error::weights("a Python pickle, but not a PyTorch checkpoint (no torch.save magic number)");
    match pickle::load(&mut cursor) {
        Ok(Value::Int(magic)) if magic as u128 == LEGACY_MAGIC => {}
        Ok(Value::BigInt(magic)) if magic == LEGACY_MAGIC => {}
        _ => return Err(not_torch()),
    }
    match pickle::load(&mut cursor)? {
        Value::Int(1001) => {}
        other => return Err(Error::weights(format!("unsupported PyTorch protocol version {other:?}"))),
    }
    let _sys_info = pickle::load(&mut cursor)?;
    let saved = pickle::load(&mut cursor)?;
    let keys = match pickle::load(&mut cursor)? {
        Value::List(keys) => keys
            .into_iter()
            .map(|k| match k {
                Value::Str(s) => Ok(s),
                other => Err(Error::weights(format!("storage key is {}, not a string", other.describe()))),
            })
            .collect::<Result<Vec<_>>>()?,
        other => return Err(Error::weights(format!("expected the storage key list, found {}", other.describe()))),
    };

    let tensors = find_state_dict(&saved)?;
    // Storages sit back to back, so every one is read (or skipped) by its element size, including
    // those of a wrapper's other entries (optimizer state).
    let types = storage_types(&saved)?;
    let mut storages = HashMap::new();
    for key in keys {
        let count = cursor.u64_le()?;
        let dtype = *types
            .get(key.as_str())
            .ok_or_else(|| Error::weights(format!("storage {key} is not used by any tensor")))?;
        // In u64 and against the bytes actually left, before anything is allocated: the count is
        // the file's word, and `as usize` would wrap on 32-bit wasm.
        let left = (cursor.bytes.len() - cursor.pos) as u64;
        let size = count.checked_mul(dtype.size() as u64).filter(|&n| n <= left).ok_or_else(|| {
            Error::weights(format!(
                "weights file is truncated: storage {key} claims {count} elements, more than the {left} bytes left in the file"
            ))
        })?;
        let raw = cursor.take(size as usize)?;
        if tensors.iter().any(|(_, t)| t.storage_key == key) {
            storages.insert(key, dtype.decode(raw));
        }
    }
    materialize(&tensors, &storages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::TensorValues;

    /// Hand-assembles a legacy file: the same opcodes torch 1.4 writes for
    /// `{"w": tensor([[1., 2.], [3., 4.]]).t()}` plus an int64 buffer.
    fn legacy_file() -> Vec<u8> {
        let mut f = Vec::new();
        // magic number as LONG1
        f.extend([0x80, 2, 0x8a, 10]);
        f.extend(&LEGACY_MAGIC.to_le_bytes()[..10]);
        f.push(b'.');
        f.extend([0x80, 2, b'M']);
        f.extend(1001u16.to_le_bytes());
        f.push(b'.');
        f.extend([0x80, 2, b'}', b'.']); // sys_info
        // state dict
        f.extend([0x80, 2]);
        f.extend(b"ccollections\nOrderedDict\nq\x00)R(");
        let tensor = |f: &mut Vec<u8>, name: &str, ty: &str, key: &str, size: u8, shape: &[u8], stride: &[u8]| {
            f.push(b'X');
            f.extend((name.len() as u32).to_le_bytes());
            f.extend(name.as_bytes());
            f.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            f.extend(b"(X\x07\x00\x00\x00storage");
            f.extend(format!("ctorch\n{ty}\n").as_bytes());
            f.push(b'X');
            f.extend((key.len() as u32).to_le_bytes());
            f.extend(key.as_bytes());
            f.extend(b"X\x03\x00\x00\x00cpuK");
            f.push(size);
            f.extend(b"tQK\x00(");
            for s in shape {
                f.extend([b'K', *s]);
            }
            f.extend(b"t(");
            for s in stride {
                f.extend([b'K', *s]);
            }
            f.extend(b"t\x89ccollections\nOrderedDict\n)Rtr\x05\x00\x00\x00");
            f.push(b'R');
        };
        tensor(&mut f, "w", "FloatStorage", "k0", 4, &[2, 2], &[1, 2]);
        tensor(&mut f, "n", "LongStorage", "k1", 1, &[], &[]);
        f.extend(b"u.");
        // storage keys
        f.extend(b"\x80\x02]q\x00(X\x02\x00\x00\x00k0X\x02\x00\x00\x00k1e.");
        f.extend(4u64.to_le_bytes());
        for v in [1f32, 2., 3., 4.] {
            f.extend(v.to_le_bytes());
        }
        f.extend(1u64.to_le_bytes());
        f.extend(7i64.to_le_bytes());
        f
    }

    #[test]
    fn reads_strided_float_and_int_tensors() {
        let map = read_legacy_state_dict(&legacy_file()).unwrap();
        let w = &map["w"];
        assert_eq!(w.shape, vec![2, 2]);
        // stride (1, 2) is the transpose of [[1, 2], [3, 4]]
        assert_eq!(w.as_f32().unwrap(), &[1., 3., 2., 4.]);
        assert_eq!(map["n"].values, TensorValues::I64(vec![7]));
        assert_eq!(map["n"].shape, Vec::<usize>::new());
    }

    #[test]
    fn truncated_file_is_an_error_not_a_panic() {
        let file = legacy_file();
        for cut in [3, 20, 60, file.len() - 9, file.len() - 1] {
            let err = read_legacy_state_dict(&file[..cut]).unwrap_err().to_string();
            assert!(!err.is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn storage_counts_past_the_file_are_refused_before_allocating() {
        let mut file = legacy_file();
        // The first storage's element count sits 8 + 16 + 8 + 8 bytes from the end.
        let at = file.len() - 40;
        assert_eq!(file[at..at + 8], 4u64.to_le_bytes());
        for count in [9u64, 1 << 62, u64::MAX, (1 << 32) + 4] {
            file[at..at + 8].copy_from_slice(&count.to_le_bytes());
            let err = read_legacy_state_dict(&file).unwrap_err().to_string();
            assert!(err.contains(&format!("storage k0 claims {count} elements")), "{err}");
        }
    }

    #[test]
    fn refuses_unknown_globals() {
        let mut file = legacy_file();
        let at = file.windows(11).position(|w| w == b"collections").unwrap();
        file.splice(at..at + 11, b"os.systemxx".iter().copied());
        let err = read_legacy_state_dict(&file).unwrap_err().to_string();
        assert!(err.contains("refusing to load os.systemxx.OrderedDict"), "{err}");
    }
}
