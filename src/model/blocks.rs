//! Building blocks shared by the convolutional backbones.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};

/// Convolution without bias followed by BatchNorm: the unit every backbone here is made of.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    /// BatchNorm is already folded into `conv` (which then has a bias) and is skipped; see
    /// [`fold_batch_norm`](Self::fold_batch_norm). False for every unit a spec builds.
    pub folded: bool,
}

impl ConvBn {
    /// The PyTorch name of one of this unit's parameters, given the field (`conv` or `bn`) and
    /// burn's parameter name: `weight` for both the conv and BN's gamma, as `nn.Conv2d` and
    /// `nn.BatchNorm2d` call them. `None` for anything else.
    pub(crate) fn torch_param(kind: &str, param: &str) -> Option<&'static str> {
        Some(match (kind, param) {
            ("conv", "weight") => "weight",
            ("bn", "gamma") => "weight",
            ("bn", "beta") => "bias",
            ("bn", "running_mean") => "running_mean",
            ("bn", "running_var") => "running_var",
            _ => return None,
        })
    }
}

/// Where a convolution's zero padding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// TensorFlow's "SAME" (burn's `Same`): for stride 2 the extra pixel goes bottom/right,
    /// which is what the EfficientNet-Lite weights were trained with.
    TfSame,
    /// PyTorch's `padding = (kernel - 1) / 2` on every side, as torchvision's models use.
    Symmetric,
}

/// How to build a [`ConvBn`].
pub struct ConvBnSpec {
    pub channels: [usize; 2],
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    pub padding: Padding,
    pub bn_epsilon: f64,
}

impl ConvBnSpec {
    pub fn init(&self, device: &Device) -> ConvBn {
        let padding = match self.padding {
            Padding::TfSame => PaddingConfig2d::Same,
            Padding::Symmetric => {
                let p = (self.kernel - 1) / 2;
                PaddingConfig2d::Explicit(p, p, p, p)
            }
        };
        let conv = Conv2dConfig::new(self.channels, [self.kernel, self.kernel])
            .with_stride([self.stride, self.stride])
            .with_groups(self.groups)
            .with_padding(padding)
            .with_bias(false)
            .init(device);
        let bn = BatchNormConfig::new(self.channels[1]).with_epsilon(self.bn_epsilon).init(device);
        ConvBn { conv, bn, folded: false }
    }
}

