//! One type for every supported backbone, so training, caching and export code is written once.

use burn::module::{Module, ParamGroup};
use burn::tensor::{Device, Tensor};

use super::efficientnet_lite::{EfficientNetLite, EfficientNetLiteConfig, EfficientNetLiteNames};
use super::kind::BackboneKind;
use super::mobilenet_v2::{MobileNetV2, MobileNetV2Config, MobileNetV2Names};
use super::resnet::{ResNet, ResNetConfig, ResNetNames};
use super::timm::timm_name;
use crate::error::Result;
use crate::weights::{NameMap, ParamLayout, TensorMap, collect_params, load_params};

/// A pretrained feature extractor. Module paths start with the variant name
/// (`EfficientNetLite.stem.conv.weight`); [`BackboneNames`] knows each variant's file names.
#[derive(Module, Debug)]
pub enum Backbone {
    EfficientNetLite(EfficientNetLite),
    MobileNetV2(MobileNetV2),
    ResNet(ResNet),
}

/// Calls `$body` with `$m` bound to the architecture inside any variant.
macro_rules! each {
    ($backbone:expr, $m:ident => $body:expr) => {
        match $backbone {
            Backbone::EfficientNetLite($m) => $body,
            Backbone::MobileNetV2($m) => $body,
            Backbone::ResNet($m) => $body,
        }
    };
}

impl Backbone {
    /// The architecture with freshly initialised weights.
    pub fn init(kind: BackboneKind, device: &Device) -> Self {
        match kind {
            BackboneKind::EfficientNetLite0 => Self::EfficientNetLite(EfficientNetLiteConfig::new().init(device)),
            BackboneKind::MobileNetV2 => Self::MobileNetV2(MobileNetV2Config::new().init(device)),
            BackboneKind::ResNet18 => Self::ResNet(ResNetConfig::new().with_depth(18).init(device)),
            BackboneKind::ResNet50 => Self::ResNet(ResNetConfig::new().with_depth(50).init(device)),
        }
    }

    /// The architecture with weights from `tensors`, named as in the original PyTorch
    /// definition (or timm's). Refuses a file that does not fit, naming the first tensor that differs.
    pub fn import(kind: BackboneKind, tensors: &TensorMap, device: &Device) -> Result<Self> {
        let names = BackboneNames { kind, convention: Convention::detect(kind, tensors) };
        load_params(Self::init(kind, device), tensors, &names)
    }

    /// Every tensor under its name in the original PyTorch definition (what
    /// [`import`](Self::import) reads back). Asynchronous because WebGPU reads are.
    pub async fn to_tensors(&self) -> Result<TensorMap> {
        collect_params(self, &BackboneNames::original(self.kind())).await
    }

    pub fn kind(&self) -> BackboneKind {
        match self {
            Self::EfficientNetLite(_) => BackboneKind::EfficientNetLite0,
            Self::MobileNetV2(_) => BackboneKind::MobileNetV2,
            // Bottleneck blocks (a third convolution) make it a ResNet-50.
            Self::ResNet(m) if m.layer1[0].conv3.is_some() => BackboneKind::ResNet50,
            Self::ResNet(_) => BackboneKind::ResNet18,
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        each!(self, m => m.stem.conv.weight.val().device())
    }

    /// Pooled features.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`, normalised as the kind's [`BackboneSpec`](super::BackboneSpec) says
    /// - output: `[batch, features]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        each!(self, m => m.forward(input))
    }

    /// The last convolution's activation maps, before global pooling: [`forward`](Self::forward)
    /// is their spatial mean. What Grad-CAM weighs.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`
    /// - output: `[batch, features, h/32, w/32]`
    pub fn feature_maps(&self, input: Tensor<4>) -> Tensor<4> {
        each!(self, m => m.feature_maps(input))
    }

