//! ResNets as defined by torchvision: `resnet18` and `resnet34` (basic blocks), `resnet50`,
//! `resnet101` and `resnet152` (bottleneck blocks, "v1.5": the stride sits on the 3×3
//! convolution).

use burn::config::Config;
use burn::module::{Module, ParamGroup};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::{Device, Tensor};

use super::blocks::{ConvBn, ConvBnSpec, Padding};
use crate::weights::ParamLayout;

/// Width of each stage's 3×3 convolutions; bottleneck blocks output 4× as many channels.
const STAGE_WIDTHS: [usize; 4] = [64, 128, 256, 512];
const BOTTLENECK_EXPANSION: usize = 4;
const STEM_CHANNELS: usize = 64;

#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// 18 or 34 (basic blocks), 50, 101 or 152 (bottleneck blocks), as torchvision's
    /// `resnet18` ... `resnet152`.
    #[config(default = 18)]
    pub depth: usize,
    /// BatchNorm epsilon: PyTorch's default, which torchvision's weights were trained with.
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
}

/// A basic block (two 3×3 convolutions) or a bottleneck block (1×1 reduce, 3×3, 1×1 expand),
/// with the identity or a projection (`downsample`) added before the last ReLU.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    pub conv1: ConvBn,
    pub conv2: ConvBn,
    /// The 1×1 expansion of a bottleneck block; absent in a basic block.
    pub conv3: Option<ConvBn>,
    /// 1×1 convolution with the block's stride, where the shortcut changes shape.
    pub downsample: Option<ConvBn>,
}

impl ResidualBlock {
    /// Every [`ConvBn`] of the block, the shortcut's last.
    pub(crate) fn conv_bns_mut(&mut self) -> impl Iterator<Item = &mut ConvBn> {
        [&mut self.conv1, &mut self.conv2].into_iter().chain(self.conv3.iter_mut()).chain(self.downsample.iter_mut())
    }

    /// # Shapes
    /// - input: `[batch, in_channels, h, w]`
    /// - output: `[batch, out_channels, h / stride, w / stride]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_with(input, ConvBn::forward)
    }

    /// [`forward`](Self::forward) for a block that trains: a bottleneck's 1×1 convolutions as
    /// matrix products (see [`ConvBn::forward_trainable`]).
    ///
    /// # Shapes
    /// - input: `[batch, in_channels, h, w]`
    /// - output: `[batch, out_channels, h / stride, w / stride]`
    pub fn forward_trainable(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_with(input, ConvBn::forward_trainable)
    }

    /// The block with `unit` computing the units that may be 1×1 (`conv1`, `conv3`, the
    /// shortcut's projection); `conv2` (3×3) always takes [`ConvBn::forward`].
    fn forward_with(&self, input: Tensor<4>, unit: fn(&ConvBn, Tensor<4>) -> Tensor<4>) -> Tensor<4> {
        let relu = burn::tensor::activation::relu;
        let shortcut = match &self.downsample {
            Some(downsample) => unit(downsample, input.clone()),
            None => input.clone(),
        };
        let x = relu(unit(&self.conv1, input));
        let x = match &self.conv3 {
            Some(conv3) => unit(conv3, self.conv2.forward_relu(x)),
            None => self.conv2.forward(x),
        };
        relu(x + shortcut)
    }
}

#[derive(Module, Debug)]
pub struct ResNet {
    /// `conv1` and `bn1`: 7×7 stride-2 convolution to 64 channels.
    pub stem: ConvBn,
    /// 3×3 stride-2 max pooling after the stem.
    pub pool: MaxPool2d,
    pub layer1: Vec<ResidualBlock>,
    pub layer2: Vec<ResidualBlock>,
    pub layer3: Vec<ResidualBlock>,
    pub layer4: Vec<ResidualBlock>,
}

