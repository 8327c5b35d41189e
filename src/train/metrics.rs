//! Loss and accuracy computed from logits that were read back to the host.

use serde::Serialize;

/// One epoch of head training, as the page and the CLI report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// `None` when the validation split is empty.
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// True after the last epoch.
    pub done: bool,
}

/// Mean softmax cross-entropy and accuracy of row-major `[n, classes]` logits.
pub fn loss_and_accuracy(logits: &[f32], classes: usize, targets: &[usize]) -> (f64, f64) {
    let mut loss = 0.0;
    let mut correct = 0;
    for (row, &target) in logits.chunks_exact(classes).zip(targets) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let log_sum = row.iter().map(|&z| (z as f64 - max).exp()).sum::<f64>().ln() + max;
        loss += log_sum - row[target] as f64;
        if argmax(row) == target {
            correct += 1;
        }
    }
    let n = targets.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// Index of the largest value; the first one on ties.
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

/// Softmax of one row of logits.
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = row.iter().map(|&z| (z - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_matches_hand_computation() {
        // ln(e^2 + e^0) - 2 = ln(1 + e^-2)
        let (loss, acc) = loss_and_accuracy(&[2.0, 0.0, 0.0, 3.0], 2, &[0, 0]);
        let expected = ((1.0 + (-2.0f64).exp()).ln() + (1.0 + 3.0f64.exp()).ln()) / 2.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
        assert_eq!(acc, 0.5);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 3.0, -2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&p), 1);
    }
}
