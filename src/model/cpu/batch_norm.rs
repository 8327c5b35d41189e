//! BatchNorm on running statistics and the clamp of ReLU6 after it, as one pass.
//!
//! burn computes an inference BatchNorm as four broadcast operations (`x - μ`, `/ √(σ² + ε)`,
//! `· γ`, `+ β`), each a pass over the whole activation, and the clamp is a fifth: on the CPU
//! backend that memory traffic is a large share of a MobileNet-style forward. Here the
//! statistics become one scale and one shift per channel, `γ / √(σ² + ε)` and `β − μ · scale`,
//! and each value is updated once, in place when the tensor is not shared (a convolution's fresh
//! output never is).

use burn::nn::BatchNorm;
use burn::tensor::{DType, Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};

use super::contiguous_values;

/// `clamp(bn(x), 0, max)` (no clamp without `max`) when `x` and the BatchNorm's parameters are
/// plain f32 flex tensors and `bn` runs on its running statistics there; otherwise `Err(x)`,
/// untouched.
///
/// # Shapes
/// - x: `[batch, channels, height, width]`
/// - output: the same
pub fn try_forward(bn: &BatchNorm, x: Tensor<4>, max: Option<f32>) -> Result<Tensor<4>, Tensor<4>> {
    let [_, channels, height, width] = x.dims();
    if x.dtype() != DType::F32 || x.device().is_autodiff() {
        return Err(x);
    }
    let params = [bn.gamma.val(), bn.beta.val(), bn.running_mean.value(), bn.running_var.value()].map(|p| p.try_into_primitive::<Flex>());
    let [Ok(gamma), Ok(beta), Ok(mean), Ok(var)] = params else {
        return Err(x);
    };
    let params = [gamma, beta, mean, var].map(|p| p.to_contiguous());
    if params.iter().any(|p| p.dtype() != DType::F32 || p.layout().num_elements() != channels) {
        return Err(x);
    }
    let Ok(tensor) = x.clone().try_into_primitive::<Flex>() else {
        return Err(x);
    };
    // The only other handle on the values: without it, they are updated in place.
    drop(x);
    let [gamma, beta, mean, var] = params.each_ref().map(contiguous_values);
    // `blocks::inference_scale_shift`'s formula, on the host: here it is a per-call cost of
    // the frozen forward, and tensor operations on `[channels]` would cost more than the loop.
    let epsilon = bn.epsilon as f32;
    let scale: Vec<f32> = gamma.iter().zip(var).map(|(g, v)| g / (v + epsilon).sqrt()).collect();
    let shift: Vec<f32> = beta.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
    let mut tensor = owned_contiguous(tensor);
    let values = tensor.storage_mut::<f32>();
    let plane = height * width;
    let (low, high) = match max {
        Some(max) => (0.0, max),
        None => (f32::NEG_INFINITY, f32::INFINITY),
    };
    for (index, plane) in values.chunks_exact_mut(plane.max(1)).enumerate() {
        let (scale, shift) = (scale[index % channels], shift[index % channels]);
        for value in plane {
            *value = (*value * scale + shift).clamp(low, high);
        }
    }
    Ok(Tensor::from_primitive::<Flex>(tensor))
}

/// `tensor` contiguous from its first element, so that its storage is exactly its values.
fn owned_contiguous(tensor: FlexTensor) -> FlexTensor {
    let exact = |t: &FlexTensor| t.layout().is_contiguous() && t.layout().start_offset() == 0 && t.storage::<f32>().len() == t.layout().num_elements();
    let tensor = if exact(&tensor) { tensor } else { tensor.to_contiguous() };
    if exact(&tensor) {
        tensor
    } else {
        FlexTensor::from_data(TensorData::new(contiguous_values(&tensor).to_vec(), tensor.layout().shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tolerance};

    use super::super::tests::random_batch_norm as batch_norm;
    use super::*;

    /// The fused pass against burn's BatchNorm (and clamp or ReLU), with and without them, on a
    /// fresh tensor and on one shared with another handle (which must not change).
    #[test]
    fn matches_burns_batch_norm_and_clamp() {
        let device = Device::flex();
        let bn = batch_norm(5, &device);
        let x = Tensor::<4>::random([2, 5, 7, 9], Distribution::Normal(0.0, 3.0), &device);
        let before = x.clone().into_data();
        for max in [None, Some(6.0), Some(f32::INFINITY)] {
            let expected = match max {
                Some(f32::INFINITY) => burn::tensor::activation::relu(bn.forward(x.clone())),
                Some(max) => bn.forward(x.clone()).clamp(0.0, max),
                None => bn.forward(x.clone()),
            };
            let actual = try_forward(&bn, x.clone(), max).unwrap_or_else(|_| panic!("not taken"));
            actual.into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
        }
        assert_eq!(x.into_data(), before, "the shared input changed");
    }

    /// Autodiff-tracked activations go back to burn, which trains BatchNorm.
    #[test]
    fn leaves_tracked_tensors_to_burn() {
        let training = Device::flex().autodiff();
        let bn = batch_norm(3, &training);
        let x = Tensor::<4>::random([1, 3, 4, 4], Distribution::Default, &training);
        assert!(try_forward(&bn, x, Some(6.0)).is_err());
    }
}