impl ResNetConfig {
    /// # Panics
    /// On a depth torchvision does not define.
    pub fn init(&self, device: &Device) -> ResNet {
        let (bottleneck, repeats) = match self.depth {
            18 => (false, [2, 2, 2, 2]),
            34 => (false, [3, 4, 6, 3]),
            50 => (true, [3, 4, 6, 3]),
            101 => (true, [3, 4, 23, 3]),
            152 => (true, [3, 8, 36, 3]),
            depth => panic!("no ResNet of depth {depth} (18, 34, 50, 101 or 152)"),
        };
        let eps = self.bn_epsilon;
        let spec = |channels, kernel, stride| ConvBnSpec {
            channels,
            kernel,
            stride,
            groups: 1,
            padding: Padding::Symmetric,
            bn_epsilon: eps,
        };
        let stem = spec([3, STEM_CHANNELS], 7, 2).init(device);
        let pool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let mut in_ch = STEM_CHANNELS;
        let mut stages = STAGE_WIDTHS.iter().zip(repeats).enumerate().map(|(stage, (&width, repeats))| {
            let out_ch = if bottleneck { width * BOTTLENECK_EXPANSION } else { width };
            (0..repeats)
                .map(|r| {
                    let stride = if r == 0 && stage > 0 { 2 } else { 1 };
                    let block = if bottleneck {
                        ResidualBlock {
                            conv1: spec([in_ch, width], 1, 1).init(device),
                            conv2: spec([width, width], 3, stride).init(device),
                            conv3: Some(spec([width, out_ch], 1, 1).init(device)),
                            downsample: None,
                        }
                    } else {
                        ResidualBlock {
                            conv1: spec([in_ch, width], 3, stride).init(device),
                            conv2: spec([width, width], 3, 1).init(device),
                            conv3: None,
                            downsample: None,
                        }
                    };
                    let downsample = (stride != 1 || in_ch != out_ch).then(|| spec([in_ch, out_ch], 1, stride).init(device));
                    in_ch = out_ch;
                    ResidualBlock { downsample, ..block }
                })
                .collect::<Vec<_>>()
        });
        let mut next = || stages.next().unwrap();
        let (layer1, layer2, layer3, layer4) = (next(), next(), next(), next());
        ResNet { stem, pool, layer1, layer2, layer3, layer4 }
    }
}

impl ResNet {
    /// Units that can be unfrozen one by one from the end: the stages `layer1` to `layer4`.
    /// Unit `k` is `layer{k+1}`, so unfreezing one unit trains `layer4`.
    pub const UNITS: usize = 4;

    /// Width of the pooled features: 512 with basic blocks, 2048 with bottleneck blocks.
    pub fn features(&self) -> usize {
        let last = self.layer4.last().expect("layer4 has blocks");
        match &last.conv3 {
            Some(conv3) => conv3.bn.gamma.dims()[0],
            None => last.conv2.bn.gamma.dims()[0],
        }
    }

    /// The four stages, in order.
    pub fn stages(&self) -> [&[ResidualBlock]; 4] {
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
    }

    /// Every [`ConvBn`] of the network, the stem's first.
    pub(crate) fn conv_bns_mut(&mut self) -> Vec<&mut ConvBn> {
        let mut units = vec![&mut self.stem];
        for stage in [&mut self.layer1, &mut self.layer2, &mut self.layer3, &mut self.layer4] {
            units.extend(stage.iter_mut().flat_map(ResidualBlock::conv_bns_mut));
        }
        units
    }

