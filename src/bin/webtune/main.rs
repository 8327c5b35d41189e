//! The native `webtune` command: the same core as the page, on the command line. One file per
//! subcommand, each a thin shell over the crate's public API ([`webtune::Session`],
//! [`webtune::tools`], [`webtune::TrainedModel`]).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod args;
mod confusion_png;
mod convert;
mod eval;
mod export;
mod imagenet;
mod labelled_files;
mod predict;
mod train;
mod weights;

#[derive(Parser)]
#[command(
    name = "webtune",
    version,
    about = "Fine-tune image classifiers on your own pictures",
    after_help = "Exit status: 0 success, 1 internal error, 2 bad settings or arguments, 3 unreadable file, \
                  4 weights that do not fit, 5 dataset not trainable, 6 training failed, 7 GPU lost, 8 out of memory."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert backbone weights (a PyTorch .pth/.pt in either torch.save format, or safetensors,
    /// with torchvision, timm or lukemelas names) into the safetensors file
    /// the page loads, checking that every tensor fits the architecture.
    Convert(convert::ConvertArgs),
    /// Write randomly initialised backbone weights (burn's default initialisation) with the
    /// original PyTorch names: for trying the pipeline or benchmarking a backbone whose
    /// pretrained file you don't have at hand. Not useful for training real models.
    InitWeights(convert::InitWeightsArgs),
    /// ImageNet top-5 of the pretrained backbone for each image (evaluation preprocessing:
    /// shorter side to 256, center crop 224).
    Imagenet(imagenet::ImageNetArgs),
    /// Train on a folder of class sub-folders with the page's recipe and defaults: the head on
    /// frozen features, then (unless --unfreeze 0) the last backbone blocks.
    Train(train::TrainArgs),
    /// Accuracy, per-class precision and recall, and the confusion matrix of an exported model
    /// on a folder of class sub-folders (labels must match the model's).
    Eval(eval::EvalArgs),
    /// Convert a model exported by webtune (.safetensors) into another format.
    Export(export::ExportArgs),
    /// Classify images with a model exported by webtune (.safetensors).
    Predict(predict::PredictArgs),
    /// The backbones' pretrained weights: `fetch` downloads the default backbone's, `path` says
    /// where the CLI looks.
    #[command(subcommand)]
    Weights(weights::WeightsCommand),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Convert(a) => convert::convert(a),
        Command::InitWeights(a) => convert::init_weights(a),
        Command::Imagenet(a) => imagenet::imagenet(a),
        Command::Train(a) => train::train(a),
        Command::Eval(a) => eval::eval(a),
        Command::Export(a) => export::export(a),
        Command::Predict(a) => predict::predict(a),
        Command::Weights(c) => weights::weights(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webtune: {e}");
            ExitCode::from(e.kind().exit_code())
        }
    }
}
