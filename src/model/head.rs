//! The new classifier head trained on top of pooled backbone features.

use burn::config::Config;
use burn::module::{Module, ModuleMapper, Param};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

#[derive(Config, Debug)]
pub struct HeadConfig {
    /// Width of the pooled backbone features.
    pub features: usize,
    /// Number of classes.
    pub classes: usize,
    /// Units of the optional hidden layer; 0 means a single linear layer, the usual choice
    /// for small datasets.
    #[config(default = 0)]
    pub hidden: usize,
    /// Dropout before each linear layer (the Keras transfer-learning recipe uses 0.2).
    #[config(default = 0.2)]
    pub dropout: f64,
}

/// dropout → [linear → ReLU → dropout] → linear.
#[derive(Module, Debug)]
pub struct Head {
    pub hidden: Option<Linear>,
    /// Holds the dropout probability; the masks come from a [`DropoutDraw`] (see
    /// [`Head::forward_train`]), not from this module's forward.
    pub dropout: Dropout,
    pub output: Linear,
}

impl HeadConfig {
    pub fn init(&self, device: &Device) -> Head {
        let out_in = if self.hidden > 0 { self.hidden } else { self.features };
        Head {
            hidden: (self.hidden > 0).then(|| LinearConfig::new(self.features, self.hidden).init(device)),
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(out_in, self.classes).init(device),
        }
    }
}

impl HeadConfig {
    /// Like [`init`](Self::init), with weights and biases drawn from `U(-1/√fan_in, 1/√fan_in)`
    /// (PyTorch's `nn.Linear` default) by a ChaCha8 generator seeded with `seed`: the same head
    /// on every platform and whatever else the process is doing, unlike burn's process-wide RNG.
    pub fn init_seeded(&self, device: &Device, seed: u64) -> Head {
        self.init(device).map(&mut SeededUniform { rng: ChaCha8Rng::seed_from_u64(seed), fan_in: 1 })
    }
}

struct SeededUniform {
    rng: ChaCha8Rng,
    /// Fan-in of the last weight seen; a Linear's bias comes right after its weight.
    fan_in: usize,
}

impl ModuleMapper for SeededUniform {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let shape = param.shape().dims::<D>().to_vec();
        if D == 2 {
            self.fan_in = shape[0]; // burn's Linear weight is [in, out]
        }
        let bound = 1.0 / (self.fan_in as f32).sqrt();
        let values: Vec<f32> = (0..shape.iter().product()).map(|_| self.rng.random_range(-bound..bound)).collect();
        param.map(|old| {
            let require_grad = old.is_require_grad();
            Tensor::from_data(burn::tensor::TensorData::new(values, shape), &old.device()).set_require_grad(require_grad)
        })
    }
}

impl Head {
    /// The head without dropout: inference, validation, and Grad-CAM's gradients.
    ///
    /// # Shapes
    /// - features: `[batch, features]`
    /// - output: `[batch, classes]` (logits)
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let mut x = features;
        if let Some(hidden) = &self.hidden {
            x = relu(hidden.forward(x));
        }
        self.output.forward(x)
    }

    /// The head while training: dropout before each linear layer, its masks from `draw`.
    ///
    /// # Shapes
    /// - features: `[rows, features]`, rows `draw.first_row..` of the step's batch
    /// - output: `[rows, classes]` (logits)
    pub fn forward_train(&self, features: Tensor<2>, draw: &DropoutDraw) -> Tensor<2> {
        let prob = self.dropout.prob;
        let mut x = draw.apply(features, 0, prob);
        if let Some(hidden) = &self.hidden {
            x = draw.apply(relu(hidden.forward(x)), 1, prob);
        }
        self.output.forward(x)
    }
}

/// Where a training step's dropout masks come from: a ChaCha8 stream per step and layer of a
/// run, in which row `r` of the step's batch always takes the same words. So a row gets the same
/// mask whichever engine computes it (this one, or a helper given rows `first_row..`, see
/// `train::data_parallel`), and whatever else in the process draws random numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropoutDraw {
    /// The run's seed.
    pub seed: u64,
    /// The optimizer step (0-based) the batch is for.
    pub step: u64,
    /// The row of the step's batch that the features start at.
    pub first_row: usize,
}

impl DropoutDraw {
    /// Drops each value of `x` with probability `prob` and scales the rest by `1 / (1 - prob)`,
    /// with the mask of dropout layer `layer` (0 or 1) at this draw's rows.
    ///
    /// # Shapes
    /// - x: `[rows, width]`
    /// - output: `[rows, width]`
    pub fn apply(&self, x: Tensor<2>, layer: u64, prob: f64) -> Tensor<2> {
        if prob <= 0.0 {
            return x;
        }
        let [rows, width] = x.dims();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.step.wrapping_mul(2).wrapping_add(layer));
        // One 32-bit word per value: row r starts at word r·width in every engine.
        rng.set_word_pos((self.first_row * width) as u128);
        let threshold = (prob * 4_294_967_296.0) as u64;
        let keep = (1.0 / (1.0 - prob)) as f32;
        let mask: Vec<f32> = (0..rows * width).map(|_| if u64::from(rng.next_u32()) < threshold { 0.0 } else { keep }).collect();
        let device = x.device();
        x * Tensor::<2>::from_data(TensorData::new(mask, [rows, width]), &device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ones(rows: usize, width: usize) -> Tensor<2> {
        Tensor::ones([rows, width], &Device::flex())
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn a_row_gets_the_same_mask_in_any_share_of_its_batch() {
        let whole = values(DropoutDraw { seed: 7, step: 3, first_row: 0 }.apply(ones(6, 40), 1, 0.3));
        let head = values(DropoutDraw { seed: 7, step: 3, first_row: 0 }.apply(ones(4, 40), 1, 0.3));
        let tail = values(DropoutDraw { seed: 7, step: 3, first_row: 4 }.apply(ones(2, 40), 1, 0.3));
        assert_eq!(whole, [head, tail].concat());
        let other_step = values(DropoutDraw { seed: 7, step: 4, first_row: 0 }.apply(ones(6, 40), 1, 0.3));
        let other_layer = values(DropoutDraw { seed: 7, step: 3, first_row: 0 }.apply(ones(6, 40), 0, 0.3));
        assert_ne!(whole, other_step);
        assert_ne!(whole, other_layer);
    }

    #[test]
    fn drops_about_prob_and_keeps_the_mean() {
        let masked = values(DropoutDraw { seed: 1, step: 0, first_row: 0 }.apply(ones(100, 100), 0, 0.2));
        let dropped = masked.iter().filter(|v| **v == 0.0).count();
        assert!((1800..2200).contains(&dropped), "{dropped} of 10000 dropped at 0.2");
        let mean = masked.iter().sum::<f32>() / masked.len() as f32;
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
        assert_eq!(values(DropoutDraw { seed: 1, step: 0, first_row: 0 }.apply(ones(3, 5), 0, 0.0)), vec![1.0; 15]);
    }

    #[test]
    fn inference_ignores_dropout() {
        let head = HeadConfig::new(8, 3).with_hidden(4).with_dropout(0.5).init_seeded(&Device::flex().autodiff(), 2);
        let x = Tensor::<2>::from_data(TensorData::new((0..16).map(|v| v as f32).collect::<Vec<_>>(), [2, 8]), &Device::flex().autodiff());
        assert_eq!(values(head.forward(x.clone())), values(head.forward(x)));
    }
}
