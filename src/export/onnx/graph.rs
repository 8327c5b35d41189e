//! A small builder for inference graphs: one method per layer kind, each appending its node and
//! taking its weights from a [`TensorMap`] by their PyTorch names.

use std::collections::BTreeSet;

use super::proto::{
    AttributeProto, GraphProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, attribute_type,
    data_type, tensor_shape_proto::Dimension, tensor_shape_proto::dimension, type_proto,
};
use crate::error::{Error, Result};
use crate::weights::{TensorMap, TensorValues};

/// A 2-d convolution without bias (every backbone here follows its convolutions with BatchNorm).
pub(super) struct Conv {
    /// `[in, out]` channels.
    pub channels: [usize; 2],
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    /// ONNX order: `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

/// TensorFlow "SAME" padding of a square `size` input: output `ceil(size / stride)`, and when the
/// total padding is odd the extra pixel goes bottom/right.
pub(super) fn same_pads(size: usize, kernel: usize, stride: usize) -> [usize; 4] {
    let total = ((size.div_ceil(stride) - 1) * stride + kernel).saturating_sub(size);
    let (begin, end) = (total / 2, total - total / 2);
    [begin, begin, end, end]
}

/// PyTorch's usual `padding = kernel // 2` on every side.
pub(super) fn symmetric_pads(kernel: usize) -> [usize; 4] {
    [kernel / 2; 4]
}

/// Builds the node list and the initializers. With no tensors (`listing`), it only records the
/// name and shape of every weight the graph would read.
pub(super) struct GraphBuilder<'a> {
    tensors: Option<&'a TensorMap>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Every weight read, in first-use order, with its shape.
    pub params: Vec<(String, Vec<usize>)>,
    values: BTreeSet<String>,
    relu6_bounds: Option<[String; 2]>,
}

impl<'a> GraphBuilder<'a> {
    pub fn new(tensors: &'a TensorMap) -> Self {
        Self { tensors: Some(tensors), ..Self::listing() }
    }

    pub fn listing() -> Self {
        Self { tensors: None, nodes: Vec::new(), initializers: Vec::new(), params: Vec::new(), values: BTreeSet::new(), relu6_bounds: None }
    }

    /// The weight `name`, which must have `shape`, as an initializer.
    pub fn param(&mut self, name: String, shape: &[usize]) -> Result<String> {
        if self.params.iter().any(|(n, _)| *n == name) {
            return Ok(name);
        }
        if let Some(tensors) = self.tensors {
            let entry = tensors.get(&name).ok_or_else(|| Error::weights(format!("missing tensor {name} (expected shape {shape:?})")))?;
            if entry.shape != shape {
                return Err(Error::weights(format!("tensor {name} has shape {:?}, expected {shape:?}", entry.shape)));
            }
            let TensorValues::F32(values) = &entry.values else {
                return Err(Error::weights(format!("tensor {name} is an integer tensor, expected floats")));
            };
            self.initializers.push(float_tensor(&name, shape, values));
        }
        self.params.push((name.clone(), shape.to_vec()));
        Ok(name)
    }

    /// The dimension `axis` of weight `name` as stored, when it is known (used to read a head's
    /// hidden width from the file).
    pub fn dim_of(&self, name: &str, axis: usize) -> Option<usize> {
        self.tensors?.get(name)?.shape.get(axis).copied()
    }

    /// Tensors of the map that the graph did not use, BatchNorm's step counters aside.
    pub fn unused(&self) -> Vec<String> {
        let Some(tensors) = self.tensors else { return Vec::new() };
        tensors
            .keys()
            .filter(|name| !name.ends_with("num_batches_tracked") && !self.params.iter().any(|(n, _)| n == *name))
            .cloned()
            .collect()
    }

