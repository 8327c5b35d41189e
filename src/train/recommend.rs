//! Which recipe fits a dataset: the rule of thumb of the Keras and PyTorch transfer-learning
//! guides, made explicit so the page can show it and the user can override it.

use serde::Serialize;

/// Fewest images per class for fine-tuning backbone blocks to pay off rather than memorise.
pub const FINE_TUNE_MIN_PER_CLASS: usize = 30;
/// From this many images per class, unfreezing more blocks is worth it.
pub const DEEPER_MIN_PER_CLASS: usize = 150;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Backbone units to unfreeze in phase 2; 0 means stop after the head (feature extraction).
    pub unfreeze: usize,
    /// Why, in a sentence for the user.
    pub reason: String,
}

pub fn recommend(images_per_class: &[usize]) -> Recommendation {
    let fewest = images_per_class.iter().copied().min().unwrap_or(0);
    let total: usize = images_per_class.iter().sum();
    if fewest < FINE_TUNE_MIN_PER_CLASS {
        Recommendation {
            unfreeze: 0,
            reason: format!(
                "Small dataset ({total} images, {fewest} in the smallest class): train the head only. \
                 Unfreezing backbone blocks with fewer than {FINE_TUNE_MIN_PER_CLASS} images per class mostly memorises them."
            ),
        }
    } else if fewest < DEEPER_MIN_PER_CLASS {
        Recommendation {
            unfreeze: 2,
            reason: format!(
                "Medium dataset ({total} images, at least {fewest} per class): after the head, fine-tune the last 2 blocks at a 10× lower learning rate."
            ),
        }
    } else {
        Recommendation {
            unfreeze: 4,
            reason: format!(
                "Larger dataset ({total} images, at least {fewest} per class): after the head, fine-tune the last 4 blocks at a 10× lower learning rate."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_medium_large() {
        assert_eq!(recommend(&[12, 40]).unfreeze, 0);
        assert!(recommend(&[12, 40]).reason.contains("smallest class"));
        assert_eq!(recommend(&[30, 31]).unfreeze, 2);
        assert_eq!(recommend(&[150, 400]).unfreeze, 4);
        assert_eq!(recommend(&[]).unfreeze, 0);
    }
}