    /// The frozen part before unit `first_tail_unit`; its output is what phase 2 caches.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`
    /// - output: `[batch, channels, h', w']`, the input of unit `first_tail_unit`
    pub fn forward_prefix(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<4> {
        each!(self, m => m.forward_prefix(input, first_tail_unit))
    }

    /// The units from `first_tail_unit` on, then global average pooling.
    ///
    /// # Shapes
    /// - input: the output of [`forward_prefix`](Self::forward_prefix) with the same `first_tail_unit`
    /// - output: `[batch, features]`
    pub fn forward_tail(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<2> {
        each!(self, m => m.forward_tail(input, first_tail_unit))
    }

    /// The parameters of the units from `first_tail_unit` on: what phase 2 trains.
    pub fn tail_group(&self, first_tail_unit: usize) -> ParamGroup {
        each!(self, m => m.tail_group(first_tail_unit))
    }

    /// A copy whose every convolution carries its BatchNorm folded in (weights scaled, a bias
    /// added) and skips BatchNorm: the same function as [`forward`](Self::forward) with BatchNorm
    /// on its running statistics, in fewer passes over each activation. For the frozen
    /// backbone's inference only (feature extraction, the phase-2 prefix): it is neither
    /// trained nor exported (the folded biases have no names in weight files), and the
    /// original stays the model that training and export use.
    pub fn fold_batch_norm(&self) -> Backbone {
        let mut folded = self.clone();
        for unit in each!(&mut folded, m => m.conv_bns_mut()) {
            *unit = unit.fold_batch_norm();
        }
        folded
    }
}

/// Which naming scheme a weights file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Convention {
    /// The original PyTorch definition's: lukemelas for EfficientNet-Lite0, torchvision otherwise.
    /// What webtune exports.
    #[default]
    Original,
    /// timm's (`tf_efficientnet_lite0`, `mobilenetv2_100`; its ResNets use torchvision's names).
    Timm,
}

impl Convention {
    /// timm files have a `conv_stem`, which neither lukemelas nor torchvision names so.
    pub fn detect(kind: BackboneKind, tensors: &TensorMap) -> Self {
        let timm = !matches!(kind, BackboneKind::ResNet18 | BackboneKind::ResNet50) && tensors.contains_key("conv_stem.weight");
        if timm { Self::Timm } else { Self::Original }
    }
}

/// File names of a backbone's parameters. Module paths are relative to the backbone and start
/// with the [`Backbone`] variant.
pub struct BackboneNames {
    pub kind: BackboneKind,
    pub convention: Convention,
}

impl BackboneNames {
    /// The names webtune exports use.
    pub fn original(kind: BackboneKind) -> Self {
        Self { kind, convention: Convention::Original }
    }

