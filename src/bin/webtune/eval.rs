//! `webtune eval`: an exported model on a labelled folder or zip.

use std::path::PathBuf;

use webtune::Result;
use webtune::tools::FileEvaluation;

use crate::args::{BackendArgs, load_model, write};
use crate::confusion_png;
use crate::labelled_files::{ReadLimits, list_dataset};

#[derive(clap::Args)]
pub struct EvalArgs {
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
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let model = load_model(&a.model, &a.backend)?;
    // Each file is read just before it is classified and dropped after: only logits are kept.
    let mut evaluation = FileEvaluation::new(&model);
    let data_dir = a.data_dir.display().to_string();
    let unread = list_dataset(&a.data_dir, &ReadLimits::default())?.read_each(|file| {
        pollster::block_on(evaluation.add(&file.label, &file.name, &file.bytes)).map_err(|e| e.in_file(&data_dir))
    })?;
    let (e, undecoded) = evaluation.finish();
    for line in unread {
        eprintln!("skipped {line}");
    }
    for error in undecoded {
        eprintln!("skipped {error}");
    }
    if let Some(path) = &a.png {
        let picture = confusion_png::render(&model.labels, &e.confusion, e.accuracy, e.images);
        let mut bytes = std::io::Cursor::new(Vec::new());
        picture.write_to(&mut bytes, image::ImageFormat::Png).expect("an RGB image in memory encodes as PNG");
        write(path, bytes.get_ref())?;
    }
    if a.json {
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