impl ConvBn {
    /// # Shapes
    /// - input: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_clamped(input, None)
    }

    /// The convolution, BatchNorm, and a clamp to `[0, max]` if `max` is given, the last two as
    /// one pass on the CPU backend ([`super::batch_norm`]).
    fn forward_clamped(&self, input: Tensor<4>, max: Option<f32>) -> Tensor<4> {
        let x = super::conv2d(&self.conv, input);
        match (self.folded, max) {
            (false, max) => super::batch_norm(&self.bn, x, max),
            (true, Some(max)) => x.clamp(0.0, max),
            (true, None) => x,
        }
    }

    /// The same unit with BatchNorm in inference mode folded into the convolution:
    /// `w' = w · γ/√(σ² + ε)` per output channel and `b' = β − μ · γ/√(σ² + ε)` (plus the scaled
    /// conv bias, if any). Exact for BatchNorm on running statistics, which is how a frozen
    /// backbone runs; it saves BN's four elementwise passes over every activation (burn-flex has
    /// no fused batch norm). For inference only: the folded conv's bias has no name in the weight
    /// files, and training it would not be training BatchNorm.
    pub fn fold_batch_norm(&self) -> ConvBn {
        if self.folded {
            return self.clone();
        }
        let bn = &self.bn;
        let device = self.conv.weight.val().device();
        let scale = bn.gamma.val().to_device(&device) / (bn.running_var.value().to_device(&device) + bn.epsilon).sqrt(); // [out]
        let shift = bn.beta.val().to_device(&device) - bn.running_mean.value().to_device(&device) * scale.clone();
        let bias = match &self.conv.bias {
            Some(bias) => bias.val() * scale.clone() + shift,
            None => shift,
        };
        let [out] = scale.dims();
        let mut conv = self.conv.clone();
        conv.weight = Param::from_tensor(self.conv.weight.val() * scale.reshape([out, 1, 1, 1]));
        conv.bias = Some(Param::from_tensor(bias));
        ConvBn { conv, bn: self.bn.clone(), folded: true }
    }

    /// [`forward`](Self::forward) followed by ReLU6, the activation of the Lite and MobileNet families.
    pub fn forward_relu6(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_clamped(input, Some(6.0))
    }

    /// [`forward`](Self::forward) for a unit that trains, written as matrix products where
    /// burn's generic convolution backward is slow on the CPU backend. The same function; what
    /// changes is its backward:
    /// - a pointwise convolution (1×1, stride 1, one group) becomes one matrix product over every
    ///   pixel of the batch. burn computes a convolution's weight gradient as a convolution with
    ///   batch and channels swapped, which burn-flex runs as one matrix–vector product per input
    ///   channel; the product's backward is two large matrix products.
    /// - a depthwise convolution (one group per channel, stride 1) whose map has at most twice
    ///   as many pixels as its kernel has taps ([`depthwise_as_matmul_pays`]: the 5×5 kernels on
    ///   the last blocks' 7×7 maps) becomes, per channel, a product with the `pixels × pixels`
    ///   matrix its kernel spans (see [`depthwise_as_matmul`]). burn's backward for grouped
    ///   convolutions loops over the groups (weights) and runs one tiny matrix product per
    ///   picture and group (input); the products' backward is batched matrix products. The
    ///   products do `pixels / taps` times the convolution's multiply-adds, which stops paying
    ///   beyond about 2 (a 3×3 kernel on 7×7 is slower this way).
    ///
    /// Pointwise: about 3×, depthwise 5×5: about 1.7× faster forward and backward for the shapes
    /// of phase 2's tail on the CPU backend (README, Speed). Other convolutions keep
    /// [`forward`](Self::forward).
    ///
    /// # Shapes
    /// - input: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
    pub fn forward_trainable(&self, input: Tensor<4>) -> Tensor<4> {
        let [out, inp, kh, kw] = self.conv.weight.dims();
        let [batch, channels, height, width] = input.dims();
        let plain = self.conv.stride == [1, 1] && self.conv.dilation == [1, 1];
        let x = if plain && [kh, kw] == [1, 1] && self.conv.groups == 1 {
            let pixels = input.permute([0, 2, 3, 1]).reshape([batch * height * width, inp]);
            let x = pixels.matmul(self.conv.weight.val().reshape([out, inp]).transpose());
            x.reshape([batch, height, width, out]).permute([0, 3, 1, 2])
        } else if plain && inp == 1 && self.conv.groups == channels && out == channels && depthwise_as_matmul_pays([height, width], [kh, kw]) {
            let padding = conv_padding(&self.conv.padding, [height, width], [kh, kw], [1, 1]);
            depthwise_as_matmul(input, self.conv.weight.val(), padding)
        } else {
            return self.forward(input);
        };
        let x = match &self.conv.bias {
            Some(bias) => x + bias.val().reshape([1, out, 1, 1]),
            None => x,
        };
        if self.folded { x } else { super::batch_norm(&self.bn, x, None) }
    }

    /// [`forward`](Self::forward) followed by ReLU, the activation of ResNets.
    pub fn forward_relu(&self, input: Tensor<4>) -> Tensor<4> {
        burn::tensor::activation::relu(self.forward(input))
    }
}

pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp(0.0, 6.0)
}

/// Whether [`ConvBn::forward_trainable`] runs a depthwise convolution on a `map` with a
/// `kernel` as matrix products: when the map has at most twice as many pixels as the kernel
/// has taps. Forward and backward with BatchNorm at batch 16, 1 152 channels on 7×7, load ~1.3
/// (`cargo test --lib depthwise_timing -- --ignored --nocapture`): 5×5 167–172 → 88–104 ms,
/// 3×3 72 → 73–91 ms (no gain).
/// It also bounds the per-channel matrices (`pixels²` values each) to small maps.
pub fn depthwise_as_matmul_pays([height, width]: [usize; 2], [kh, kw]: [usize; 2]) -> bool {
    height * width <= 2 * kh * kw
}

