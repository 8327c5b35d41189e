//! Moving tensors between a [`TensorMap`] and a module's parameters, by name.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData, Transaction};

use super::tensor_map::{TensorEntry, TensorMap, TensorValues};
use crate::error::{Error, Result};

/// How a file tensor is laid out relative to the burn parameter it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamLayout {
    /// Same shape and element order.
    AsIs,
    /// A 2-d matrix stored transposed: PyTorch's `Linear.weight` is `[out, in]`, burn's `[in, out]`.
    Transposed,
}

/// Maps a module parameter path (`backbone.blocks.3.depthwise.bn.gamma`) to the name that
/// tensor has in a file (`_blocks.3._bn1.weight`), for one architecture's file convention.
pub trait NameMap {
    /// The file name and layout for a module parameter, or `None` if the file has no such tensor
    /// (the parameter keeps its initial value; used for a freshly initialised head).
    fn file_name(&self, module_path: &str) -> Option<(String, ParamLayout)>;
    /// File tensors that have no module parameter and are fine to ignore
    /// (BatchNorm's `num_batches_tracked`, the ImageNet classifier when only the backbone is wanted).
    fn ignorable(&self, file_name: &str) -> bool;
}

/// Fills `module`'s parameters from `tensors` according to `names`. Fails, naming the tensor,
/// on the first missing or mis-shaped tensor, or on a file tensor that nothing uses.
pub fn load_params<M: Module>(module: M, tensors: &TensorMap, names: &dyn NameMap) -> Result<M> {
    let mut loader = Loader { tensors, names, path: Vec::new(), used: Vec::new(), error: None };
    let module = module.map(&mut loader);
    if let Some(error) = loader.error {
        return Err(error);
    }
    if let Some(extra) = tensors.keys().find(|name| !loader.used.contains(name) && !names.ignorable(name)) {
        return Err(Error::weights(format!(
            "unexpected tensor {extra} (shape {:?}): this file does not match the architecture",
            tensors[extra].shape
        )));
    }
    Ok(module)
}

struct Loader<'a> {
    tensors: &'a TensorMap,
    names: &'a dyn NameMap,
    path: Vec<String>,
    used: Vec<String>,
    error: Option<Error>,
}

impl Loader<'_> {
    fn tensor_for(&mut self, shape: &[usize]) -> Option<TensorData> {
        if self.error.is_some() {
            return None;
        }
        let module_path = self.path.join(".");
        let (file_name, layout) = self.names.file_name(&module_path)?;
        let Some(entry) = self.tensors.get(&file_name) else {
            self.error = Some(Error::weights(format!("missing tensor {file_name} (expected shape {shape:?})")));
            return None;
        };
        let file_shape = match layout {
            ParamLayout::AsIs => shape.to_vec(),
            ParamLayout::Transposed => vec![shape[1], shape[0]],
        };
        let values = match (&entry.values, entry.shape == file_shape) {
            (TensorValues::F32(values), true) => values,
            (TensorValues::F32(_), false) => {
                self.error = Some(Error::weights(format!(
                    "tensor {file_name} has shape {:?}, expected {file_shape:?}",
                    entry.shape
                )));
                return None;
            }
            (TensorValues::I64(_) | TensorValues::U8(_), _) => {
                self.error = Some(Error::weights(format!("tensor {file_name} is an integer tensor, expected floats")));
                return None;
            }
        };
        self.used.push(file_name);
        let values = match layout {
            ParamLayout::AsIs => values.clone(),
            ParamLayout::Transposed => transpose(values, file_shape[0], file_shape[1]),
        };
        Some(TensorData::new(values, shape.to_vec()))
    }
}

fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let shape = param.shape().dims::<D>().to_vec();
        match self.tensor_for(&shape) {
            Some(data) => param.map(|old| {
                let require_grad = old.is_require_grad();
                Tensor::from_data(data, &old.device()).set_require_grad(require_grad)
            }),
            None => param,
        }
    }
}

/// Every float parameter that `names` maps to a file name, read back from the device.
/// Asynchronous because WebGPU only allows asynchronous reads; one transaction reads them all.
pub async fn collect_params<M: Module>(module: &M, names: &dyn NameMap) -> Result<TensorMap> {
    let mut collector = Collector { names, path: Vec::new(), found: Vec::new() };
    module.visit(&mut collector);
    let mut transaction = Transaction::default();
    for (_, _, tensor, _) in &collector.found {
        transaction = transaction.register(tensor.clone());
    }
    let data = transaction.execute_async().await.map_err(|e| Error::read_back("reading weights", e))?;
    let mut map = TensorMap::new();
    for ((name, layout, _, shape), data) in collector.found.into_iter().zip(data) {
        let values: Vec<f32> =
            data.try_to_vec_as::<f32>().map_err(|e| Error::Backend(format!("reading {name}: {e:?}")))?;
        let entry = match layout {
            ParamLayout::AsIs => TensorEntry::f32(shape, values),
            ParamLayout::Transposed => TensorEntry::f32(vec![shape[1], shape[0]], transpose(&values, shape[0], shape[1])),
        };
        map.insert(name, entry);
    }
    Ok(map)
}

struct Collector<'a> {
    names: &'a dyn NameMap,
    path: Vec<String>,
    /// (file name, layout, flattened tensor, module-side shape)
    found: Vec<(String, ParamLayout, Tensor<1>, Vec<usize>)>,
}

impl ModuleVisitor for Collector<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some((name, layout)) = self.names.file_name(&self.path.join(".")) {
            let tensor = param.val();
            let shape = tensor.dims().to_vec();
            let numel = shape.iter().product::<usize>();
            self.found.push((name, layout, tensor.reshape([numel]), shape));
        }
    }
}
