//! Reader for PyTorch's zip checkpoints, what `torch.save` writes since torch 1.6: a zip whose
//! single root folder (`archive/`, or the file's stem) holds `data.pkl`, the pickled object whose
//! tensors name their storages by key, and `data/<key>`, each storage's raw little-endian
//! elements. Also `byteorder` and `version`, and on newer versions a few more bookkeeping files.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;

use zip::{CompressionMethod, ZipArchive};

use super::pickle::{self, Cursor};
use super::state_dict::{find_state_dict, materialize};
use super::tensor_map::TensorMap;
use crate::error::{Error, Result};

type Archive<'a> = ZipArchive<std::io::Cursor<&'a [u8]>>;

/// Reads the state dict of a zip `torch.save` file.
pub(super) fn read_torch_zip(bytes: &[u8]) -> Result<TensorMap> {
    let mut archive = ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| Error::weights(format!("a zip file, but an unreadable one (truncated or damaged?): {e}")))?;
    // The shallowest data.pkl: a zip the user made around a checkpoint folder nests it deeper.
    let Some(pickle_name) = archive
        .file_names()
        .filter(|name| *name == "data.pkl" || name.ends_with("/data.pkl"))
        .min_by_key(|name| (name.matches('/').count(), name.len()))
        .map(str::to_string)
    else {
        return Err(Error::weights("a zip file, but not a PyTorch checkpoint: no data.pkl in it"));
    };
    let root = &pickle_name[..pickle_name.len() - "data.pkl".len()];
    let code = format!("{root}code/");
    if archive.index_for_name(&format!("{root}constants.pkl")).is_some() || archive.file_names().any(|n| n.starts_with(&code)) {
        return Err(Error::weights(
            "a TorchScript archive (torch.jit.save), not a state dict: save one with \
             `torch.save(torch.jit.load(path).state_dict(), \"weights.pth\")`",
        ));
    }
    if archive.index_for_name(&format!("{root}byteorder")).is_some() {
        let order = entry(&mut archive, bytes, &format!("{root}byteorder"))?;
        if order.as_ref() != b"little" {
            return Err(Error::weights(format!(
                "a PyTorch checkpoint written with {} byte order; only little-endian ones can be read",
                String::from_utf8_lossy(&order)
            )));
        }
    }

    let saved = pickle::load(&mut Cursor::new(&entry(&mut archive, bytes, &pickle_name)?))?;
    let tensors = find_state_dict(&saved)?;
    let mut storages = HashMap::new();
    for (name, tensor) in &tensors {
        if storages.contains_key(&tensor.storage_key) {
            continue;
        }
        let path = format!("{root}data/{}", tensor.storage_key);
        if archive.index_for_name(&path).is_none() {
            return Err(Error::weights(format!("{name}: the checkpoint has no {path} for its storage")));
        }
        let raw = entry(&mut archive, bytes, &path)?;
        if raw.len() % tensor.storage_type.size() != 0 {
            return Err(Error::weights(format!("{path}: not a whole number of {:?} elements", tensor.storage_type)));
        }
        storages.insert(tensor.storage_key.clone(), tensor.storage_type.decode(&raw));
    }
    materialize(&tensors, &storages)
}

/// The contents of one entry. `torch.save` stores entries uncompressed, so they are sliced out of
/// `bytes` as they are; the CRC is not checked, since torch may be told not to write it
/// (`torch.serialization.config.save.compute_crc32`). Compressed entries (someone re-zipped the
/// folder) are inflated where this build can (the native CLI), else refused with a hint.
fn entry<'a>(archive: &mut Archive<'a>, bytes: &'a [u8], name: &str) -> Result<Cow<'a, [u8]>> {
    let damaged = |e: zip::result::ZipError| Error::weights(format!("{name}: damaged zip entry ({e})"));
    let index = archive.index_for_name(name).ok_or_else(|| Error::weights(format!("{name}: missing")))?;
    let raw = archive.by_index_raw(index).map_err(damaged)?;
    if raw.compression() == CompressionMethod::Stored {
        // `usize::try_from`, not `as`: on 32-bit wasm a 4 GiB + 10 size would wrap to 10.
        let start = usize::try_from(raw.data_start()).ok();
        let end = start.zip(usize::try_from(raw.compressed_size()).ok()).and_then(|(start, n)| start.checked_add(n));
        return start
            .zip(end)
            .and_then(|(start, end)| bytes.get(start..end))
            .map(Cow::Borrowed)
            .ok_or_else(|| Error::weights(format!("{name}: the zip file is truncated")));
    }
    let method = raw.compression();
    drop(raw);
    let refused = |e: &dyn std::fmt::Display| {
        Error::weights(format!(
            "{name}: compressed with {method} ({e}); PyTorch writes checkpoints uncompressed, so save it again \
             with torch.save rather than re-zipping it"
        ))
    };
    let file = archive.by_index(index).map_err(|e| refused(&e))?;
    // Deflate cannot expand more than 1032:1, so a larger declared size is a lie; reading stops
    // at the declared size, so a stream that inflates further cannot allocate more either.
    let declared = file.size();
    if declared > file.compressed_size().saturating_mul(MAX_DEFLATE_RATIO) || declared > MAX_ENTRY_BYTES {
        return Err(Error::weights(format!(
            "{name}: claims {declared} bytes from {} compressed (a zip bomb, or a damaged zip)",
            file.compressed_size()
        )));
    }
    let mut out = Vec::new();
    file.take(declared).read_to_end(&mut out).map_err(|e| refused(&e))?;
    if (out.len() as u64) < declared {
        return Err(Error::weights(format!("{name}: the zip entry is truncated")));
    }
    Ok(Cow::Owned(out))
}

/// Deflate's largest possible expansion ratio.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Largest entry inflated in memory (2 GiB): bigger than any image-classifier backbone.
const MAX_ENTRY_BYTES: u64 = 2 << 30;
