//! Data: decoding users' files, preprocessing, the labelled set and its validation split.

mod augment;
mod copies;
mod dataset;
mod decode;
mod labels;
mod preprocess;
mod split;
mod stored;

pub use augment::Augmentation;
pub use copies::first_copies;
pub use dataset::{ClassSummary, DatasetSummary, ImageSet, LabelledImage, MIN_IMAGES_PER_CLASS, PreparedImage, ViewOf, view_of};
pub use decode::{
    MAX_ASPECT_RATIO, MAX_DECODE_BYTES, MAX_FILE_BYTES, MAX_PIXELS, MAX_SIDE, SUPPORTED_FORMATS, check_dimensions,
    check_image_signature, decode_image,
};
pub use labels::{Placement, below_root, label_collisions, label_of, place, wrapping_folder};
pub use preprocess::{center_crop, input_values, resize_and_center_crop, resize_shorter_side, to_input_tensor};
pub use split::{Split, stratified_split};
pub use stored::{STORED_QUALITY, StoredPicture};