    pub fn file_name(&self, module_path: &str) -> Option<(String, ParamLayout)> {
        let (variant, rest) = module_path.split_once('.')?;
        let (name, layout) = match (self.kind, variant) {
            (BackboneKind::EfficientNetLite0, "EfficientNetLite") => EfficientNetLiteNames::file_name(rest),
            (BackboneKind::MobileNetV2, "MobileNetV2") => MobileNetV2Names::file_name(rest),
            (BackboneKind::ResNet18 | BackboneKind::ResNet50, "ResNet") => ResNetNames::file_name(rest),
            _ => None,
        }?;
        match self.convention {
            Convention::Original => Some((name, layout)),
            Convention::Timm => Some((timm_name(self.kind, &name)?, layout)),
        }
    }
}

/// The backbone alone, from a file that may also hold the ImageNet classifier, which is ignored.
impl NameMap for BackboneNames {
    fn file_name(&self, module_path: &str) -> Option<(String, ParamLayout)> {
        BackboneNames::file_name(self, module_path)
    }
    fn ignorable(&self, file_name: &str) -> bool {
        // The original classifier, or a webtune head (a `Sequential` under the same root);
        // timm calls its classifier `classifier` (or `fc` for ResNets).
        let root = self.kind.head_names(true).1;
        let root = root.rsplit_once('.').map_or(root.as_str(), |(r, _)| r);
        let root = match (self.convention, self.kind) {
            (Convention::Original, _) => root,
            (Convention::Timm, BackboneKind::ResNet18 | BackboneKind::ResNet50) => "fc",
            (Convention::Timm, _) => "classifier",
        };
        file_name.ends_with("num_batches_tracked") || file_name.strip_prefix(root).is_some_and(|r| r.starts_with('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_builds_and_reports_itself() {
        let device = Device::flex();
        for kind in BackboneKind::ALL {
            let backbone = Backbone::init(kind, &device);
            assert_eq!(backbone.kind(), kind);
            let out = backbone.forward_tail(backbone.forward_prefix(Tensor::zeros([1, 3, 32, 32], &device), 0), 0);
            assert_eq!(out.dims(), [1, kind.features()]);
        }
    }

    /// Random BatchNorm statistics and affine parameters in every unit, so that folding has
    /// something to fold (a fresh BatchNorm is the identity up to ε).
    fn randomise_batch_norms(backbone: &mut Backbone) {
        for unit in each!(backbone, m => m.conv_bns_mut()) {
            crate::model::cpu::tests::randomise_batch_norm(&mut unit.bn);
        }
    }

    #[test]
    fn folded_batch_norm_gives_the_same_features_on_every_backbone() {
        let device = Device::flex();
        device.seed(7);
        let input = Tensor::<4>::random([2, 3, 64, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        for kind in BackboneKind::ALL {
            let mut backbone = Backbone::init(kind, &device);
            randomise_batch_norms(&mut backbone);
            let folded = backbone.fold_batch_norm();
            let expected = backbone.forward(input.clone()).into_data().try_to_vec::<f32>().unwrap();
            let actual = folded.forward(input.clone()).into_data().try_to_vec::<f32>().unwrap();
            let scale = expected.iter().fold(1f32, |m, v| m.max(v.abs()));
            let worst = expected.iter().zip(&actual).map(|(e, a)| (e - a).abs()).fold(0f32, f32::max);
            eprintln!("{kind}: max |folded - unfolded| = {worst:e}, features up to {scale}");
            assert!(worst <= 1e-4 * scale, "{kind}: max |folded - unfolded| = {worst} (features up to {scale})");
            // And the prefix the phase-2 cache stores, at a split inside the network.
            let split = kind.units() - 2;
            let expected = backbone.forward_prefix(input.clone(), split).into_data().try_to_vec::<f32>().unwrap();
            let actual = folded.forward_prefix(input.clone(), split).into_data().try_to_vec::<f32>().unwrap();
            let scale = expected.iter().fold(1f32, |m, v| m.max(v.abs()));
            let worst = expected.iter().zip(&actual).map(|(e, a)| (e - a).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-4 * scale, "{kind}: prefix before unit {split}: max difference {worst} (values up to {scale})");
            let mut folded = folded;
            assert!(each!(&mut folded, m => m.conv_bns_mut().iter().all(|u| u.folded && u.conv.bias.is_some())), "{kind}");
        }
    }

    #[test]
    fn timm_files_are_recognised_by_their_stem() {
        let mut tensors = TensorMap::new();
        tensors.insert("conv_stem.weight".into(), crate::weights::TensorEntry::f32(vec![1], vec![0.0]));
        assert_eq!(Convention::detect(BackboneKind::MobileNetV2, &tensors), Convention::Timm);
        assert_eq!(Convention::detect(BackboneKind::ResNet18, &tensors), Convention::Original);
        let names = BackboneNames { kind: BackboneKind::MobileNetV2, convention: Convention::Timm };
        assert_eq!(names.file_name("MobileNetV2.stem.conv.weight").unwrap().0, "conv_stem.weight");
        assert!(names.ignorable("classifier.weight") && !names.ignorable("conv_head.weight"));
    }
}
