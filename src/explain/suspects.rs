//! Finding the bad labels. After training every picture has its backbone features cached, so a
//! fresh logistic-regression head per fold of a stratified k-fold split costs little: each
//! picture is then predicted by a model that never saw its label, and a picture whose given
//! label gets a low held-out probability is probably mislabelled (the idea behind confident
//! learning, Northcutt et al. 2021). Duplicates are flagged too: exact ones by their decoded
//! pixels, near ones by the cosine similarity of their features, across classes as well.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::{Error, Result};

/// Folds of the cross-validation (fewer when there are fewer pictures).
pub const FOLDS: usize = 5;
/// Neighbours (by feature cosine similarity) whose labels are reported beside each suspect.
pub const NEIGHBOURS: usize = 5;
/// Feature cosine similarity from which two pictures count as near duplicates. Measured on
/// EfficientNet-Lite0 features (tests/explain.rs): copies of a photo (JPEG, half size, 5 %
/// cropped) stayed at 0.973 or above, different generated pictures of one class at 0.883 or
/// below; the threshold sits between.
pub const NEAR_DUPLICATE_SIMILARITY: f32 = 0.95;

/// Full-batch Adam steps of each fold's head, its rate and L2 strength (mean cross-entropy +
/// `L2 / 2 · ‖W‖²` on standardised features, as phase 1's default `weightDecay`).
const STEPS: usize = 200;
const LEARNING_RATE: f64 = 0.01;
const L2: f64 = 1e-2;

/// A picture the held-out model disagrees with.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Suspect {
    pub image_id: u32,
    pub file_name: String,
    /// The label it was given.
    pub label: String,
    /// The class the model trained without it predicts.
    pub suggested: String,
    /// Held-out probabilities of the given label and of the suggested class.
    pub label_probability: f32,
    pub suggested_probability: f32,
    /// `−ln(label_probability)`, the held-out loss of the given label: the ranking, highest first.
    pub score: f32,
    /// Share of its nearest pictures (feature cosine similarity) that carry the suggested class.
    pub neighbours_suggested: f32,
}

/// The ranking of [`suspects`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct SuspectReport {
    /// Pictures whose held-out prediction is not their label, most suspicious first.
    pub suspects: Vec<Suspect>,
    /// Pictures checked, and how many folds they were split into.
    pub checked: usize,
    pub folds: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum DuplicateKind {
    /// The same decoded pixels.
    Exact,
    /// Features with a cosine similarity of at least [`NEAR_DUPLICATE_SIMILARITY`].
    Near,
}

/// One picture of a [`DuplicateGroup`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct DuplicatePicture {
    pub image_id: u32,
    pub file_name: String,
    pub label: String,
}

/// Pictures that are copies of one another.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct DuplicateGroup {
    pub kind: DuplicateKind,
    /// The lowest feature cosine similarity between two of its pictures.
    pub similarity: f32,
    /// The copies carry different labels: at least one of them is wrong.
    pub mixed_labels: bool,
    pub pictures: Vec<DuplicatePicture>,
}

/// What the ranking needs of one picture.
pub struct Candidate<'a> {
    pub image_id: u32,
    pub file_name: &'a str,
    /// Class index into the labels.
    pub class: usize,
    pub features: &'a [f32],
    /// The picture's pixels in any deterministic encoding (the image set's stored bytes),
    /// compared byte for byte for exact duplicates.
    pub pixels: &'a [u8],
}

/// Standardised features (per dimension, over all the pictures: no label is used), row-major.
fn standardised(candidates: &[Candidate], dim: usize) -> Vec<f32> {
    let n = candidates.len() as f64;
    let mut mean = vec![0f64; dim];
    let mut square = vec![0f64; dim];
    for c in candidates {
        for ((m, s), &x) in mean.iter_mut().zip(&mut square).zip(c.features) {
            *m += x as f64 / n;
            *s += (x as f64).powi(2) / n;
        }
    }
    let var: Vec<f64> = mean.iter().zip(&square).map(|(m, s)| (s - m * m).max(0.0)).collect();
    // As phase 1's standardiser: dimensions that barely vary keep at least a tenth of the typical scale.
    let floor = 0.01 * var.iter().sum::<f64>() / dim as f64 + 1e-12;
    let inv_std: Vec<f32> = var.iter().map(|v| (1.0 / (v + floor).sqrt()) as f32).collect();
    candidates.iter().flat_map(|c| c.features.iter().zip(&mean).zip(&inv_std).map(|((&x, &m), &s)| (x - m as f32) * s)).collect()
}

/// Fold of each candidate: classes are shuffled (seeded) and dealt round-robin, so every fold
/// holds about the same share of each class.
fn stratified_folds(classes: &[usize], folds: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fold = vec![0; classes.len()];
    let mut next = 0;
    for class in 0..=classes.iter().copied().max().unwrap_or(0) {
        let mut members: Vec<usize> = (0..classes.len()).filter(|&i| classes[i] == class).collect();
        members.shuffle(&mut rng);
        for i in members {
            fold[i] = next % folds;
            next += 1;
        }
    }
    fold
}

