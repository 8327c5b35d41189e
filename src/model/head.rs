//! The new classifier head trained on top of pooled backbone features.

use burn::config::Config;
use burn::module::Module;
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
