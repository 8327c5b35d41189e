//! Training: the feature cache, head training, and its metrics.

mod features;
mod head;
mod metrics;

pub use features::FeatureCache;
pub use head::{HeadOptions, HeadTrainer, LabelledFeatures};
pub use metrics::{EpochReport, argmax, loss_and_accuracy, softmax};
