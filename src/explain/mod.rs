//! Explaining a trained model and its data: Grad-CAM heatmaps (why it decided), and the
//! pictures whose labels a cross-validated model doubts, and duplicates (bad labels).

mod gradcam;
mod suspects;

pub use gradcam::GradCam;
pub use suspects::{
    Candidate, DuplicateGroup, DuplicateKind, DuplicatePicture, FOLDS, NEAR_DUPLICATE_SIMILARITY, NEIGHBOURS, Suspect, SuspectReport,
    cross_validated_probabilities, duplicates, similarities, suspects,
};
