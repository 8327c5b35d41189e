//! The `webtune` binary on generated data: every command, with good and bad input. Errors are one
//! line naming the file and the reason, with a non-zero exit code.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn webtune(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_webtune")).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A class folder of generated pictures plus one broken file.
fn write_dataset(dir: &Path, per_class: usize) {
    for (label, name, bytes) in common::generated_dataset(per_class, 3) {
        std::fs::create_dir_all(dir.join(&label)).unwrap();
        std::fs::write(dir.join(&label).join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("disc").join("broken.png"), b"not a png").unwrap();
}

#[test]
fn train_then_predict_on_a_class_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_dataset(&data, 6);
    let model = tmp.path().join("model.safetensors");
    let record = tmp.path().join("model.bpk");
    let onnx = tmp.path().join("model.onnx");
    let out = webtune(&[
        "train".as_ref(),
        data.as_os_str(),
        "--weights".as_ref(),
        common::legacy_weights().as_os_str(),
        "--out".as_ref(),
        model.as_os_str(),
        "--epochs".as_ref(),
        "15".as_ref(),
        "--lr".as_ref(),
        "0.003".as_ref(),
        "--unfreeze".as_ref(),
        "1".as_ref(),
        "--fine-epochs".as_ref(),
        "1".as_ref(),
        "--views".as_ref(),
        "1".as_ref(),
        "--json".as_ref(),
        "--record".as_ref(),
        record.as_os_str(),
        "--onnx".as_ref(),
        onnx.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("skipped disc/broken.png: "), "the broken file is named: {}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["images"], 18);
    assert_eq!(summary["unfreeze"], 1);
    assert!(summary["fineValAccuracy"].as_f64().is_some());
    assert_eq!(summary["evaluation"]["confusion"].as_array().unwrap().len(), 3);

    let out = webtune(&["eval".as_ref(), model.as_os_str(), data.as_os_str(), "--json".as_ref()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let evaluation: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let confusion: Vec<u64> = evaluation["confusion"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(|n| n.as_u64().unwrap())).collect();
    assert_eq!(confusion.iter().sum::<u64>(), 18, "every readable picture is counted once");
    let out = webtune(&["eval".as_ref(), model.as_os_str(), data.as_os_str()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("accuracy ") && table.contains("confusion matrix (rows: true class"), "{table}");

    // The burn record loads as README's snippet shows and predicts exactly what the .safetensors does.
    let from_safetensors = webtune::TrainedModel::from_safetensors(&std::fs::read(&model).unwrap(), &burn::tensor::Device::flex()).unwrap();
    let from_record = {
        use burn::module::Module;
        use webtune::model::{BackboneKind, Classifier, HeadConfig};
        let device = burn::tensor::Device::flex();
        let kind = BackboneKind::EfficientNetLite0;
        Classifier::new(kind, &HeadConfig::new(kind.features(), 3), &device).load_file(&record)
    };
    let picture = webtune::data::resize_and_center_crop(&common::generated_image("stripes", &mut rand::SeedableRng::seed_from_u64(4)), &from_safetensors.spec);
    let input = webtune::data::to_input_tensor(&[&picture], &from_safetensors.spec, &burn::tensor::Device::flex());
    assert_eq!(from_record.forward(input.clone()).into_data(), from_safetensors.classifier.forward(input).into_data());
    // The ONNX file is the same model (tests/onnx.rs runs such files in onnxruntime).
    let from_onnx = std::fs::read(&onnx).unwrap();
    assert_eq!(from_onnx, pollster::block_on(from_safetensors.to_onnx()).unwrap());

    let fresh = tmp.path().join("fresh.png");
    let (label, _, bytes) = &common::generated_dataset(1, 50)[1];
    std::fs::write(&fresh, bytes).unwrap();
    let out = webtune(&["predict".as_ref(), model.as_os_str(), fresh.as_os_str(), "--json".as_ref()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let predictions = results[0]["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 3);
    let total: f64 = predictions.iter().map(|p| p["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4);
    assert!(common::CLASSES.contains(&predictions[0]["label"].as_str().unwrap()), "{label}: {predictions:?}");
}

#[test]
fn a_zip_of_class_folders_trains_like_the_folder() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("pets.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (label, name, bytes) in common::generated_dataset(3, 8) {
        // Under one root folder, as "compress this folder" makes it, plus macOS clutter.
        zip.start_file(format!("pets/{label}/{name}"), options).unwrap();
        zip.write_all(&bytes).unwrap();
        zip.start_file(format!("__MACOSX/pets/{label}/._{name}"), options).unwrap();
        zip.write_all(b"resource fork").unwrap();
    }
    zip.start_file("pets/.DS_Store", options).unwrap();
    zip.write_all(b"finder").unwrap();
    zip.finish().unwrap();

    let model = tmp.path().join("m.safetensors");
    let weights = common::legacy_weights();
    let out = webtune(&[
        "train".as_ref(), archive.as_os_str(), "--weights".as_ref(), weights.as_os_str(), "--out".as_ref(), model.as_os_str(),
        "--epochs".as_ref(), "2".as_ref(), "--unfreeze".as_ref(), "0".as_ref(), "--json".as_ref(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["images"], 9, "three classes of three, clutter ignored");
    let out = webtune(&["eval".as_ref(), model.as_os_str(), archive.as_os_str(), "--json".as_ref()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let evaluation: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(evaluation["images"], 9);

    let not_zip = tmp.path().join("notes.txt");
    std::fs::write(&not_zip, "hello").unwrap();
    let out = webtune(&["train".as_ref(), not_zip.as_os_str(), "--weights".as_ref(), weights.as_os_str()]);
    assert!(stderr(&out).contains("notes.txt: not a folder or a readable zip file"), "{}", stderr(&out));
}

#[test]
fn bad_input_is_one_line_with_the_file_and_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.safetensors");
    std::fs::write(&junk, b"junk").unwrap();
    let picture = tmp.path().join("pic.png");
    std::fs::write(&picture, common::png(&common::generated_image("disc", &mut rand::SeedableRng::seed_from_u64(1)))).unwrap();
    let missing = tmp.path().join("missing.png");
    let weights = common::legacy_weights();
    let out_file = tmp.path().join("o");

    let cases: Vec<(Vec<&std::ffi::OsStr>, &str)> = vec![
        (vec!["predict".as_ref(), junk.as_os_str(), picture.as_os_str()], "junk.safetensors: not a valid safetensors file"),
        (vec!["convert".as_ref(), junk.as_os_str(), out_file.as_os_str()], "not a weights file"),
        (
            vec!["imagenet".as_ref(), "--weights".as_ref(), weights.as_os_str(), junk.as_os_str()],
            "junk.safetensors: not a supported image",
        ),
        (
            vec!["imagenet".as_ref(), "--weights".as_ref(), weights.as_os_str(), missing.as_os_str()],
            "missing.png: No such file",
        ),
        (vec!["train".as_ref(), missing.as_os_str(), "--weights".as_ref(), weights.as_os_str()], "missing.png: No such file"),
    ];
    for (args, expected) in cases {
        let out = webtune(&args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.starts_with("webtune: ") && err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    // A folder with one class only: the dataset problem, in words.
    let one = tmp.path().join("one");
    std::fs::create_dir_all(one.join("cats")).unwrap();
    std::fs::copy(&picture, one.join("cats").join("a.png")).unwrap();
    let out = webtune(&["train".as_ref(), one.as_os_str(), "--weights".as_ref(), common::legacy_weights().as_os_str()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("only one class (\"cats\")"), "{}", stderr(&out));
    // Unknown flags are clap's usage error (exit code 2).
    let out = webtune(&["train".as_ref(), "--no-such-flag".as_ref()]);
    assert_eq!(out.status.code(), Some(2));
}
