//! `webtune train`: the page's recipe on a labelled folder or zip. The same loop as the page's
//! worker — start the session, step it until it finishes — with progress bars instead of events
//! posted to a page.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use webtune::data::PreparedImage;
use webtune::train::EpochReport;
use webtune::{Event, Phase, Recipe, Result, Session};

use crate::args::{BackboneArgs, BackendArgs, read, write};
use crate::labelled_files::{LabelledFile, ReadLimits, list_dataset};

/// Pictures or views per step: big enough to batch, small enough for a lively progress bar.
const BUDGET: usize = 8;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Folder whose sub-folders are the classes, or a zip of such folders.
    data_dir: PathBuf,
    /// Where to write the model (.safetensors).
    #[arg(long, short, default_value = "model.safetensors")]
    out: PathBuf,
    /// Also write the model in burn's own record format (burnpack), for Rust users.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Also write the whole inference graph as ONNX, for onnxruntime (-web).
    #[arg(long, value_name = "FILE")]
    onnx: Option<PathBuf>,
    #[command(flatten)]
    backbone: BackboneArgs,
    #[command(flatten)]
    backend: BackendArgs,
    /// The whole recipe as JSON (as the page's settings are; missing fields take the defaults).
    /// The options below override it.
    #[arg(long, value_name = "FILE")]
    recipe: Option<PathBuf>,
    /// Most head epochs [default: the recipe's].
    #[arg(long)]
    epochs: Option<usize>,
    /// Head learning rate [default: the recipe's].
    #[arg(long)]
    lr: Option<f64>,
    /// Units of a hidden layer in the head (0: a single linear layer).
    #[arg(long)]
    hidden: Option<usize>,
    /// Share of each class held out for validation.
    #[arg(long)]
    val_fraction: Option<f64>,
    /// Seed for the split, initial weights, augmentation and batch order.
    #[arg(long)]
    seed: Option<u64>,
    /// Backbone blocks to fine-tune after the head (0 = head only) [default: the recommendation].
    #[arg(long)]
    unfreeze: Option<usize>,
    /// Most fine-tuning epochs (early stopping may end sooner).
    #[arg(long)]
    fine_epochs: Option<usize>,
    /// Phase 2's step budget: with many pictures, fewer epochs (at least 3) to take about this
    /// many steps; 0: none.
    #[arg(long)]
    fine_steps: Option<usize>,
    /// Phase 2's (peak) head learning rate; the unfrozen blocks get a tenth of it.
    #[arg(long)]
    fine_lr: Option<f64>,
    /// Views cached per training image for fine-tuning: the center view, then augmented ones.
    #[arg(long)]
    views: Option<usize>,
    /// Turn augmentation off.
    #[arg(long)]
    no_augment: bool,
    /// No horizontal flips (for tasks where left and right matter: digits, text, arrows).
    #[arg(long)]
    no_flip: bool,
    /// Print a JSON summary instead of progress lines.
    #[arg(long)]
    json: bool,
}

impl TrainArgs {
    fn recipe(&self) -> Result<Recipe> {
        let mut r = match &self.recipe {
            Some(path) => Recipe::from_json(&String::from_utf8_lossy(&read(path)?)).map_err(|e| e.in_file(&path.display().to_string()))?,
            None => Recipe::default(),
        };
        set(&mut r.head.epochs, self.epochs);
        set(&mut r.head.learning_rate, self.lr);
        set(&mut r.head.hidden_units, self.hidden);
        set(&mut r.head.val_fraction, self.val_fraction);
        set(&mut r.head.seed, self.seed);
        set(&mut r.fine_tune.epochs, self.fine_epochs);
        set(&mut r.fine_tune.steps, self.fine_steps);
        set(&mut r.fine_tune.learning_rate, self.fine_lr);
        set(&mut r.views_per_image, self.views);
        if self.unfreeze.is_some() {
            r.unfreeze = self.unfreeze;
        }
        r.augmentation.enabled &= !self.no_augment;
        r.augmentation.horizontal_flip &= !self.no_flip;
        Ok(r)
    }
}

