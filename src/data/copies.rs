//! Exact copies among the pictures (identical decoded pixels), found before a run so that a
//! picture added twice is not trained on twice, nor validated on a copy of a training picture.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// For each picture (its pixels in a deterministic encoding, in order), the index of the first earlier picture
/// with exactly the same pixels, if any.
pub fn first_copies(pixels: &[&[u8]]) -> Vec<Option<usize>> {
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    pixels
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut hasher = DefaultHasher::new();
            p.hash(&mut hasher);
            let earlier = seen.entry(hasher.finish()).or_default();
            // A hash collision is not a copy: compare the bytes.
            let first = earlier.iter().copied().find(|&j| pixels[j] == *p);
            if first.is_none() {
                earlier.push(i);
            }
            first
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_copy_points_at_the_first_picture_with_its_pixels() {
        let (a, b) = (vec![1u8, 2, 3], vec![1u8, 2, 4]);
        let pixels: Vec<&[u8]> = vec![&a, &b, &a, &b, &a, &[]];
        assert_eq!(first_copies(&pixels), vec![None, None, Some(0), Some(1), Some(0), None]);
    }
}
