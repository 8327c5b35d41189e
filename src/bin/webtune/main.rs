//! The native `webtune` command: the same core as the page, on the command line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod confusion_png;
mod labelled_files;

use burn::module::Module;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use labelled_files::read_labelled_files;
use serde::Serialize;
use burn::tensor::Device;
use webtune::backend::{cpu_device, gpu_device};
use webtune::data::{decode_image, resize_and_center_crop, to_input_tensor};
use webtune::model::{Backbone, BackboneKind, ImageNetClassifier, ImageNetNames};
use webtune::data::Augmentation;
use webtune::train::{EpochReport, FineTuneOptions, HeadOptions, evaluate, softmax};
use webtune::weights::{load_params, read_weights_file, write_safetensors};
use webtune::{Error, Result, TrainedModel, Tuner};

/// Which backbone, and where its pretrained weights are.
#[derive(clap::Args)]
struct BackboneArgs {
    /// Backbone architecture: efficientnet_lite0, mobilenet_v2, resnet18 or resnet50.
    #[arg(long, default_value = "efficientnet_lite0", value_parser = BackboneKind::from_name)]
    backbone: BackboneKind,
    /// Backbone weights: safetensors (torchvision/timm/lukemelas names) or a PyTorch .pth/.pt
    /// state dict [default: www/public/weights/<backbone>.safetensors, as the setup writes it].
    #[arg(long, env = "WEBTUNE_WEIGHTS")]
    weights: Option<PathBuf>,
}

impl BackboneArgs {
    fn weights_path(&self) -> PathBuf {
        self.weights.clone().unwrap_or_else(|| format!("www/public/weights/{}.safetensors", self.backbone.name()).into())
    }
}

