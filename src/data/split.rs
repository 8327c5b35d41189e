//! Stratified, seeded train/validation split.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Indices into the image list.
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// Splits image indices so each class keeps `val_fraction` of its images for validation
/// (rounded, at least one when the class has two or more and the fraction is positive, and
/// never all of them). ChaCha8 makes the split identical on every platform for a given seed.
pub fn stratified_split(class_of_image: &[usize], num_classes: usize, val_fraction: f64, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut split = Split { train: Vec::new(), val: Vec::new() };
    for class in 0..num_classes {
        let mut members: Vec<usize> = (0..class_of_image.len()).filter(|&i| class_of_image[i] == class).collect();
        members.shuffle(&mut rng);
        let n = members.len();
        let mut n_val = (n as f64 * val_fraction).round() as usize;
        if val_fraction > 0.0 && n >= 2 {
            n_val = n_val.clamp(1, n - 1);
        }
        split.val.extend_from_slice(&members[..n_val.min(n)]);
        split.train.extend_from_slice(&members[n_val.min(n)..]);
    }
    split.train.sort_unstable();
    split.val.sort_unstable();
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_is_represented_in_both_parts() {
        let classes: Vec<usize> = (0..100).map(|i| if i < 80 { 0 } else { 1 + i % 2 }).collect();
        let split = stratified_split(&classes, 3, 0.15, 7);
        let count = |part: &[usize], c| part.iter().filter(|&&i| classes[i] == c).count();
        assert_eq!(count(&split.val, 0), 12);
        assert_eq!(count(&split.val, 1), 2);
        assert_eq!(count(&split.val, 2), 2);
        assert_eq!(split.train.len() + split.val.len(), 100);
        assert!(split.train.iter().all(|i| !split.val.contains(i)));
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let classes: Vec<usize> = (0..60).map(|i| i % 2).collect();
        assert_eq!(stratified_split(&classes, 2, 0.2, 1), stratified_split(&classes, 2, 0.2, 1));
        assert_ne!(stratified_split(&classes, 2, 0.2, 1), stratified_split(&classes, 2, 0.2, 2));
    }

    #[test]
    fn tiny_classes_keep_one_image_for_training() {
        let split = stratified_split(&[0, 0, 1, 1], 2, 0.9, 3);
        assert_eq!((split.train.len(), split.val.len()), (2, 2));
        let none = stratified_split(&[0, 0, 1, 1], 2, 0.0, 3);
        assert!(none.val.is_empty());
    }
}
