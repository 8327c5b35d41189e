//! One type for every supported backbone, so training, caching and export code is written once.

use burn::module::{Module, ParamGroup};
use burn::tensor::{Device, Tensor};

use super::efficientnet_lite::{EfficientNetLite, EfficientNetLiteConfig, EfficientNetLiteNames};
use super::kind::BackboneKind;
use crate::error::Result;
use crate::weights::{NameMap, ParamLayout, TensorMap, load_params};

/// A pretrained feature extractor. Module paths start with the variant name
/// (`EfficientNetLite.stem.conv.weight`); [`BackboneNames`] knows each variant's file names.
#[derive(Module, Debug)]
pub enum Backbone {
    EfficientNetLite(EfficientNetLite),
}

impl Backbone {
    /// The architecture with freshly initialised weights.
    pub fn init(kind: BackboneKind, device: &Device) -> Self {
        match kind {
            BackboneKind::EfficientNetLite0 => Self::EfficientNetLite(EfficientNetLiteConfig::new().init(device)),
            other => unimplemented!("{other}"),
        }
    }

    /// The architecture with weights from `tensors`, named as in the original PyTorch
    /// definition (or timm's). Refuses a file that does not fit, naming the first tensor that differs.
    pub fn import(kind: BackboneKind, tensors: &TensorMap, device: &Device) -> Result<Self> {
        load_params(Self::init(kind, device), tensors, &BackboneNames { kind })
    }

    pub fn kind(&self) -> BackboneKind {
        match self {
            Self::EfficientNetLite(_) => BackboneKind::EfficientNetLite0,
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        match self {
            Self::EfficientNetLite(m) => m.stem.conv.weight.val().device(),
        }
    }

    /// Pooled features.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`, normalised as the kind's [`BackboneSpec`](super::BackboneSpec) says
    /// - output: `[batch, features]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        match self {
            Self::EfficientNetLite(m) => m.forward(input),
        }
    }

    /// The frozen part before unit `first_tail_unit`; its output is what phase 2 caches.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`
    /// - output: `[batch, channels, h', w']`, the input of unit `first_tail_unit`
    pub fn forward_prefix(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<4> {
        match self {
            Self::EfficientNetLite(m) => m.forward_prefix(input, first_tail_unit),
        }
    }

    /// The units from `first_tail_unit` on, then global average pooling.
    ///
    /// # Shapes
    /// - input: the output of [`forward_prefix`](Self::forward_prefix) with the same `first_tail_unit`
    /// - output: `[batch, features]`
    pub fn forward_tail(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<2> {
        match self {
            Self::EfficientNetLite(m) => m.forward_tail(input, first_tail_unit),
        }
    }

    /// The parameters of the units from `first_tail_unit` on: what phase 2 trains.
    pub fn tail_group(&self, first_tail_unit: usize) -> ParamGroup {
        match self {
            Self::EfficientNetLite(m) => {
                let blocks: Vec<_> = m.blocks[first_tail_unit.min(m.blocks.len())..].to_vec();
                ParamGroup::ids_from_module(blocks).fuse(&ParamGroup::ids_from_module(m.top.clone()))
            }
        }
    }
}

/// File names of a backbone's parameters in the original PyTorch definition. Module paths are
/// relative to the backbone and start with the [`Backbone`] variant.
pub struct BackboneNames {
    pub kind: BackboneKind,
}

impl BackboneNames {
    pub fn file_name(&self, module_path: &str) -> Option<(String, ParamLayout)> {
        let (variant, rest) = module_path.split_once('.')?;
        match (self.kind, variant) {
            (BackboneKind::EfficientNetLite0, "EfficientNetLite") => EfficientNetLiteNames::file_name(rest),
            _ => None,
        }
    }
}

/// The backbone alone, from a file that may also hold the ImageNet classifier, which is ignored.
impl NameMap for BackboneNames {
    fn file_name(&self, module_path: &str) -> Option<(String, ParamLayout)> {
        BackboneNames::file_name(self, module_path)
    }
    fn ignorable(&self, file_name: &str) -> bool {
        // The original classifier, or a webtune head (a `Sequential` under the same root).
        let root = self.kind.head_names(true).1;
        let root = root.rsplit_once('.').map_or(root.as_str(), |(r, _)| r);
        file_name.ends_with("num_batches_tracked") || file_name.strip_prefix(root).is_some_and(|r| r.starts_with('.'))
    }
}