/// Where the computation runs.
#[derive(clap::Args)]
struct BackendArgs {
    /// cpu: burn's CPU backend (flex). wgpu: the GPU through wgpu (Vulkan, Metal or DX12); an
    /// error without an adapter. auto: wgpu on a hardware GPU, else the CPU.
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    backend: BackendChoice,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackendChoice {
    Cpu,
    Wgpu,
    Auto,
}

impl BackendArgs {
    /// Initialises the chosen device and says which one it is on stderr (stdout may be JSON).
    fn device(&self) -> Result<(Device, &'static str)> {
        let one_line = |e: Error| e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        let (device, name, line) = match self.backend {
            BackendChoice::Cpu => (cpu_device(), "cpu", "cpu (flex)".to_string()),
            BackendChoice::Wgpu => {
                let gpu = pollster::block_on(gpu_device())
                    .map_err(|e| Error::Backend(format!("no GPU adapter found for --backend wgpu: {}", one_line(e))))?;
                (gpu.device, "wgpu", format!("wgpu ({})", gpu.adapter))
            }
            // A software adapter (lavapipe, llvmpipe) is several times slower than burn's CPU
            // backend, so auto only takes real hardware; --backend wgpu takes any adapter.
            BackendChoice::Auto => match pollster::block_on(gpu_device()) {
                Ok(gpu) if !gpu.software => (gpu.device, "wgpu", format!("wgpu ({})", gpu.adapter)),
                Ok(gpu) => (cpu_device(), "cpu", format!("cpu (flex; the only GPU adapter, {}, is a software one)", gpu.adapter)),
                Err(e) => (cpu_device(), "cpu", format!("cpu (flex; no GPU adapter: {})", one_line(e))),
            },
        };
        eprintln!("backend: {line}");
        Ok((device, name))
    }
}

#[derive(Parser)]
#[command(name = "webtune", version, about = "Fine-tune image classifiers on your own pictures")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert backbone weights (a PyTorch .pth/.pt in either torch.save format, or safetensors,
    /// with torchvision, timm or lukemelas names) into the safetensors file
    /// the page loads, checking that every tensor fits the architecture.
    Convert {
        /// Backbone architecture the file is for.
        #[arg(long, default_value = "efficientnet_lite0", value_parser = BackboneKind::from_name)]
        backbone: BackboneKind,
        /// Input weights file.
        input: PathBuf,
        /// Output .safetensors file.
        output: PathBuf,
    },
    /// Write randomly initialised backbone weights (burn's default initialisation) with the
    /// original PyTorch names: for trying the pipeline or benchmarking a backbone whose
    /// pretrained file you don't have at hand. Not useful for training real models.
    InitWeights {
        /// Backbone architecture.
        #[arg(long, value_parser = BackboneKind::from_name)]
        backbone: BackboneKind,
        /// Output .safetensors file.
        output: PathBuf,
        /// Seed of the initialisation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// ImageNet top-5 of the pretrained backbone for each image (evaluation preprocessing:
    /// shorter side to 256, center crop 224).
    Imagenet {
        /// Images to classify.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[command(flatten)]
        backbone: BackboneArgs,
        #[command(flatten)]
        backend: BackendArgs,
        /// Print JSON with all 1000 logits per image instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write the preprocessed input batch as raw little-endian f32, NCHW.
        #[arg(long, value_name = "FILE")]
        save_input: Option<PathBuf>,
    },
    /// Train on a folder of class sub-folders with the page's recipe and defaults: the head on
    /// frozen features, then (unless --unfreeze 0) the last backbone blocks.
    Train {
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
        /// Head epochs.
        #[arg(long, default_value_t = HeadOptions::default().epochs)]
        epochs: usize,
        /// Head learning rate; phase 2 uses it as the head's peak rate too.
        #[arg(long, default_value_t = HeadOptions::default().learning_rate)]
        lr: f64,
        /// Units of a hidden layer in the head (0: a single linear layer).
        #[arg(long, default_value_t = HeadOptions::default().hidden_units)]
        hidden: usize,
        /// Share of each class held out for validation.
        #[arg(long, default_value_t = HeadOptions::default().val_fraction)]
        val_fraction: f64,
        /// Seed for the split, initial weights, augmentation and batch order.
        #[arg(long, default_value_t = HeadOptions::default().seed)]
        seed: u64,
        /// Backbone blocks to fine-tune after the head (0 = head only); default: the recommendation.
        #[arg(long)]
        unfreeze: Option<usize>,
        /// Most fine-tuning epochs (early stopping may end sooner).
        #[arg(long, default_value_t = FineTuneOptions::default().epochs)]
        fine_epochs: usize,
        /// Augmented views cached per training image for fine-tuning.
        #[arg(long, default_value_t = 2)]
        views: usize,
        /// Turn augmentation off.
        #[arg(long)]
        no_augment: bool,
        /// No horizontal flips (for tasks where left and right matter: digits, text, arrows).
        #[arg(long)]
        no_flip: bool,
        /// Print a JSON summary instead of progress lines.
        #[arg(long)]
        json: bool,
    },
    /// Accuracy, per-class precision and recall, and the confusion matrix of an exported model
    /// on a folder of class sub-folders (labels must match the model's).
    Eval {
        /// The exported model.
        model: PathBuf,
        /// Folder whose sub-folders are the classes, or a zip of such folders.
        data_dir: PathBuf,
        /// Print the evaluation as JSON.
        #[arg(long)]
        json: bool,
        /// Also draw the confusion matrix into this PNG file.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Convert a model exported by webtune (.safetensors) into another format.
    Export {
        /// The exported model.
        model: PathBuf,
        /// Write the whole inference graph as ONNX (opset 17) to this file.
        #[arg(long, value_name = "FILE", required = true)]
        onnx: PathBuf,
    },
    /// Classify images with a model exported by webtune (.safetensors).
    Predict {
        /// The exported model.
        model: PathBuf,
        /// Images to classify.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// How many classes to show per image.
        #[arg(long, default_value_t = 3)]
        top: usize,
        /// Print JSON: [{file, predictions: [{label, probability}]}] with every class.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        backend: BackendArgs,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webtune: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
    }
    std::fs::write(path, bytes).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Convert { backbone, input, output } => convert(backbone, &input, &output),
        Command::InitWeights { backbone, output, seed } => {
            let device = cpu_device();
            device.seed(seed);
            let tensors = pollster::block_on(Backbone::init(backbone, &device).to_tensors())?;
            let metadata = HashMap::from([("backbone".to_string(), backbone.name().to_string()), ("source".to_string(), "random".to_string())]);
            write(&output, &write_safetensors(&tensors, metadata)?)?;
            println!("wrote {} (random {backbone}, {} tensors)", output.display(), tensors.len());
            Ok(())
        }
        Command::Imagenet { images, backbone, backend, json, save_input } => imagenet(&images, &backbone, &backend, json, save_input.as_deref()),
        Command::Predict { model, images, top, json, backend } => predict(&model, &images, top, json, &backend),
        Command::Eval { model, data_dir, json, png, backend } => eval(&model, &data_dir, json, png.as_deref(), &backend),
        Command::Export { model, onnx } => export(&model, &onnx),
        Command::Train { data_dir, out, record, onnx, backbone, backend, epochs, lr, hidden, val_fraction, seed, unfreeze, fine_epochs, views, no_augment, no_flip, json } => {
            let head = HeadOptions { epochs, learning_rate: lr, hidden_units: hidden, val_fraction, seed, ..HeadOptions::default() };
            let fine = FineTuneOptions { epochs: fine_epochs, learning_rate: lr, seed, ..FineTuneOptions::default() };
            let augmentation = Augmentation { enabled: !no_augment, horizontal_flip: !no_flip, ..Augmentation::default() };
            let outputs = Outputs { safetensors: out, record, onnx };
            train(&data_dir, &outputs, &backbone, &backend, head, unfreeze, fine, augmentation, views, json)
        }
    }
}

fn convert(kind: BackboneKind, input: &Path, output: &Path) -> Result<()> {
    let tensors = read_weights_file(&read(input)?).map_err(|e| Error::Weights(format!("{}: {e}", input.display())))?;
    // Loading proves the file fits the architecture before anything is written.
    Backbone::import(kind, &tensors, &cpu_device()).map_err(|e| Error::Weights(format!("{}: {e}", input.display())))?;
    let spec = kind.spec();
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("backbone".to_string(), spec.name.clone()),
        ("source".to_string(), input.file_name().unwrap_or_default().to_string_lossy().into_owned()),
    ]);
    let bytes = write_safetensors(&tensors, metadata)?;
    write(output, &bytes)?;
    println!("wrote {} ({} tensors, {:.1} MB)", output.display(), tensors.len(), bytes.len() as f64 / 1e6);
    Ok(())
}

