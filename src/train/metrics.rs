//! Loss and accuracy computed from logits that were read back to the host.

use burn::tensor::{Device, Int, Tensor, TensorData, Transaction};
use serde::Serialize;

use crate::error::{Error, Result};

/// Running training loss and accuracy of an epoch. The per-batch sums stay on the device until
/// the epoch ends: one read-back per epoch instead of one per step (WebGPU reads are async).
#[derive(Default)]
pub(crate) struct EpochSums {
    transaction: Transaction,
}

impl EpochSums {
    /// Adds one batch: its mean `loss` and the `logits` it came from, against `targets`.
    pub fn add(&mut self, loss: &Tensor<1>, logits: &Tensor<2>, targets: &Tensor<1, Int>) {
        let n = targets.dims()[0];
        let correct = logits.clone().detach().argmax(1).reshape([n]).equal(targets.clone()).int().sum();
        let transaction = std::mem::take(&mut self.transaction);
        self.transaction = transaction.register(loss.clone().detach().mul_scalar(n as f32)).register(correct);
    }

    /// Adds a share of a batch computed elsewhere (see [`super::data_parallel`]): its summed
    /// loss and how many it classified right.
    pub fn add_totals(&mut self, loss_sum: f32, correct: f32, device: &Device) {
        let scalar = |value: f32| Tensor::<1>::from_data(TensorData::new(vec![value], [1]), device);
        let transaction = std::mem::take(&mut self.transaction);
        self.transaction = transaction.register(scalar(loss_sum)).register(scalar(correct));
    }

    /// `(sum of losses, number correct)` over the epoch.
    pub async fn read(self) -> Result<(f64, f64)> {
        let data = self.transaction.execute_async().await.map_err(|e| Error::read_back("reading losses", e))?;
        let mut sums = [0.0f64; 2];
        for (i, d) in data.iter().enumerate() {
            let values = d.try_to_vec_as::<f64>().map_err(|e| Error::read_back("reading tensor data", e))?;
            sums[i % 2] += values.first().copied().ok_or_else(|| Error::Backend("empty read-back".into()))?;
        }
        Ok((sums[0], sums[1]))
    }
}

/// The error for an epoch whose loss stopped being a number; the caller has kept the weights
/// from before it.
pub(crate) fn diverged(phase: &str, loss: f64, epoch: usize, learning_rate: f64) -> Error {
    Error::Training(format!(
        "the loss became {loss} in {phase} epoch {epoch}; the weights from before that epoch were kept. \
         Lower the learning rate (now {learning_rate}) and train again"
    ))
}

/// One epoch of training, as the page and the CLI report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Most epochs; early stopping may end the run before.
    pub epochs: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// `None` when the validation split is empty.
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// Wilson 95 % interval of `val_accuracy` (`valAccuracyInterval: [lo, hi]`): on 4 pictures a
    /// measured 100 % only says "somewhere above 51 %".
    pub val_accuracy_interval: Option<[f64; 2]>,
    /// The epoch whose weights are kept (lowest validation loss so far), with its validation
    /// accuracy: after early stopping this, not the last epoch, is the model. `None` without a
    /// validation split (the last epoch is kept). In phase 2, 0 is the phase-1 model, kept when
    /// the best fine-tuning epoch classifies fewer validation pictures.
    pub best_epoch: Option<usize>,
    pub best_val_accuracy: Option<f64>,
    /// True after the last epoch, or when early stopping ended the run.
    pub done: bool,
}

/// Wilson score interval (95 %, z = 1.96) of a proportion `correct / n`: unlike the plain
/// `p ± z·√(p(1−p)/n)`, it stays inside [0, 1] and does not collapse to a point at 0 % or 100 %,
/// which is what small validation splits show. `(0, 1)` when `n` is 0.
pub fn wilson_interval(correct: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let all = correct >= n;
    let (n, p) = (n as f64, correct.min(n) as f64 / n as f64);
    let z2 = Z * Z;
    let center = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // Exact ends at 0 % and 100 % (rounding would otherwise show 0.9999999999999999).
    let lo = if correct == 0 { 0.0 } else { (center - half).max(0.0) };
    let hi = if all { 1.0 } else { (center + half).min(1.0) };
    (lo, hi)
}

