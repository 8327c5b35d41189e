//! Weight formats and the mapping between file tensor names and module parameters.
//!
//! Every format is read into a [`TensorMap`]; a backbone's name map ([`NameMap`]) then says which
//! file tensor fills which module parameter. Exports run the same maps backwards, so a file
//! written by webtune uses the names of the original PyTorch model definition.

mod apply;
mod safetensors_io;
mod tensor_map;
mod torch_legacy;

pub use apply::{NameMap, ParamLayout, collect_params, load_params};
pub use safetensors_io::{read_safetensors, write_safetensors};
pub use tensor_map::{TensorEntry, TensorMap, TensorValues};
pub use torch_legacy::read_legacy_state_dict;

use crate::error::{Error, Result};

/// Reads a weights file in any supported format, told apart by content rather than file name
/// (the page only sees bytes): safetensors, or PyTorch's legacy `torch.save` format.
pub fn read_weights_file(bytes: &[u8]) -> Result<TensorMap> {
    if bytes.starts_with(&[0x80, 0x02, 0x8a, 0x0a]) {
        return read_legacy_state_dict(bytes);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(Error::weights("zip-format PyTorch checkpoints (torch >= 1.6) are not supported yet; convert to safetensors"));
    }
    read_safetensors(bytes).map(|(tensors, _)| tensors).map_err(|_| {
        Error::weights("not a weights file: expected safetensors or a PyTorch .pth state dict")
    })
}
