//! Weight formats and the mapping between file tensor names and module parameters.
//!
//! Every format is read into a [`TensorMap`]; a backbone's name map ([`NameMap`]) then says which
//! file tensor fills which module parameter. Exports run the same maps backwards, so a file
//! written by webtune uses the names of the original PyTorch model definition.

mod apply;
mod pickle;
mod safetensors_io;
mod state_dict;
mod tensor_map;
mod torch_legacy;
mod torch_zip;

pub use apply::{NameMap, ParamLayout, collect_params, load_params};
pub use safetensors_io::{FloatStorage, read_safetensors, write_safetensors, write_safetensors_as};
pub use tensor_map::{TensorEntry, TensorMap, TensorValues, check_finite};

use crate::error::{Error, Result};

/// Reads a weights file in any supported format, told apart by content rather than file name
/// (the page only sees bytes): safetensors, PyTorch's zip checkpoints (`torch.save` since 1.6),
/// or its legacy format. Training checkpoints are unwrapped to the model's state dict
/// (`{"state_dict": ...}`, `{"model": ...}`), and the name prefixes of `DataParallel`
/// (`module.`) and `torch.compile` (`_orig_mod.`) are removed.
pub fn read_weights_file(bytes: &[u8]) -> Result<TensorMap> {
    let tensors = if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        checked(torch_zip::read_torch_zip(bytes)?)?
    } else if is_safetensors(bytes) {
        read_safetensors(bytes)?.0
    } else if bytes.first() == Some(&0x80) {
        // A pickle's PROTO opcode: what legacy `torch.save` files start with.
        checked(torch_legacy::read_legacy_state_dict(bytes)?)?
    } else {
        return Err(Error::weights(format!(
            "not a weights file{}: expected a PyTorch checkpoint (.pth, .pt, .bin) or safetensors",
            match what_else(bytes) {
                Some(what) => format!(" but {what}"),
                None => String::new(),
            }
        )));
    };
    Ok(strip_wrapper_prefixes(tensors))
}

/// `tensors` if every value is finite ([`read_safetensors`] checks its own).
fn checked(tensors: TensorMap) -> Result<TensorMap> {
    check_finite(&tensors)?;
    Ok(tensors)
}

/// safetensors: an 8-byte little-endian header length, then the JSON header.
fn is_safetensors(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[8] == b'{'
}

/// Files people mistake for weights, named so the message says what was given.
fn what_else(bytes: &[u8]) -> Option<&'static str> {
    let signatures: [(&[u8], usize, &str); 7] = [
        (b"\x89HDF\r\n\x1a\n", 0, "an HDF5 file (Keras .h5 weights)"),
        (b"TFL3", 4, "a TensorFlow Lite model"),
        (b"\x1f\x8b", 0, "a gzip file (unpack it first)"),
        (b"\x89PNG", 0, "a PNG image"),
        (b"\xff\xd8\xff", 0, "a JPEG image"),
        (b"GGUF", 0, "a GGUF file"),
        (b"RIFF", 0, "a RIFF (WebP/WAV) file"),
    ];
    signatures.iter().find(|(magic, at, _)| bytes.get(*at..*at + magic.len()) == Some(*magic)).map(|(_, _, what)| *what)
}

/// Removes a prefix every tensor name shares when it only says how the model was wrapped for
/// training: `module.` (`DataParallel`), `_orig_mod.` (`torch.compile`), in any nesting.
fn strip_wrapper_prefixes(mut tensors: TensorMap) -> TensorMap {
    while let Some(prefix) = ["module.", "_orig_mod."]
        .into_iter()
        .find(|prefix| !tensors.is_empty() && tensors.keys().all(|name| name.starts_with(prefix)))
    {
        tensors = tensors.into_iter().map(|(name, t)| (name[prefix.len()..].to_string(), t)).collect();
    }
    tensors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str) -> (String, TensorEntry) {
        (name.to_string(), TensorEntry::f32(vec![1], vec![1.]))
    }

    #[test]
    fn wrapper_prefixes_are_stripped_only_when_every_name_has_one() {
        let map: TensorMap = [one("module._orig_mod.a.weight"), one("module._orig_mod.b")].into();
        assert_eq!(strip_wrapper_prefixes(map).keys().collect::<Vec<_>>(), ["a.weight", "b"]);
        let map: TensorMap = [one("module.a"), one("b")].into();
        assert_eq!(strip_wrapper_prefixes(map.clone()), map);
    }

    #[test]
    fn safetensors_names_lose_their_data_parallel_prefix() {
        let map: TensorMap = [one("module.conv.weight")].into();
        let bytes = write_safetensors(&map, Default::default()).unwrap();
        assert_eq!(read_weights_file(&bytes).unwrap().keys().collect::<Vec<_>>(), ["conv.weight"]);
    }

    #[test]
    fn other_files_are_named_in_the_refusal() {
        let err = read_weights_file(b"\x89PNG\r\n\x1a\n....").unwrap_err().to_string();
        assert!(err.starts_with("not a weights file but a PNG image"), "{err}");
        let err = read_weights_file(b"hello").unwrap_err().to_string();
        assert!(err.starts_with("not a weights file: expected"), "{err}");
        let err = read_weights_file(b"\x80\x02}q\x00.").unwrap_err().to_string();
        assert!(err.contains("not a PyTorch checkpoint"), "{err}");
        let err = read_weights_file(b"PK\x05\x06").unwrap_err().to_string();
        assert!(err.starts_with("a zip file, but"), "{err}");
    }
}