/// [`wilson_interval`] of an accuracy measured on `n` images, as the `[lo, hi]` the reports carry.
pub fn accuracy_interval(accuracy: f64, n: usize) -> [f64; 2] {
    let (lo, hi) = wilson_interval((accuracy * n as f64).round() as usize, n);
    [lo, hi]
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

    /// Values from statsmodels' `proportion_confint(count, nobs, alpha=0.05, method="wilson")`.
    #[test]
    fn wilson_interval_matches_statsmodels() {
        for (correct, n, lo, hi) in [
            (4, 4, 0.510_109_2, 1.0),
            (0, 4, 0.0, 0.489_890_8),
            (43, 50, 0.738_138_1, 0.930_491_7),
            (1, 2, 0.094_531_2, 0.905_468_8),
            (870, 1000, 0.847_732_0, 0.889_436_2),
        ] {
            let (l, h) = wilson_interval(correct, n);
            assert!((l - lo).abs() < 1e-7 && (h - hi).abs() < 1e-7, "{correct}/{n}: ({l}, {h}) vs ({lo}, {hi})");
        }
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
        assert_eq!((wilson_interval(30, 30).1, wilson_interval(0, 30).0), (1.0, 0.0));
        assert_eq!(accuracy_interval(1.0, 4), [wilson_interval(4, 4).0, 1.0]);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 3.0, -2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&p), 1);
    }
}

/// Precision and recall of one class on the validation split. `None` where undefined
/// (no image predicted as / labelled with the class).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ClassMetrics {
    pub label: String,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Validation images of this class.
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Misclassified {
    pub image_id: u32,
    pub file_name: String,
    pub true_label: String,
    pub predicted_label: String,
    /// Probability the model gave its (wrong) prediction.
    pub probability: f32,
}

/// The end-of-training report on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Evaluation {
    pub images: usize,
    pub loss: f64,
    pub accuracy: f64,
    /// Wilson 95 % interval of `accuracy` over `images` (see [`wilson_interval`]).
    #[serde(rename = "accuracyInterval")]
    pub accuracy_interval: [f64; 2],
    pub classes: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    pub misclassified: Vec<Misclassified>,
}

/// Metrics from logits; `images` gives each row's id and file name.
pub fn evaluate(logits: &[f32], labels: &[String], targets: &[usize], images: &[(u32, String)]) -> Evaluation {
    let k = labels.len();
    let (loss, accuracy) = loss_and_accuracy(logits, k, targets);
    let mut confusion = vec![vec![0usize; k]; k];
    let mut misclassified = Vec::new();
    for ((row, &target), (id, name)) in logits.chunks_exact(k).zip(targets).zip(images) {
        let predicted = argmax(row);
        confusion[target][predicted] += 1;
        if predicted != target {
            misclassified.push(Misclassified {
                image_id: *id,
                file_name: name.clone(),
                true_label: labels[target].clone(),
                predicted_label: labels[predicted].clone(),
                probability: softmax(row)[predicted],
            });
        }
    }
    let classes = (0..k)
        .map(|c| {
            let hits = confusion[c][c] as f64;
            let predicted: usize = confusion.iter().map(|r| r[c]).sum();
            let actual: usize = confusion[c].iter().sum();
            ClassMetrics {
                label: labels[c].clone(),
                precision: (predicted > 0).then(|| hits / predicted as f64),
                recall: (actual > 0).then(|| hits / actual as f64),
                support: actual,
            }
        })
        .collect();
    let accuracy_interval = accuracy_interval(accuracy, targets.len());
    Evaluation { images: targets.len(), loss, accuracy, accuracy_interval, classes, confusion, misclassified }
}

#[cfg(test)]
mod evaluation_tests {
    use super::*;

    #[test]
    fn confusion_precision_recall_and_mistakes() {
        let labels = vec!["a".to_string(), "b".to_string()];
        // rows: predicted a, a, b, b; truth a, b, b, b
        let logits = [2.0, 0.0, 1.0, 0.0, 0.0, 3.0, 0.0, 1.0];
        let images: Vec<(u32, String)> = (0..4).map(|i| (i, format!("{i}.png"))).collect();
        let e = evaluate(&logits, &labels, &[0, 1, 1, 1], &images);
        assert_eq!(e.confusion, vec![vec![1, 0], vec![1, 2]]);
        assert_eq!(e.classes[0].precision, Some(0.5));
        assert_eq!(e.classes[0].recall, Some(1.0));
        assert_eq!(e.classes[1].precision, Some(1.0));
        assert!((e.classes[1].recall.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.accuracy, 0.75);
        assert_eq!(e.accuracy_interval, accuracy_interval(0.75, 4));
        assert_eq!(e.misclassified.len(), 1);
        assert_eq!((e.misclassified[0].file_name.as_str(), e.misclassified[0].predicted_label.as_str()), ("1.png", "a"));
    }
}