    fn node(&mut self, op_type: &str, inputs: Vec<String>, output: String, attribute: Vec<AttributeProto>) -> String {
        debug_assert!(self.values.insert(output.clone()), "value {output} defined twice");
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op_type.into(),
            attribute,
            ..Default::default()
        });
        output
    }

    /// `{module}.weight` as a bias-free convolution; the output is named `module`.
    pub fn conv(&mut self, x: &str, module: &str, c: Conv) -> Result<String> {
        let [cin, cout] = c.channels;
        let weight = self.param(format!("{module}.weight"), &[cout, cin / c.groups, c.kernel, c.kernel])?;
        let attrs = vec![
            ints("kernel_shape", &[c.kernel, c.kernel]),
            ints("strides", &[c.stride, c.stride]),
            ints("pads", &c.pads),
            ints("dilations", &[1, 1]),
            int("group", c.groups as i64),
        ];
        Ok(self.node("Conv", vec![x.into(), weight], module.into(), attrs))
    }

    /// Inference-mode BatchNorm with the PyTorch module's `weight`, `bias`, `running_mean` and
    /// `running_var`; the output is named `module`.
    pub fn batch_norm(&mut self, x: &str, module: &str, channels: usize, epsilon: f32) -> Result<String> {
        let mut inputs = vec![x.to_string()];
        for part in ["weight", "bias", "running_mean", "running_var"] {
            inputs.push(self.param(format!("{module}.{part}"), &[channels])?);
        }
        Ok(self.node("BatchNormalization", inputs, module.into(), vec![float("epsilon", epsilon)]))
    }

    /// `min(max(x, 0), 6)` as `Clip`, whose bounds are inputs since opset 11. The bounds are
    /// `Constant` nodes rather than initializers, so the initializers stay exactly the model's
    /// tensors.
    pub fn relu6(&mut self, x: &str) -> String {
        let [min, max] = match &self.relu6_bounds {
            Some(bounds) => bounds.clone(),
            None => {
                let bounds = ["relu6.min", "relu6.max"].map(String::from);
                for (name, value) in bounds.iter().zip([0.0f32, 6.0]) {
                    let t = AttributeProto {
                        name: Some("value".into()),
                        r#type: Some(attribute_type::TENSOR),
                        t: Some(float_tensor("", &[], &[value])),
                        ..Default::default()
                    };
                    self.node("Constant", vec![], name.clone(), vec![t]);
                }
                self.relu6_bounds = Some(bounds.clone());
                bounds
            }
        };
        self.node("Clip", vec![x.into(), min, max], format!("{x}.relu6"), vec![])
    }

    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", vec![x.into()], format!("{x}.relu"), vec![])
    }

    pub fn add(&mut self, a: &str, b: &str, output: String) -> String {
        self.node("Add", vec![a.into(), b.into()], output, vec![])
    }

    pub fn max_pool(&mut self, x: &str, output: String, kernel: usize, stride: usize, pads: [usize; 4]) -> String {
        let attrs = vec![ints("kernel_shape", &[kernel, kernel]), ints("strides", &[stride, stride]), ints("pads", &pads)];
        self.node("MaxPool", vec![x.into()], output, attrs)
    }

    pub fn global_avg_pool(&mut self, x: &str, output: String) -> String {
        self.node("GlobalAveragePool", vec![x.into()], output, vec![])
    }

    pub fn flatten(&mut self, x: &str, output: String) -> String {
        self.node("Flatten", vec![x.into()], output, vec![int("axis", 1)])
    }

    /// A PyTorch `Linear` (`weight` is `[out, in]`): `x · weightᵀ + bias`.
    pub fn gemm(&mut self, x: &str, module: &str, [fan_in, fan_out]: [usize; 2], output: String) -> Result<String> {
        let weight = self.param(format!("{module}.weight"), &[fan_out, fan_in])?;
        let bias = self.param(format!("{module}.bias"), &[fan_out])?;
        let attrs = vec![float("alpha", 1.0), float("beta", 1.0), int("transA", 0), int("transB", 1)];
        Ok(self.node("Gemm", vec![x.into(), weight, bias], output, attrs))
    }

    pub fn softmax(&mut self, x: &str, output: String) -> String {
        self.node("Softmax", vec![x.into()], output, vec![int("axis", 1)])
    }

    pub fn finish(self, name: String, inputs: Vec<ValueInfoProto>, outputs: Vec<ValueInfoProto>) -> GraphProto {
        GraphProto { node: self.nodes, name, initializer: self.initializers, input: inputs, output: outputs, ..Default::default() }
    }
}

/// A float32 graph input or output; `None` dimensions are symbolic, named by `symbol`.
pub(super) fn float_value(name: &str, dims: &[Option<usize>], symbol: &str) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(size) => dimension::Value::DimValue(*size as i64),
                None => dimension::Value::DimParam(symbol.into()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor { elem_type: data_type::FLOAT, shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), ..Default::default() }),
        ..Default::default()
    }
}

fn float_tensor(name: &str, shape: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: data_type::FLOAT,
        name: name.into(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(attribute_type::INT), i: Some(value), ..Default::default() }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(attribute_type::FLOAT), f: Some(value), ..Default::default() }
}