#[derive(Serialize)]
struct ImageNetResult {
    file: String,
    top5: Vec<(usize, f32)>,
    logits: Vec<f32>,
}

fn imagenet(images: &[PathBuf], backbone: &BackboneArgs, backend: &BackendArgs, json: bool, save_input: Option<&Path>) -> Result<()> {
    let (device, _) = backend.device()?;
    let kind = backbone.backbone;
    let path = backbone.weights_path();
    let in_file = |e: Error| Error::Weights(format!("{}: {e}", path.display()));
    let tensors = read_weights_file(&read(&path)?).map_err(in_file)?;
    let model = load_params(ImageNetClassifier::new(kind, &device), &tensors, &ImageNetNames { kind }).map_err(in_file)?;
    let spec = kind.spec();
    let crops = images
        .iter()
        .map(|path| Ok(resize_and_center_crop(&decode_image(&path.display().to_string(), &read(path)?)?, &spec)))
        .collect::<Result<Vec<_>>>()?;
    let input = to_input_tensor(&crops.iter().collect::<Vec<_>>(), &spec, &device);
    if let Some(path) = save_input {
        let values = input.clone().into_data().try_to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))?;
        write(path, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    }
    let logits = model.forward(input).into_data().try_to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))?;
    let results: Vec<ImageNetResult> = images
        .iter()
        .zip(logits.chunks_exact(1000))
        .map(|(path, row)| {
            let mut order: Vec<usize> = (0..1000).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            ImageNetResult { file: path.display().to_string(), top5: order[..5].iter().map(|&i| (i, row[i])).collect(), logits: row.to_vec() }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string(&results).expect("plain data serialises"));
    } else {
        for result in &results {
            let probabilities = softmax(&result.logits);
            println!("{}", result.file);
            for (class, logit) in &result.top5 {
                println!("  class {class:>4}  p={:.3}  logit={logit:.3}", probabilities[*class]);
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct PredictResult {
    file: String,
    predictions: Vec<webtune::Prediction>,
}

fn export(model_path: &Path, onnx: &Path) -> Result<()> {
    // Writing ONNX is bookkeeping over the weights: the CPU backend is all it needs.
    let model = TrainedModel::from_safetensors(&read(model_path)?, &cpu_device())
        .map_err(|e| Error::Weights(format!("{}: {e}", model_path.display())))?;
    let bytes = to_onnx(&model, onnx)?;
    write(onnx, &bytes)?;
    println!("wrote {} ({:.1} MB)", onnx.display(), bytes.len() as f64 / 1e6);
    Ok(())
}

/// The ONNX export, with errors naming the file it was meant for.
fn to_onnx(model: &TrainedModel, path: &Path) -> Result<Vec<u8>> {
    pollster::block_on(model.to_onnx()).map_err(|e| Error::Weights(format!("{}: {e}", path.display())))
}

fn load_model(path: &Path, backend: &BackendArgs) -> Result<TrainedModel> {
    let (device, _) = backend.device()?;
    TrainedModel::from_safetensors(&read(path)?, &device).map_err(|e| Error::Weights(format!("{}: {e}", path.display())))
}

fn eval(model_path: &Path, data_dir: &Path, json: bool, png: Option<&Path>, backend: &BackendArgs) -> Result<()> {
    let model = load_model(model_path, backend)?;
    let (mut logits, mut targets, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for file in read_labelled_files(data_dir)? {
        let Some(target) = model.labels.iter().position(|l| *l == file.label) else {
            let label = &file.label;
            return Err(Error::Dataset(format!("{}: class \"{label}\" is not one of the model's ({})", data_dir.display(), model.labels.join(", "))));
        };
        let name = file.name;
        let image = match decode_image(&name, &file.bytes) {
            Ok(image) => resize_and_center_crop(&image, &model.spec),
            Err(e) => {
                eprintln!("skipped {e}");
                continue;
            }
        };
        logits.extend(pollster::block_on(model.logits(&[&image]))?);
        targets.push(target);
        names.push((names.len() as u32, name));
    }
    let e = evaluate(&logits, &model.labels, &targets, &names);
    if let Some(path) = png {
        let picture = confusion_png::render(&model.labels, &e.confusion, e.accuracy, e.images);
        let mut bytes = std::io::Cursor::new(Vec::new());
        picture.write_to(&mut bytes, image::ImageFormat::Png).expect("an RGB image in memory encodes as PNG");
        write(path, bytes.get_ref())?;
    }
    if json {
        println!("{}", serde_json::to_string(&e).expect("plain data serialises"));
        return Ok(());
    }
    println!("accuracy {:.3} on {} images (loss {:.4})\n", e.accuracy, e.images, e.loss);
    let width = model.labels.iter().map(String::len).max().unwrap_or(5).max(9);
    println!("{:width$}  precision  recall  images", "class");
    for c in &e.classes {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        println!("{:width$}  {:>9}  {:>6}  {:>6}", c.label, pct(c.precision), pct(c.recall), c.support);
    }
    println!("\nconfusion matrix (rows: true class, columns: predicted)");
    println!("{:width$}  {}", "", model.labels.iter().map(|l| format!("{l:>width$}")).collect::<Vec<_>>().join(" "));
    for (label, row) in model.labels.iter().zip(&e.confusion) {
        println!("{label:width$}  {}", row.iter().map(|n| format!("{n:>width$}")).collect::<Vec<_>>().join(" "));
    }
    for m in &e.misclassified {
        println!("misclassified: {} ({} predicted as {}, p={:.3})", m.file_name, m.true_label, m.predicted_label, m.probability);
    }
    Ok(())
}

fn predict(model_path: &Path, images: &[PathBuf], top: usize, json: bool, backend: &BackendArgs) -> Result<()> {
    let model = load_model(model_path, backend)?;
    let mut results = Vec::new();
    for path in images {
        let predictions = pollster::block_on(model.predict_file(&path.display().to_string(), &read(path)?))?;
        results.push(PredictResult { file: path.display().to_string(), predictions });
    }
    if json {
        println!("{}", serde_json::to_string(&results).expect("plain data serialises"));
    } else {
        for result in results {
            let shown: Vec<String> =
                result.predictions.iter().take(top).map(|p| format!("{} {:.3}", p.label, p.probability)).collect();
            println!("{}: {}", result.file, shown.join(", "));
        }
    }
    Ok(())
}

/// Where `train` writes the model.
struct Outputs {
    safetensors: PathBuf,
    record: Option<PathBuf>,
    onnx: Option<PathBuf>,
}

#[allow(clippy::too_many_arguments)]
fn train(
    data_dir: &Path,
    outputs: &Outputs,
    backbone: &BackboneArgs,
    backend: &BackendArgs,
    head: HeadOptions,
    unfreeze: Option<usize>,
    fine: FineTuneOptions,
    augmentation: Augmentation,
    views: usize,
    json: bool,
) -> Result<()> {
    let started = std::time::Instant::now();
    let weights = backbone.weights_path();
    let (device, backend_name) = backend.device()?;
    let mut tuner = Tuner::new(backbone.backbone, &read(&weights)?, device)
        .map_err(|e| Error::Weights(format!("{}: {e}", weights.display())))?;
    let log = |line: String| if !json { eprintln!("{line}") };
    let files = read_labelled_files(data_dir)?;
    log(format!("backbone {} ({})", backbone.backbone, weights.display()));
    let bar = progress(json, files.len(), "decoding");
    for file in files {
        if let Err(e) = tuner.add_image(&file.label, &file.name, &file.bytes) {
            bar.suspend(|| eprintln!("skipped {e}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let summary = tuner.summary();
    log(format!("{} images in {} classes", summary.images, summary.classes.len()));
    let recommendation = tuner.recommendation();
    let unfreeze = unfreeze.unwrap_or(recommendation.unfreeze);
    log(format!("recommendation: {}", recommendation.reason));

    let phase = std::time::Instant::now();
    let to_extract = tuner.pending_features();
    let bar = progress(json, to_extract, "features");
    loop {
        let pending = pollster::block_on(tuner.extract_features(8))?;
        bar.set_position((to_extract - pending) as u64);
        if pending == 0 {
            break;
        }
    }
    bar.finish_and_clear();
    let feature_ms = phase.elapsed().as_secs_f64() * 1e3;
    let head_epochs = head.epochs;
    let split = tuner.start_head(head)?;
    log(format!("features: {:.1} s; split {} train / {} validation", feature_ms / 1e3, split.train, split.val));
    if let Some(note) = &split.note {
        log(note.clone());
    }
    let phase = std::time::Instant::now();
    let mut last = None;
    let bar = progress(json, head_epochs, "head epochs");
    while last.as_ref().is_none_or(|r: &EpochReport| !r.done) {
        let report = pollster::block_on(tuner.train_epoch())?;
        bar.suspend(|| log(epoch_line("head", &report)));
        bar.inc(1);
        last = Some(report);
    }
    bar.finish_and_clear();
    let head_ms = phase.elapsed().as_secs_f64() * 1e3;
    let head_val_accuracy = last.and_then(|r| r.val_accuracy);

    let (mut cache_ms, mut fine_ms, mut cache_bytes) = (0.0, 0.0, 0);
    if unfreeze > 0 {
        let phase = std::time::Instant::now();
        let fine_epochs = fine.epochs;
        let start = tuner.start_fine_tune(FineTuneOptions { unfreeze, ..fine }, augmentation, views)?;
        if let Some(note) = start.note {
            log(note);
        }
        let bar = progress(json, start.total, "caching views");
        loop {
            let cached = pollster::block_on(tuner.cache_views(8))?;
            cache_bytes = cached.bytes;
            bar.set_position(cached.done as u64);
            if cached.done == cached.total {
                break;
            }
        }
        bar.finish_and_clear();
        cache_ms = phase.elapsed().as_secs_f64() * 1e3;
        log(format!("cached views in {:.1} s ({:.1} MB)", cache_ms / 1e3, cache_bytes as f64 / 1e6));
        let phase = std::time::Instant::now();
        let bar = progress(json, fine_epochs, "fine-tune epochs");
        loop {
            let report = pollster::block_on(tuner.fine_tune_epoch())?;
            bar.suspend(|| log(epoch_line("fine-tune", &report)));
            bar.inc(1);
            if report.done {
                break;
            }
        }
        bar.finish_and_clear();
        fine_ms = phase.elapsed().as_secs_f64() * 1e3;
    }
    let evaluation = pollster::block_on(tuner.evaluate())?;
    let model = tuner.trained_model()?;
    let out = &outputs.safetensors;
    write(out, &pollster::block_on(model.to_safetensors())?)?;
    if let Some(path) = &outputs.onnx {
        write(path, &to_onnx(&model, path)?)?;
    }
    if let Some(path) = &outputs.record {
        // A burn record reads tensors synchronously: fine natively on either backend (only the
        // browser's WebGPU cannot).
        let bytes = model.classifier.clone().into_record().into_bytes().map_err(|e| Error::Weights(format!("burn record: {e}")))?;
        write(path, &bytes)?;
    }
    if json {
        let summary = serde_json::json!({
            "images": summary.images,
            "backend": backend_name,
            "unfreeze": unfreeze,
            "headValAccuracy": head_val_accuracy,
            "fineValAccuracy": (unfreeze > 0).then_some(evaluation.accuracy),
            "featureMs": feature_ms, "headMs": head_ms, "cacheMs": cache_ms, "fineMs": fine_ms,
            "cacheBytes": cache_bytes,
            "totalMs": started.elapsed().as_secs_f64() * 1e3,
            "evaluation": evaluation,
        });
        println!("{summary}");
    } else {
        println!("validation accuracy {:.3} on {} images; wrote {}", evaluation.accuracy, evaluation.images, out.display());
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
