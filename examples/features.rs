//! The pooled backbone features of a labelled folder, with the train/validation split that
//! `webtune train` makes of it (same file order, seed and fraction), as CSV: one row per image,
//! `split,class,f0,f1,…` with `split` `train` or `val` and `class` the index of the sorted
//! class names. For comparing the head with an independent reference (bench/quality.py runs
//! scikit-learn's logistic regression on it).
//!
//! `cargo run --example features -- DATA_DIR OUT.csv [--weights FILE] [--val-fraction 0.15] [--seed 42]`
//! (weights default: $WEBTUNE_WEIGHTS, else www/public/weights/efficientnet_lite0.safetensors).

use std::io::Write;
use std::path::{Path, PathBuf};

use webtune::data::{ImageSet, stratified_split};
use webtune::model::{Backbone, BackboneKind};
use webtune::train::{FeatureCache, HeadOptions};
use webtune::weights::read_weights_file;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let defaults = HeadOptions::default();
    let (mut val_fraction, mut seed) = (defaults.val_fraction, defaults.seed);
    let mut weights = std::env::var_os("WEBTUNE_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "www/public/weights/efficientnet_lite0.safetensors".into());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--weights" => weights = value()?.into(),
            "--val-fraction" => val_fraction = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [data_dir, out] = positional.as_slice() else {
        return Err("usage: features DATA_DIR OUT.csv [--weights FILE] [--val-fraction F] [--seed S]".into());
    };
    let kind = BackboneKind::EfficientNetLite0;
    let device = webtune::backend::cpu_device();
    let backbone = Backbone::import(kind, &read_weights_file(&std::fs::read(&weights)?)?, &device)?;
    let spec = kind.spec();
    let mut images = ImageSet::new(spec.clone());
    for (label, name, path) in labelled_files(data_dir)? {
        if let Err(e) = images.add(&label, &name, &std::fs::read(&path)?) {
            eprintln!("skipped {e}");
        }
    }
    // Batches of 8, in file order, as the CLI extracts them.
    let mut cache = FeatureCache::default();
    for batch in images.images().chunks(8) {
        pollster::block_on(cache.extract(&backbone, &spec, &batch.iter().collect::<Vec<_>>()))?;
    }
    let classes: Vec<usize> = images.images().iter().map(|i| images.class_index(&i.label).expect("added above")).collect();
    let split = stratified_split(&classes, images.labels().len(), val_fraction, seed);
    let mut rows = vec!["train"; classes.len()];
    split.val.iter().for_each(|&i| rows[i] = "val");
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    for ((image, class), part) in images.images().iter().zip(&classes).zip(rows) {
        let features = cache.get(image.id).expect("extracted above");
        let values: Vec<String> = features.iter().map(|v| v.to_string()).collect();
        writeln!(file, "{part},{class},{}", values.join(","))?;
    }
    eprintln!("wrote {} rows ({} train, {} val) to {}", classes.len(), split.train.len(), split.val.len(), out.display());
    Ok(())
}

/// `(label, "label/file", path)` for every file one level below a class folder, sorted by that
/// name as the CLI sorts them (the split depends on the order).
fn labelled_files(dir: &Path) -> std::io::Result<Vec<(String, String, PathBuf)>> {
    let mut files = Vec::new();
    for class in std::fs::read_dir(dir)? {
        let class = class?.path();
        if !class.is_dir() {
            continue;
        }
        let label = class.file_name().unwrap_or_default().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&class)? {
            let path = file?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if path.is_file() && !name.starts_with('.') {
                files.push((label.clone(), format!("{label}/{name}"), path));
            }
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(files)
}
