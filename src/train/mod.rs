//! Training: the feature cache and head training (phase 1), the prefix cache and fine-tuning
//! of the last backbone blocks (phase 2), metrics, and the recipe recommendation.

mod data_parallel;
mod features;
mod finetune;
mod head;
mod metrics;
mod prefix_cache;
mod recommend;
mod kernel_timing;
mod step_timing;

pub use data_parallel::{Helper, Replica, Reply};
pub(crate) use data_parallel::{ForwardShare, extend_prefixes, extract_features};
#[cfg(test)]
pub(crate) use data_parallel::InThread;
pub use features::FeatureCache;
pub use finetune::{FineTuneOptions, FineTuner, UnfreezePlan, warmup_cosine};
pub use head::{HeadOptions, HeadTrainer, LabelledFeatures, Standardizer};
pub use metrics::{ClassMetrics, EpochReport, Evaluation, Misclassified, accuracy_interval, argmax, evaluate, loss_and_accuracy, softmax, wilson_interval};
pub use prefix_cache::{CacheStorage, CenterPrefixes, PrefixCache};
pub use recommend::{Recommendation, recommend};
pub use kernel_timing::{ConvKernel, ConvShape, ConvTiming, LITE0_SHAPES, simd_peak_gflops, time_conv};
pub use step_timing::{FineTuneStep, StepTiming, time_classifier_steps, time_fine_tune_steps, time_forward};