/// Trains a multinomial logistic regression on `rows` (`[n, dim]`, standardised) with
/// full-batch Adam on `device` and returns the class probabilities of `held_out` (`[m, dim]`),
/// row-major `[m, classes]`. Gradients are written out (no autodiff): `∂L/∂W = Xᵀ(P − Y)/n + λW`.
async fn fit_and_predict(rows: &[f32], targets: &[usize], held_out: &[f32], dim: usize, classes: usize, device: &Device) -> Result<Vec<f32>> {
    let n = targets.len();
    let x = Tensor::<2>::from_data(TensorData::new(rows.to_vec(), [n, dim]), device);
    let xt = x.clone().transpose(); // [dim, n]
    let mut onehot = vec![0f32; n * classes];
    for (i, &t) in targets.iter().enumerate() {
        onehot[i * classes + t] = 1.0;
    }
    let y = Tensor::<2>::from_data(TensorData::new(onehot, [n, classes]), device);
    let mut w = Tensor::<2>::zeros([dim, classes], device);
    let mut b = Tensor::<2>::zeros([1, classes], device);
    let (mut mw, mut vw) = (w.zeros_like(), w.zeros_like());
    let (mut mb, mut vb) = (b.zeros_like(), b.zeros_like());
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8);
    for step in 1..=STEPS {
        let p = softmax(x.clone().matmul(w.clone()) + b.clone(), 1); // [n, classes]
        let error = (p - y.clone()) / n as f64;
        let gw = xt.clone().matmul(error.clone()) + w.clone() * L2; // [dim, classes]
        let gb = error.sum_dim(0); // [1, classes]
        let correction = (1.0 - beta2.powi(step as i32)).sqrt() / (1.0 - beta1.powi(step as i32));
        let rate = LEARNING_RATE * correction;
        mw = mw * beta1 + gw.clone() * (1.0 - beta1);
        vw = vw * beta2 + gw.powi_scalar(2) * (1.0 - beta2);
        w = w - mw.clone() * rate / (vw.clone().sqrt() + eps);
        mb = mb * beta1 + gb.clone() * (1.0 - beta1);
        vb = vb * beta2 + gb.powi_scalar(2) * (1.0 - beta2);
        b = b - mb.clone() * rate / (vb.clone().sqrt() + eps);
    }
    let m = held_out.len() / dim;
    let h = Tensor::<2>::from_data(TensorData::new(held_out.to_vec(), [m, dim]), device);
    let p = softmax(h.matmul(w) + b, 1);
    let data = p.into_data_async().await.map_err(|e| Error::read_back("reading held-out probabilities", e))?;
    data.try_to_vec_as::<f32>().map_err(|e| Error::read_back("reading tensor data", e))
}

/// Held-out class probabilities of every candidate, row-major `[n, classes]`, and the folds used.
pub async fn cross_validated_probabilities(candidates: &[Candidate<'_>], classes: usize, seed: u64, device: &Device) -> Result<(Vec<f32>, usize)> {
    let n = candidates.len();
    let dim = candidates.first().map_or(0, |c| c.features.len());
    if n < 2 || dim == 0 {
        return Err(Error::Dataset("checking labels needs at least two pictures with features".into()));
    }
    let x = standardised(candidates, dim);
    let targets: Vec<usize> = candidates.iter().map(|c| c.class).collect();
    let folds = FOLDS.min(n);
    let fold_of = stratified_folds(&targets, folds, seed);
    let mut probabilities = vec![0f32; n * classes];
    for fold in 0..folds {
        let (mut rows, mut train_targets, mut held_out, mut held_ids) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let row = &x[i * dim..(i + 1) * dim];
            if fold_of[i] == fold {
                held_out.extend_from_slice(row);
                held_ids.push(i);
            } else {
                rows.extend_from_slice(row);
                train_targets.push(targets[i]);
            }
        }
        if held_ids.is_empty() || train_targets.is_empty() {
            continue;
        }
        let p = fit_and_predict(&rows, &train_targets, &held_out, dim, classes, device).await?;
        for (k, &i) in held_ids.iter().enumerate() {
            probabilities[i * classes..(i + 1) * classes].copy_from_slice(&p[k * classes..(k + 1) * classes]);
        }
    }
    Ok((probabilities, folds))
}