    /// Pooled features.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`, normalised with the ImageNet mean and std
    /// - output: `[batch, 512]` (ResNet-18/34) or `[batch, 2048]` (ResNet-50/101/152)
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        self.forward_tail(self.forward_prefix(input, Self::UNITS - 1), Self::UNITS - 1)
    }

    /// The stem, the max pooling and the stages before `first_tail_unit` (0..=4): the part that
    /// stays frozen when the last `4 - first_tail_unit` stages are fine-tuned. Its output is
    /// what phase 2 caches.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`
    /// - output: `[batch, channels, h', w']`, the input of `layer{first_tail_unit + 1}`
    pub fn forward_prefix(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<4> {
        let x = self.stem.forward_relu(input); // [batch, 64, h/2, w/2]
        let mut x = self.pool.forward(x); // [batch, 64, h/4, w/4]
        for block in self.stages().into_iter().take(first_tail_unit).flatten() {
            x = block.forward(x);
        }
        x
    }

    /// The stages from `first_tail_unit` on, then global average pooling.
    /// `forward_tail(forward_prefix(x, k), k) == forward(x)` for every `k`.
    ///
    /// # Shapes
    /// - input: the output of [`forward_prefix`](Self::forward_prefix) with the same `first_tail_unit`
    /// - output: `[batch, features]`
    pub fn forward_tail(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<2> {
        let x = self.forward_tail_maps(input, first_tail_unit);
        let [batch, channels, _, _] = x.dims(); // [batch, features, h/32, w/32]
        x.mean_dim(3).mean_dim(2).reshape([batch, channels])
    }

    /// [`forward_tail`](Self::forward_tail) without the pooling: the last residual block's
    /// output (what Grad-CAM weighs).
    ///
    /// # Shapes
    /// - output: `[batch, features, h/32, w/32]`
    pub fn forward_tail_maps(&self, input: Tensor<4>, first_tail_unit: usize) -> Tensor<4> {
        let mut x = input;
        for block in self.stages().into_iter().skip(first_tail_unit).flatten() {
            x = block.forward_trainable(x);
        }
        x
    }

    /// The last stage's activation maps, before global pooling.
    ///
    /// # Shapes
    /// - input: `[batch, 3, height, width]`
    /// - output: `[batch, features, h/32, w/32]`
    pub fn feature_maps(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_tail_maps(self.forward_prefix(input, Self::UNITS - 1), Self::UNITS - 1)
    }

    /// The parameters of the stages from `first_tail_unit` on: what phase 2 trains when the
    /// last `4 - first_tail_unit` stages are unfrozen (none from 4 on).
    pub fn tail_group(&self, first_tail_unit: usize) -> ParamGroup {
        let blocks: Vec<ResidualBlock> =
            self.stages().into_iter().skip(first_tail_unit).flatten().cloned().collect();
        ParamGroup::ids_from_module(blocks)
    }
}

/// Names in torchvision's ResNets (`conv1.weight`, `layer2.0.bn1.running_mean`,
/// `layer2.0.downsample.1.weight`, ...), which timm's `resnet18`/`resnet50` share. Module paths
/// are relative to the backbone.
pub struct ResNetNames;

impl ResNetNames {
    pub fn file_name(module_path: &str) -> Option<(String, ParamLayout)> {
        let (module, param) = module_path.rsplit_once('.')?;
        let (module, kind) = module.rsplit_once('.')?;
        let torch_param = ConvBn::torch_param(kind, param)?;
        let torch_module = match (module, kind) {
            ("stem", "conv") => "conv1".to_string(),
            ("stem", "bn") => "bn1".to_string(),
            (block, kind) => {
                let (stage, rest) = block.split_once('.')?;
                let (index, part) = rest.split_once('.')?;
                if !matches!(stage, "layer1" | "layer2" | "layer3" | "layer4") || index.parse::<usize>().is_err() {
                    return None;
                }
                let name = match (part, kind) {
                    ("conv1" | "conv2" | "conv3", "conv") => part.to_string(),
                    ("conv1" | "conv2" | "conv3", "bn") => format!("bn{}", &part[4..]),
                    ("downsample", "conv") => "downsample.0".to_string(),
                    ("downsample", "bn") => "downsample.1".to_string(),
                    _ => return None,
                };
                format!("{stage}.{index}.{name}")
            }
        };
        Some((format!("{torch_module}.{torch_param}"), ParamLayout::AsIs))
    }
}


#[cfg(test)]
mod tests {
    use super::super::blocks::testing::{param_paths, params_in_group};
    use super::*;

    fn resnet(depth: usize) -> ResNet {
        ResNetConfig::new().with_depth(depth).init(&Device::flex())
    }

    #[test]
    fn architectures_have_the_published_parameter_counts() {
        // torchvision's published totals count learnable parameters including the 1000-class
        // `fc`; burn also counts each BatchNorm's running mean and variance, two values per BN
        // channel. ResNet-18: 11,689,512 with fc 512·1000+1000; 4,800 BN channels (stem 64,
        // 2·64 + 2·2·128 + 2·2·256 + 2·2·512 in the blocks, 128 + 256 + 512 in the downsamples).
        let r18 = resnet(18);
        assert_eq!(r18.num_params(), 11_689_512 - 513_000 + 2 * 4_800);
        // ResNet-50: 25,557,032 with fc 2048·1000+1000; 26,560 BN channels (stem 64, each
        // bottleneck w + w + 4w, downsamples 256 + 512 + 1024 + 2048).
        let r50 = resnet(50);
        assert_eq!(r50.num_params(), 25_557_032 - 2_049_000 + 2 * 26_560);
        let lens = |m: &ResNet| m.stages().map(<[_]>::len);
        assert_eq!(lens(&r18), [2, 2, 2, 2]);
        assert_eq!(lens(&r50), [3, 4, 6, 3]);
        // Every stage of ResNet-50 starts with a projection (layer1's widens 64 → 256); in
        // ResNet-18 layer1 keeps its shape.
        let downsampled = |m: &ResNet| m.stages().map(|s| s.iter().filter(|b| b.downsample.is_some()).count());
        assert_eq!(downsampled(&r18), [0, 1, 1, 1]);
        assert_eq!(downsampled(&r50), [1, 1, 1, 1]);
        // v1.5: the stride is on the 3×3 convolution.
        assert_eq!(r50.layer2[0].conv1.conv.stride, [1, 1]);
        assert_eq!(r50.layer2[0].conv2.conv.stride, [2, 2]);
    }

    #[test]
    fn forward_shape_follows_input_size() {
        let device = Device::flex();
        for (depth, features) in [(18, 512), (50, 2048)] {
            let model = resnet(depth);
            assert_eq!(model.features(), features);
            let out = model.forward(Tensor::zeros([2, 3, 64, 64], &device));
            assert_eq!(out.dims(), [2, features]);
        }
        // Stem and max pooling each halve the size, rounding up as PyTorch's do for odd sizes.
        let r18 = resnet(18);
        assert_eq!(r18.forward_prefix(Tensor::zeros([1, 3, 65, 65], &device), 0).dims(), [1, 64, 17, 17]);
        assert_eq!(r18.forward_prefix(Tensor::zeros([1, 3, 64, 64], &device), 3).dims(), [1, 256, 4, 4]);
    }

    #[test]
    fn prefix_then_tail_is_the_whole_forward_at_every_split() {
        let device = Device::flex();
        device.seed(3);
        let input = Tensor::<4>::random([1, 3, 64, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        for depth in [18, 50] {
            let model = resnet(depth);
            let whole = model.forward(input.clone()).into_data();
            for split in 0..=ResNet::UNITS {
                let parts = model.forward_tail(model.forward_prefix(input.clone(), split), split).into_data();
                assert_eq!(parts, whole, "resnet{depth} split at unit {split}");
            }
        }
    }

    #[test]
    fn tail_group_holds_exactly_the_stages_from_the_split_on() {
        let model = resnet(18);
        let in_group = |k| params_in_group(&model, &model.tail_group(k));
        let size = |k| -> usize { in_group(k).iter().map(|(_, n)| n).sum() };
        assert!(in_group(3).iter().all(|(p, _)| p.starts_with("layer4.")));
        assert_eq!(size(3), model.layer4.num_params());
        assert_eq!(size(2), model.layer3.num_params() + model.layer4.num_params());
        assert_eq!(size(0), model.num_params() - model.stem.num_params());
        assert_eq!(size(4), 0);
    }

    #[test]
    fn names_follow_torchvision() {
        let name = |p| ResNetNames::file_name(p).map(|(n, _)| n);
        assert_eq!(name("stem.conv.weight").as_deref(), Some("conv1.weight"));
        assert_eq!(name("stem.bn.running_var").as_deref(), Some("bn1.running_var"));
        assert_eq!(name("layer1.0.conv1.conv.weight").as_deref(), Some("layer1.0.conv1.weight"));
        assert_eq!(name("layer1.1.conv2.bn.gamma").as_deref(), Some("layer1.1.bn2.weight"));
        assert_eq!(name("layer3.5.conv3.bn.beta").as_deref(), Some("layer3.5.bn3.bias"));
        assert_eq!(name("layer2.0.downsample.conv.weight").as_deref(), Some("layer2.0.downsample.0.weight"));
        assert_eq!(name("layer2.0.downsample.bn.gamma").as_deref(), Some("layer2.0.downsample.1.weight"));
        assert_eq!(name("layer4.1.downsample.bn.running_mean").as_deref(), Some("layer4.1.downsample.1.running_mean"));
        assert_eq!(name("pool.stride"), None);
        assert_eq!(name("layer5.0.conv1.conv.weight"), None);
        let loading = super::super::BackboneNames::original(crate::model::BackboneKind::ResNet18);
        assert!(crate::weights::NameMap::ignorable(&loading, "fc.weight"));
        assert!(crate::weights::NameMap::ignorable(&loading, "layer1.0.bn1.num_batches_tracked"));
        assert!(!crate::weights::NameMap::ignorable(&loading, "layer1.0.bn1.weight"));
    }

    #[test]
    fn every_parameter_has_its_own_file_name() {
        // torchvision's state dicts without fc and num_batches_tracked: ResNet-18 has 20 convs
        // and 20 BNs, ResNet-50 53 of each.
        for (depth, convs) in [(18, 20), (50, 53)] {
            let model = resnet(depth);
            let mut names: Vec<_> = param_paths(&model).iter().map(|p| ResNetNames::file_name(p).unwrap().0).collect();
            assert_eq!(names.len(), convs * 5, "resnet{depth}");
            names.sort();
            names.dedup();
            assert_eq!(names.len(), convs * 5, "resnet{depth}");
        }
    }
}
