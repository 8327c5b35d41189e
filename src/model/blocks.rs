//! Building blocks shared by the convolutional backbones.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

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

    /// The convolution, BatchNorm, and a clamp to `[0, max]` if `max` is given (ReLU for an
    /// infinite `max`), the last two as one pass on the CPU backend ([`super::batch_norm`]).
    fn forward_clamped(&self, input: Tensor<4>, max: Option<f32>) -> Tensor<4> {
        let x = super::conv2d(&self.conv, input);
        if self.folded { super::activate(x, max) } else { super::batch_norm(&self.bn, x, max) }
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
        let (scale, shift) = inference_scale_shift(&self.bn, &self.conv.weight.val().device()); // [out] each
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

    /// [`forward`](Self::forward) for a unit that trains, with a pointwise convolution (1×1,
    /// stride 1, one group) written as one matrix product over every pixel of the batch: the
    /// same function; what changes is its backward. burn computes a convolution's weight
    /// gradient as a convolution with batch and channels swapped, which burn-flex runs as one
    /// matrix–vector product per input channel; the product's backward is two large matrix
    /// products, about 3× faster for the shapes of phase 2's tail on the CPU backend (README,
    /// Speed). Other convolutions keep [`forward`](Self::forward) (on the CPU backend the
    /// depthwise ones train through our own kernel and backward, [`super::conv2d`]), and so does
    /// an input that is not tracked by autodiff: without a backward the product gains nothing,
    /// and a plain forward of the tail then takes the same kernels as the prefix, so that
    /// splitting the network anywhere gives the same values bit for bit.
    ///
    /// # Shapes
    /// - input: `[batch, in_channels, height, width]`
    /// - output: `[batch, out_channels, height / stride, width / stride]` (rounded up)
    pub fn forward_trainable(&self, input: Tensor<4>) -> Tensor<4> {
        let [out, inp, kh, kw] = self.conv.weight.dims();
        let [batch, _, height, width] = input.dims();
        let pointwise = self.conv.stride == [1, 1] && self.conv.dilation == [1, 1] && [kh, kw] == [1, 1] && self.conv.groups == 1;
        if !pointwise || !input.device().is_autodiff() {
            return self.forward(input);
        }
        let pixels = input.permute([0, 2, 3, 1]).reshape([batch * height * width, inp]);
        let x = pixels.matmul(self.conv.weight.val().reshape([out, inp]).transpose());
        let x = x.reshape([batch, height, width, out]).permute([0, 3, 1, 2]);
        let x = match &self.conv.bias {
            Some(bias) => x + bias.val().reshape([1, out, 1, 1]),
            None => x,
        };
        if self.folded { x } else { super::batch_norm(&self.bn, x, None) }
    }

    /// [`forward`](Self::forward) followed by ReLU, the activation of ResNets (on the CPU
    /// backend in the same pass as BatchNorm, [`super::batch_norm`]).
    pub fn forward_relu(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_clamped(input, Some(f32::INFINITY))
    }
}

/// BatchNorm on running statistics as one scale and one shift per channel, on `device`:
/// `γ / √(σ² + ε)` and `β − μ · scale`. Computed from `γ` and `β` as tensors, so they train
/// where `γ` and `β` do.
///
/// # Shapes
/// - output: `[channels]` each
pub(crate) fn inference_scale_shift(bn: &BatchNorm, device: &Device) -> (Tensor<1>, Tensor<1>) {
    let (mean, var) = (bn.running_mean.value().to_device(device), bn.running_var.value().to_device(device));
    let scale = bn.gamma.val() / (var + bn.epsilon).sqrt();
    let shift = bn.beta.val() - mean * scale.clone();
    (scale, shift)
}

pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp(0.0, 6.0)
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

    use super::{ConvBnSpec, MbConvSpec, Padding};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// The trainable path of a block (pointwise convolutions as matrix products) computes the
    /// same outputs and the same weight and input gradients as the convolutions, for 3×3 and
    /// 5×5 depthwise kernels with either padding, BatchNorm folded or not.
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
}