/// Cosine similarities of every pair of candidates' features, row-major `[n, n]`.
pub async fn similarities(candidates: &[Candidate<'_>], device: &Device) -> Result<Vec<f32>> {
    let n = candidates.len();
    let dim = candidates.first().map_or(0, |c| c.features.len());
    let mut rows = Vec::with_capacity(n * dim);
    for c in candidates {
        let norm = c.features.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        rows.extend(c.features.iter().map(|x| x / norm));
    }
    let x = Tensor::<2>::from_data(TensorData::new(rows, [n, dim]), device);
    let s = x.clone().matmul(x.transpose());
    let data = s.into_data_async().await.map_err(|e| Error::read_back("reading feature similarities", e))?;
    data.try_to_vec_as::<f32>().map_err(|e| Error::read_back("reading tensor data", e))
}

/// Candidates whose held-out prediction is not their label, ranked by the held-out loss of
/// their label (highest first), at most `limit`.
pub async fn suspects(candidates: &[Candidate<'_>], labels: &[String], limit: usize, seed: u64, device: &Device) -> Result<SuspectReport> {
    let classes = labels.len();
    let (probabilities, folds) = cross_validated_probabilities(candidates, classes, seed, device).await?;
    let similarity = similarities(candidates, device).await?;
    let n = candidates.len();
    let mut suspects: Vec<Suspect> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let p = &probabilities[i * classes..(i + 1) * classes];
        let suggested = crate::train::argmax(p);
        if suggested == c.class {
            continue;
        }
        let mut others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        others.sort_by(|&a, &b| similarity[i * n + b].total_cmp(&similarity[i * n + a]));
        let nearest = &others[..NEIGHBOURS.min(others.len())];
        let agreeing = nearest.iter().filter(|&&j| candidates[j].class == suggested).count();
        let label_probability = p[c.class];
        suspects.push(Suspect {
            image_id: c.image_id,
            file_name: c.file_name.to_string(),
            label: labels[c.class].clone(),
            suggested: labels[suggested].clone(),
            label_probability,
            suggested_probability: p[suggested],
            score: -label_probability.max(1e-12).ln(),
            neighbours_suggested: if nearest.is_empty() { 0.0 } else { agreeing as f32 / nearest.len() as f32 },
        });
    }
    suspects.sort_by(|a, b| b.score.total_cmp(&a.score));
    suspects.truncate(limit);
    Ok(SuspectReport { suspects, checked: n, folds })
}

/// Groups of exact duplicates (identical decoded pixels), then of near duplicates (features at
/// least `threshold` cosine-similar, joined transitively) among the rest.
pub async fn duplicates(candidates: &[Candidate<'_>], labels: &[String], threshold: f32, device: &Device) -> Result<Vec<DuplicateGroup>> {
    let n = candidates.len();
    if n < 2 {
        return Ok(Vec::new());
    }
    let similarity = similarities(candidates, device).await?;
    // Union-find over the pictures; exact copies first.
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut by_hash: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, c) in candidates.iter().enumerate() {
        let mut hasher = DefaultHasher::new();
        c.pixels.hash(&mut hasher);
        by_hash.entry(hasher.finish()).or_default().push(i);
    }
    let mut exact = vec![false; n];
    for members in by_hash.values() {
        for &j in &members[1..] {
            // A hash collision is not a copy: compare the bytes.
            if let Some(&i) = members.iter().find(|&&i| i < j && candidates[i].pixels == candidates[j].pixels) {
                let (ri, rj) = (root(&mut parent, i), root(&mut parent, j));
                parent[rj] = ri;
                exact[i] = true;
                exact[j] = true;
            }
        }
    }
    let exact_roots: Vec<usize> = (0..n).map(|i| root(&mut parent, i)).collect();
    let mut near = parent.clone();
    for i in 0..n {
        for j in i + 1..n {
            if exact_roots[i] != exact_roots[j] && similarity[i * n + j] >= threshold {
                let (ri, rj) = (root(&mut near, i), root(&mut near, j));
                if ri != rj {
                    near[rj] = ri;
                }
            }
        }
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..n {
        groups.entry(root(&mut near, i)).or_default().push(i);
    }
    let mut out: Vec<DuplicateGroup> = groups
        .into_values()
        .filter(|members| members.len() > 1)
        .map(|members| {
            let all_exact = members.iter().all(|&i| exact_roots[i] == exact_roots[members[0]]);
            let similarity = members
                .iter()
                .flat_map(|&i| members.iter().map(move |&j| (i, j)))
                .filter(|(i, j)| i < j)
                .map(|(i, j)| similarity[i * n + j])
                .fold(1f32, f32::min);
            let mixed_labels = members.iter().any(|&i| candidates[i].class != candidates[members[0]].class);
            DuplicateGroup {
                kind: if all_exact { DuplicateKind::Exact } else { DuplicateKind::Near },
                similarity: similarity.min(1.0),
                mixed_labels,
                pictures: members
                    .iter()
                    .map(|&i| DuplicatePicture {
                        image_id: candidates[i].image_id,
                        file_name: candidates[i].file_name.to_string(),
                        label: labels[candidates[i].class].clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    // Conflicting labels first, then exact copies, then the most similar.
    out.sort_by(|a, b| {
        (b.mixed_labels, b.kind == DuplicateKind::Exact).cmp(&(a.mixed_labels, a.kind == DuplicateKind::Exact)).then(b.similarity.total_cmp(&a.similarity))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Separable synthetic features: each class a cluster around its own centre in 64 dimensions,
    /// non-negative like pooled ReLU6 features.
    fn clusters(per_class: usize, classes: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..classes).map(|_| (0..64).map(|_| rng.random_range(0.0..3.0)).collect()).collect();
        let mut rows = Vec::new();
        let mut classes_of = Vec::new();
        for i in 0..per_class * classes {
            let class = i % classes;
            rows.push(centres[class].iter().map(|&c| (c + rng.random_range(-1.0..1.0f32)).max(0.0)).collect());
            classes_of.push(class);
        }
        (rows, classes_of)
    }

    fn candidates<'a>(rows: &'a [Vec<f32>], classes: &[usize], names: &'a [String], pixels: &'a [Vec<u8>]) -> Vec<Candidate<'a>> {
        (0..rows.len())
            .map(|i| Candidate { image_id: i as u32 + 100, file_name: &names[i], class: classes[i], features: &rows[i], pixels: &pixels[i] })
            .collect()
    }

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|c| format!("class{c}")).collect()
    }

    #[test]
    fn a_planted_mislabel_ranks_first() {
        let device = Device::flex();
        let (rows, mut classes) = clusters(12, 3, 1);
        // Picture 7 (class 1) is labelled class 2.
        assert_eq!(classes[7], 1);
        classes[7] = 2;
        let names: Vec<String> = (0..rows.len()).map(|i| format!("p{i}.png")).collect();
        let pixels: Vec<Vec<u8>> = (0..rows.len()).map(|i| vec![i as u8; 4]).collect();
        let report = pollster::block_on(suspects(&candidates(&rows, &classes, &names, &pixels), &labels(3), 10, 42, &device)).unwrap();
        assert_eq!((report.checked, report.folds), (36, 5));
        let first = &report.suspects[0];
        assert_eq!((first.image_id, first.label.as_str(), first.suggested.as_str()), (107, "class2", "class1"), "{report:?}");
        assert!(first.label_probability < 0.2 && first.suggested_probability > 0.5, "{first:?}");
        assert_eq!(first.neighbours_suggested, 1.0);
        // The clean pictures are predicted right: nothing else is suspect.
        assert_eq!(report.suspects.len(), 1, "{report:?}");
    }

    #[test]
    fn folds_are_stratified_and_cover_every_picture() {
        let classes: Vec<usize> = (0..23).map(|i| if i < 15 { 0 } else { 1 }).collect();
        let folds = stratified_folds(&classes, 5, 3);
        for fold in 0..5 {
            let count = |class| (0..23).filter(|&i| folds[i] == fold && classes[i] == class).count();
            assert!((2..=4).contains(&count(0)) && (1..=2).contains(&count(1)), "fold {fold}: {folds:?}");
        }
    }

    #[test]
    fn exact_and_near_duplicates_are_grouped_across_classes() {
        let device = Device::flex();
        let (mut rows, classes) = clusters(6, 2, 2);
        let names: Vec<String> = (0..rows.len()).map(|i| format!("p{i}.png")).collect();
        let mut pixels: Vec<Vec<u8>> = (0..rows.len()).map(|i| vec![i as u8, 1, 2]).collect();
        // 0 and 3 are the same picture (class 0 and class 1); 4's features are 2's, barely changed.
        pixels[3] = pixels[0].clone();
        rows[3] = rows[0].clone();
        rows[4] = rows[2].iter().map(|x| x * 1.01 + 0.001).collect();
        let groups = pollster::block_on(duplicates(&candidates(&rows, &classes, &names, &pixels), &labels(2), NEAR_DUPLICATE_SIMILARITY, &device)).unwrap();
        assert_eq!(groups.len(), 2, "{groups:?}");
        let ids = |g: &DuplicateGroup| g.pictures.iter().map(|p| p.image_id).collect::<Vec<_>>();
        assert_eq!((groups[0].kind, groups[0].mixed_labels, ids(&groups[0])), (DuplicateKind::Exact, true, vec![100, 103]));
        assert_eq!((groups[1].kind, groups[1].mixed_labels, ids(&groups[1])), (DuplicateKind::Near, false, vec![102, 104]));
        assert!(groups[1].similarity > 0.999);
        // Cluster members are similar, but not that similar.
        let pairs = pollster::block_on(similarities(&candidates(&rows, &classes, &names, &pixels), &device)).unwrap();
        assert!(pairs[1] < NEAR_DUPLICATE_SIMILARITY);
    }
}