/// Files waiting to be decoded together: full at two per thread, or at 64 MB of file bytes
/// (a few large photos are a batch of their own).
#[derive(Default)]
struct DecodeBatch {
    files: Vec<LabelledFile>,
    bytes: usize,
}

impl DecodeBatch {
    const MAX_BYTES: usize = 64 << 20;

    /// Adds `file`; hands back the whole batch once it is full.
    fn push(&mut self, file: LabelledFile) -> Option<Vec<LabelledFile>> {
        self.bytes += file.bytes.len();
        self.files.push(file);
        let full = self.files.len() >= 2 * rayon::current_num_threads() || self.bytes >= Self::MAX_BYTES;
        full.then(|| {
            self.bytes = 0;
            std::mem::take(&mut self.files)
        })
    }
}

/// Overrides `field` with a value given on the command line.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// Wall time of each stage, for the summary.
#[derive(Default)]
struct Times {
    features: f64,
    head: f64,
    cache: f64,
    fine: f64,
}

pub fn train(a: TrainArgs) -> Result<()> {
    let started = Instant::now();
    let recipe = a.recipe()?;
    let (weights, weights_path) = a.backbone.read_weights()?;
    let (device, backend_name) = a.backend.device()?;
    let mut session = Session::new(a.backbone.backbone, &weights, device).map_err(|e| e.in_file(&weights_path))?;
    let log = |line: String| {
        if !a.json {
            eprintln!("{line}")
        }
    };
    // Files are read in path order a few at a time, decoded on every core, and added in path
    // order (the same ids, split and model as one at a time); the session keeps the decoded
    // pictures only, so at most one batch of file bytes is held.
    let listing = list_dataset(&a.data_dir, &ReadLimits::default())?;
    log(format!("backbone {} ({weights_path})", a.backbone.backbone));
    let bar = progress(a.json, listing.len(), "decoding");
    let spec = session.spec().clone();
    let mut batch = DecodeBatch::default();
    let mut add = |files: Vec<LabelledFile>| {
        let prepared: Vec<_> = files.par_iter().map(|f| PreparedImage::new(&spec, &f.label, &f.name, &f.bytes)).collect();
        for picture in prepared {
            if let Err(e) = picture.and_then(|p| session.add_prepared_image(p)) {
                bar.suspend(|| eprintln!("skipped {e}"));
            }
            bar.inc(1);
        }
    };
    let skipped = listing.read_each(|file| {
        if let Some(full) = batch.push(file) {
            add(full);
        }
        Ok(())
    })?;
    add(batch.files);
    bar.finish_and_clear();
    for line in skipped {
        eprintln!("skipped {line}");
    }
    let summary = session.summary();
    log(format!("{} images in {} classes", summary.images, summary.classes.len()));
    let recommendation = session.recommendation();
    log(format!("recommendation: {}", recommendation.reason));

    let plan = session.start(recipe.clone())?;
    let mut times = Times::default();
    let mut stage_start = Instant::now();
    let mut bar = progress(a.json, plan.pending_features, "features");
    let (mut head_val_accuracy, mut cache_bytes, mut evaluation) = (None, 0, None);
    let outcome = loop {
        let event = pollster::block_on(session.step(BUDGET))?;
        let elapsed = stage_start.elapsed().as_secs_f64() * 1e3;
        match event {
            Event::Features { done, .. } => {
                bar.set_position(done as u64);
                times.features = elapsed;
            }
            Event::Split { train, val, notes, .. } => {
                bar.finish_and_clear();
                log(format!("features: {:.1} s; split {train} train / {val} validation", times.features / 1e3));
                notes.into_iter().for_each(&log);
                bar = progress(a.json, recipe.head.epochs, "head epochs");
                stage_start = Instant::now();
            }
            Event::Epoch { phase, report } => {
                let name = if phase == Phase::Head { "head" } else { "fine-tune" };
                bar.suspend(|| log(epoch_line(name, &report)));
                bar.inc(1);
                if phase == Phase::Head {
                    times.head = elapsed;
                    // Early stopping keeps the best epoch's head, not the last one's.
                    head_val_accuracy = report.best_val_accuracy.or(report.val_accuracy);
                } else {
                    times.fine = elapsed;
                }
                if report.done {
                    bar.finish_and_clear();
                    stage_start = Instant::now();
                }
            }
            Event::Cache { done, total, bytes, note } => {
                if done <= BUDGET {
                    note.into_iter().for_each(&log);
                    bar = progress(a.json, total, "caching views");
                }
                bar.set_position(done as u64);
                times.cache = elapsed;
                cache_bytes = bytes;
                if done == total {
                    bar.finish_and_clear();
                    log(format!("cached views in {:.1} s ({:.1} MB)", times.cache / 1e3, bytes as f64 / 1e6));
                    bar = progress(a.json, recipe.fine_tune.epochs, "fine-tune epochs");
                    stage_start = Instant::now();
                }
            }
            Event::Evaluated { evaluation: e } => evaluation = Some(e),
            Event::Finished { outcome } => break outcome,
        }
    };
    bar.finish_and_clear();
    match outcome.best_epoch {
        Some(0) => {
            log("fine-tuning was less accurate on validation than the head alone: kept the phase-1 model".into())
        }
        Some(epoch) if outcome.stopped_early => log(format!("early stopping kept fine-tune epoch {epoch}")),
        _ => {}
    }

    let model = session.trained_model()?;
    write(&a.out, &pollster::block_on(model.to_safetensors())?)?;
    if let Some(path) = &a.onnx {
        write(path, &pollster::block_on(model.to_onnx()).map_err(|e| e.in_file(&path.display().to_string()))?)?;
    }
    if let Some(path) = &a.record {
        write(path, &model.to_burn_record()?)?;
    }
    let accuracy = evaluation.as_ref().map(|e| e.accuracy);
    if a.json {
        let summary = serde_json::json!({
            "images": summary.images,
            "backend": backend_name,
            "unfreeze": plan.unfreeze,
            "headValAccuracy": head_val_accuracy,
            // The kept model's accuracy once phase 2 ran (its best epoch, or the head when that
            // was more accurate: `outcome.bestEpoch` 0).
            "fineValAccuracy": (outcome.fine_tuned > 0 || outcome.best_epoch.is_some()).then_some(accuracy).flatten(),
            "featureMs": times.features, "headMs": times.head, "cacheMs": times.cache, "fineMs": times.fine,
            "cacheBytes": cache_bytes,
            "totalMs": started.elapsed().as_secs_f64() * 1e3,
            "outcome": outcome,
            "evaluation": evaluation,
        });
        println!("{summary}");
    } else {
        match &evaluation {
            Some(e) => println!("validation accuracy {:.3} on {} images; wrote {}", e.accuracy, e.images, a.out.display()),
            None => println!("no validation pictures; wrote {}", a.out.display()),
        }
    }
    Ok(())
}

/// A progress bar with ETA on stderr; hidden with `--json` or when stderr is not a terminal
/// (indicatif draws nothing then), so logs and pipes stay clean.
fn progress(hidden: bool, total: usize, what: &str) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>16} [{bar:30}] {pos}/{len} ({elapsed} elapsed, ETA {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn epoch_line(phase: &str, r: &EpochReport) -> String {
    let val = match (r.val_loss, r.val_accuracy) {
        (Some(l), Some(a)) => format!(", val loss {l:.4} acc {a:.3}"),
        _ => String::new(),
    };
    format!("{phase} epoch {}/{}: loss {:.4} acc {:.3}{val}", r.epoch, r.epochs, r.train_loss, r.train_accuracy)
}