/// `[top, left, bottom, right]` zero padding of a convolution with `kernel` and `stride` on an
/// `input` map, as burn's `Conv2d` computes it: `Same` puts the odd pixel bottom/right, as
/// TensorFlow's "SAME" does.
pub(crate) fn conv_padding(config: &PaddingConfig2d, input: [usize; 2], kernel: [usize; 2], stride: [usize; 2]) -> [usize; 4] {
    let same = |i: usize| {
        let total = match input[i].div_ceil(stride[i]) {
            0 => 0,
            out => ((out - 1) * stride[i] + kernel[i]).saturating_sub(input[i]),
        };
        (total / 2, total - total / 2)
    };
    match config {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Same => {
            let ((top, bottom), (left, right)) = (same(0), same(1));
            [top, left, bottom, right]
        }
        PaddingConfig2d::Explicit(top, left, bottom, right) => [*top, *left, *bottom, *right],
    }
}

/// A stride-1 depthwise convolution as one batched matrix product: each channel's kernel is
/// spread into the `out_pixels × in_pixels` matrix `M_c = Σ_ij w[c, i, j] · S_ij`, where the
/// constant 0/1 matrix `S_ij` takes each output pixel to the input pixel under kernel tap
/// `(i, j)` (no entry where that tap falls on the zero padding), and `y_c = x_c · M_cᵀ` for
/// all pictures at once. Exact up to float rounding.
///
/// # Shapes
/// - input: `[batch, channels, height, width]`
/// - weight: `[channels, 1, kh, kw]`
/// - output: `[batch, channels, height + top + bottom - kh + 1, width + left + right - kw + 1]`
pub fn depthwise_as_matmul(input: Tensor<4>, weight: Tensor<4>, [top, left, bottom, right]: [usize; 4]) -> Tensor<4> {
    let [batch, channels, height, width] = input.dims();
    let [_, _, kh, kw] = weight.dims();
    let (out_h, out_w) = (height + top + bottom + 1 - kh, width + left + right + 1 - kw);
    let (inp, out) = (height * width, out_h * out_w);
    let mut taps = vec![0.0f32; kh * kw * out * inp];
    for (i, j) in (0..kh).flat_map(|i| (0..kw).map(move |j| (i, j))) {
        for (oy, ox) in (0..out_h).flat_map(|y| (0..out_w).map(move |x| (y, x))) {
            let (iy, ix) = ((oy + i).checked_sub(top), (ox + j).checked_sub(left));
            if let (Some(iy), Some(ix)) = (iy, ix)
                && iy < height
                && ix < width
            {
                taps[((i * kw + j) * out + oy * out_w + ox) * inp + iy * width + ix] = 1.0;
            }
        }
    }
    let device = input.device();
    let taps = Tensor::<2>::from_data(TensorData::new(taps, [kh * kw, out * inp]), &device);
    let matrices = weight.reshape([channels, kh * kw]).matmul(taps).reshape([channels, out, inp]);
    let x = input.reshape([batch, channels, inp]).swap_dims(0, 1); // [channels, batch, in pixels]
    let y = x.matmul(matrices.swap_dims(1, 2)); // [channels, batch, out pixels]
    y.swap_dims(0, 1).reshape([batch, channels, out_h, out_w])
}

/// Inverted residual block (MobileNetV2's, and EfficientNet-Lite's MBConv): 1×1 expand →
/// depthwise k×k → 1×1 project, residual when shapes allow.
#[derive(Module, Debug)]
pub struct MbConv {
    /// Absent when the expand ratio is 1 (the first block).
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub project: ConvBn,
    pub residual: bool,
}

/// How to build an [`MbConv`].
pub struct MbConvSpec {
    pub channels: [usize; 2],
    pub kernel: usize,
    pub stride: usize,
    pub expand_ratio: usize,
    pub padding: Padding,
    pub bn_epsilon: f64,
}

impl MbConvSpec {
    pub fn init(&self, device: &Device) -> MbConv {
        let [in_ch, out_ch] = self.channels;
        let mid = in_ch * self.expand_ratio;
        let spec = |channels, kernel, stride, groups| ConvBnSpec {
            channels,
            kernel,
            stride,
            groups,
            padding: self.padding,
            bn_epsilon: self.bn_epsilon,
        };
        MbConv {
            expand: (self.expand_ratio != 1).then(|| spec([in_ch, mid], 1, 1, 1).init(device)),
            depthwise: spec([mid, mid], self.kernel, self.stride, mid).init(device),
            project: spec([mid, out_ch], 1, 1, 1).init(device),
            residual: self.stride == 1 && in_ch == out_ch,
        }
    }
}

