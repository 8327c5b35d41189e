//! Which recipe fits a dataset: the rule of thumb of the Keras and PyTorch transfer-learning
//! guides, made explicit so the page can show it and the user can override it.

use serde::Serialize;

use crate::model::BackboneKind;

/// Fewest images per class for fine-tuning backbone blocks to pay off rather than memorise.
pub const FINE_TUNE_MIN_PER_CLASS: usize = 30;
/// From this many images per class, unfreezing more blocks is worth it. On all 1 797 digits
/// (about 180 per class) the last 4 blocks beat the last 2 by 3 validation pictures of 269, within
/// the 95 % intervals, at twice the time (README, Quality), so the deeper recipe waits for more data.
pub const DEEPER_MIN_PER_CLASS: usize = 300;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Recommendation {
    /// Backbone units to unfreeze in phase 2; 0 means stop after the head (feature extraction).
    pub unfreeze: usize,
    /// Why, in a sentence for the user.
    pub reason: String,
}

/// What to do with `images_per_class` on `kind` (whose units differ: blocks, or ResNet stages).
pub fn recommend(kind: BackboneKind, images_per_class: &[usize]) -> Recommendation {
    let (medium, large) = kind.recommended_units();
    let units = |n: usize| match kind {
        BackboneKind::ResNet18 | BackboneKind::ResNet50 if n == 1 => "the last stage (layer4)".to_string(),
        BackboneKind::ResNet18 | BackboneKind::ResNet50 => format!("the last {n} stages"),
        _ => format!("the last {n} blocks"),
    };
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
            unfreeze: medium,
            reason: format!(
                "Medium dataset ({total} images, at least {fewest} per class): after the head, fine-tune {} at a 10× lower learning rate.",
                units(medium)
            ),
        }
    } else {
        Recommendation {
            unfreeze: large,
            reason: format!(
                "Larger dataset ({total} images, at least {fewest} per class): after the head, fine-tune {} at a 10× lower learning rate.",
                units(large)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_medium_large() {
        let lite = BackboneKind::EfficientNetLite0;
        assert_eq!(recommend(lite, &[12, 40]).unfreeze, 0);
        assert!(recommend(lite, &[12, 40]).reason.contains("smallest class"));
        assert_eq!(recommend(lite, &[30, 31]).unfreeze, 2);
        assert_eq!(recommend(lite, &[180, 400]).unfreeze, 2);
        assert_eq!(recommend(lite, &[300, 400]).unfreeze, 4);
        assert_eq!(recommend(lite, &[]).unfreeze, 0);
    }

    #[test]
    fn resnets_count_stages() {
        let medium = recommend(BackboneKind::ResNet18, &[40, 40]);
        assert_eq!(medium.unfreeze, 1);
        assert!(medium.reason.contains("layer4"), "{}", medium.reason);
        assert_eq!(recommend(BackboneKind::ResNet50, &[300, 300]).unfreeze, 2);
    }
}
