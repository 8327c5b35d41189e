//! Data: decoding users' files, preprocessing, the labelled set and its validation split.

mod augment;
mod dataset;
mod decode;
mod preprocess;
mod split;

pub use augment::Augmentation;
pub use dataset::{ClassSummary, DatasetSummary, ImageSet, LabelledImage, MIN_IMAGES_PER_CLASS};
pub use decode::{MAX_SIDE, decode_image};
pub use preprocess::{center_crop, resize_and_center_crop, resize_shorter_side, to_input_tensor};
pub use split::{Split, stratified_split};