impl MbConv {
    /// Every [`ConvBn`] of the block, in forward order.
    pub(crate) fn conv_bns_mut(&mut self) -> impl Iterator<Item = &mut ConvBn> {
        self.expand.iter_mut().chain([&mut self.depthwise, &mut self.project])
    }

    /// # Shapes
    /// - input: `[batch, in_channels, h, w]`
    /// - output: `[batch, out_channels, h / stride, w / stride]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_with(input, ConvBn::forward)
    }

    /// [`forward`](Self::forward) for a block that trains (see [`ConvBn::forward_trainable`]).
    ///
    /// # Shapes
    /// - input: `[batch, in_channels, h, w]`
    /// - output: `[batch, out_channels, h / stride, w / stride]`
    pub fn forward_trainable(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_with(input, ConvBn::forward_trainable)
    }

    /// The block with `pointwise` computing its 1×1 units (expand, project); the depthwise
    /// convolution always takes [`ConvBn::forward`].
    fn forward_with(&self, input: Tensor<4>, pointwise: fn(&ConvBn, Tensor<4>) -> Tensor<4>) -> Tensor<4> {
        let x = match &self.expand {
            Some(expand) => relu6(pointwise(expand, input.clone())),
            None => input.clone(),
        };
        let x = self.depthwise.forward_relu6(x);
        let x = pointwise(&self.project, x); // linear bottleneck: no activation
        if self.residual { x + input } else { x }
    }
}

/// Test helpers shared by the backbones' unit tests.
#[cfg(test)]
pub mod testing {
    use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
    use burn::tensor::Tensor;

