//! The new classifier head trained on top of pooled backbone features.

use burn::config::Config;
use burn::module::{Module, ModuleMapper, Param};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

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
    /// # Shapes
    /// - features: `[batch, features]`
    /// - output: `[batch, classes]` (logits)
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let mut x = self.dropout.forward(features);
        if let Some(hidden) = &self.hidden {
            x = self.dropout.forward(relu(hidden.forward(x)));
        }
        self.output.forward(x)
    }
}