    /// `(module path, element count)` of every float parameter in `module` that `group` holds.
    pub fn params_in_group<M: Module>(module: &M, group: &ParamGroup) -> Vec<(String, usize)> {
        struct Visitor<'a> {
            group: &'a ParamGroup,
            path: Vec<String>,
            found: Vec<(String, usize)>,
        }
        impl ModuleVisitor for Visitor<'_> {
            fn enter_module(&mut self, name: &str, _container_type: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _name: &str, _container_type: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if self.group.matches(&param.id, None) {
                    self.found.push((self.path.join("."), param.shape().num_elements()));
                }
            }
        }
        let mut visitor = Visitor { group, path: Vec::new(), found: Vec::new() };
        module.visit(&mut visitor);
        visitor.found
    }

    /// Module paths of every float parameter in `module`.
    pub fn param_paths<M: Module>(module: &M) -> Vec<String> {
        params_in_group(module, &ParamGroup::all()).into_iter().map(|(path, _)| path).collect()
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::tensor::{Device, Distribution, Tensor};

    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;

    use super::{ConvBnSpec, MbConvSpec, Padding, depthwise_as_matmul, depthwise_as_matmul_pays};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// The trainable path of a block (pointwise and depthwise convolutions as matrix products)
    /// computes the same outputs and the same weight and input gradients as the convolutions,
    /// for 3×3 and 5×5 kernels with either padding, BatchNorm folded or not.
    #[test]
    fn trainable_forward_matches_the_convolutions() {
        let device = Device::flex().autodiff();
        device.seed(3);
        for (kernel, padding) in [(3, Padding::TfSame), (5, Padding::TfSame), (5, Padding::Symmetric)] {
            let spec = MbConvSpec { channels: [8, 8], kernel, stride: 1, expand_ratio: 4, padding, bn_epsilon: 1e-3 };
            let block = spec.init(&device);
            let x = Tensor::<4>::random([3, 8, 5, 6], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let (plain, trainable) = (block.forward(x.clone()), block.forward_trainable(x.clone()));
            assert!(max_diff(plain.clone(), trainable.clone()) < 1e-5, "k{kernel}");

            let (g_plain, g_trainable) = (plain.powi_scalar(2).sum().backward(), trainable.powi_scalar(2).sum().backward());
            let expand = &block.expand.as_ref().unwrap().conv.weight;
            for weight in [expand, &block.depthwise.conv.weight, &block.project.conv.weight] {
                let (a, b) = (weight.grad(&g_plain).unwrap(), weight.grad(&g_trainable).unwrap());
                let scale = a.clone().abs().max().into_scalar::<f32>().max(1.0);
                assert!(max_diff(a, b) < 1e-4 * scale, "k{kernel}");
            }
            let (a, b) = (x.grad(&g_plain).unwrap(), x.grad(&g_trainable).unwrap());
            let scale = a.clone().abs().max().into_scalar::<f32>().max(1.0);
            assert!(max_diff(a, b) < 1e-4 * scale, "k{kernel}: input gradient");
        }

        let conv = ConvBnSpec { channels: [8, 5], kernel: 1, stride: 1, groups: 1, padding: Padding::Symmetric, bn_epsilon: 1e-5 }.init(&device);
        let folded = conv.valid().fold_batch_norm();
        let x = Tensor::<4>::random([3, 8, 5, 6], Distribution::Normal(0.0, 1.0), &device).inner();
        assert!(max_diff(folded.forward(x.clone()), folded.forward_trainable(x)) < 1e-5);
    }

    /// Uneven padding and kernels (as TensorFlow's "SAME" gives even kernels) and maps too
    /// large for the matrices, which keep the convolution.
    #[test]
    fn depthwise_as_matmul_is_the_depthwise_convolution() {
        let device = Device::flex();
        device.seed(5);
        for ([kh, kw], padding) in [([3, 3], [1, 1, 1, 1]), ([2, 4], [0, 1, 1, 2]), ([3, 3], [0, 0, 0, 0]), ([5, 5], [2, 2, 2, 2])] {
            let x = Tensor::<4>::random([2, 6, 7, 5], Distribution::Normal(0.0, 1.0), &device);
            let w = Tensor::<4>::random([6, 1, kh, kw], Distribution::Normal(0.0, 1.0), &device);
            let [t, l, b, r] = padding;
            let options = ConvOptions::new_with_padding([1, 1], [(t, b), (l, r)], [1, 1], 6);
            let expected = conv2d(x.clone(), w.clone(), None, options);
            let got = depthwise_as_matmul(x, w, padding);
            assert_eq!(got.dims(), expected.dims(), "{kh}×{kw} {padding:?}");
            assert!(max_diff(got, expected) < 1e-4, "{kh}×{kw} {padding:?}");
        }

        let spec = ConvBnSpec { channels: [4, 4], kernel: 3, stride: 1, groups: 4, padding: Padding::TfSame, bn_epsilon: 1e-5 };
        let unit = spec.init(&device);
        let x = Tensor::<4>::random([1, 4, 7, 7], Distribution::Normal(0.0, 1.0), &device);
        assert!(!depthwise_as_matmul_pays([7, 7], [3, 3]) && depthwise_as_matmul_pays([7, 7], [5, 5]));
        assert!(max_diff(unit.forward(x.clone()), unit.forward_trainable(x)) == 0.0, "a 3×3 kernel on 7×7 takes the convolution itself");
    }

    /// Times a depthwise unit's forward and backward both ways (batch 16, 1 152 channels,
    /// 7×7, the last blocks' shape). A measurement, not a check: run it with `--ignored`.
    #[test]
    #[ignore]
    fn depthwise_timing() {
        use std::time::Instant;
        let dev = Device::flex().autodiff();
        for k in [3usize, 5] {
            let unit = ConvBnSpec { channels: [1152, 1152], kernel: k, stride: 1, groups: 1152, padding: Padding::TfSame, bn_epsilon: 1e-3 }.init(&dev);
            let x0 = Tensor::<4>::random([16, 1152, 7, 7], Distribution::Normal(0.0, 1.0), &dev);
            for rep in 0..4 {
                for f in 0..2 {
                    let x = x0.clone().require_grad();
                    let t = Instant::now();
                    let p = (k - 1) / 2;
                    let y = match f {
                        0 => unit.forward(x.clone()),
                        _ => unit.bn.forward(depthwise_as_matmul(x.clone(), unit.conv.weight.val(), [p; 4])),
                    };
                    let t1 = t.elapsed().as_secs_f64() * 1e3;
                    let g = y.powi_scalar(2).sum().backward();
                    let _ = unit.conv.weight.grad(&g).unwrap().into_data();
                    let _ = x.grad(&g).unwrap().into_data();
                    if rep > 0 {
                        println!("{k}×{k} {}: forward {t1:.1} ms, with backward {:.1} ms", ["convolution", "matrix products"][f], t.elapsed().as_secs_f64() * 1e3);
                    }
                }
            }
        }
    }
}
