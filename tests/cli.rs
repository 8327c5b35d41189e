//! The `webtune` binary on generated data: every command, with good and bad input. Errors are one
//! line naming the file and the reason, with a non-zero exit code. Commands that compute say which
//! backend they run on, first, on stderr.

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

    let png = tmp.path().join("plots/confusion.png");
    let out = webtune(&["eval".as_ref(), model.as_os_str(), data.as_os_str(), "--json".as_ref(), "--png".as_ref(), png.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let evaluation: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<Vec<u64>> = evaluation["confusion"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect()).collect();
    assert_eq!(rows.iter().flatten().sum::<u64>(), 18, "every readable picture is counted once");
    check_confusion_png(&png, &rows, &evaluation);
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

/// The `eval --png` picture: its size follows from the class count and the longest label, and a
/// cell holding a row's largest count is darker than an empty cell. The layout constants mirror
/// src/bin/webtune/confusion_png.rs: 64 px cells, 16 px glyphs, 8 px padding, an 8 px caption.
fn check_confusion_png(path: &Path, rows: &[Vec<u64>], evaluation: &serde_json::Value) {
    let picture = image::open(path).unwrap().to_rgb8();
    let (cell, glyph, pad) = (64, 16, 8);
    let n = rows.len() as u32;
    let longest = common::CLASSES.iter().map(|l| l.len()).max().unwrap() as u32;
    let title = format!("accuracy {:.3} ({} images)", evaluation["accuracy"].as_f64().unwrap(), evaluation["images"]);
    let label_space = longest * glyph + 2 * pad;
    let grid_y = (glyph + 2 * pad) + (8 + pad) + label_space;
    let width = (label_space + n * cell + pad).max(title.len() as u32 * glyph + 2 * pad).max(36 * 8 + 2 * pad);
    assert_eq!(picture.dimensions(), (width, grid_y + n * cell + pad));
    let luma = |row: usize, col: usize| {
        let (x0, y0) = (label_space + col as u32 * cell, grid_y + row as u32 * cell);
        let pixels = (y0..y0 + cell).flat_map(|y| (x0..x0 + cell).map(move |x| (x, y)));
        pixels.map(|(x, y)| picture.get_pixel(x, y).0.iter().map(|&v| v as f64).sum::<f64>() / 3.0).sum::<f64>() / (cell * cell) as f64
    };
    let cells = || (0..rows.len()).flat_map(|r| (0..rows.len()).map(move |c| (r, c)));
    let empty = cells().find(|&(r, c)| rows[r][c] == 0).expect("a near-perfect model leaves some cell empty");
    let busiest = cells().max_by_key(|&(r, c)| rows[r][c]).unwrap();
    assert!(luma(busiest.0, busiest.1) + 50.0 < luma(empty.0, empty.1), "cell {busiest:?} ({} images) is not darker than empty cell {empty:?}", rows[busiest.0][busiest.1]);
}

/// `--backend wgpu` on the machine's adapter: Mesa's lavapipe (software Vulkan, which
/// scripts/test.sh installs) where there is no GPU. Training there must give a model that predicts
/// on the GPU what it predicts on the CPU.
#[test]
fn train_on_wgpu_and_predict_as_on_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_dataset(&data, 4);
    let model = tmp.path().join("model.safetensors");
    let out = webtune(&[
        "train".as_ref(), data.as_os_str(), "--weights".as_ref(), common::legacy_weights().as_os_str(), "--out".as_ref(), model.as_os_str(),
        "--epochs".as_ref(), "3".as_ref(), "--unfreeze".as_ref(), "0".as_ref(), "--json".as_ref(), "--backend".as_ref(), "wgpu".as_ref(),
    ]);
    assert!(out.status.success(), "no wgpu adapter? install mesa-vulkan-drivers (scripts/test.sh does): {}", stderr(&out));
    let err = stderr(&out);
    let backend_line = err.lines().find(|l| l.starts_with("backend: ")).unwrap_or_else(|| panic!("no backend line: {err}"));
    assert!(backend_line.starts_with("backend: wgpu ("), "{backend_line}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((summary["images"].as_u64(), summary["backend"].as_str()), (Some(12), Some("wgpu")));

    let mut fresh = Vec::new();
    for (i, (_, name, bytes)) in common::generated_dataset(1, 60).into_iter().enumerate() {
        fresh.push(tmp.path().join(format!("{i}_{name}")));
        std::fs::write(fresh.last().unwrap(), bytes).unwrap();
    }
    let predict = |backend: &str| {
        let mut args: Vec<&std::ffi::OsStr> = vec!["predict".as_ref(), model.as_os_str(), "--json".as_ref(), "--backend".as_ref(), backend.as_ref()];
        args.extend(fresh.iter().map(|p| p.as_os_str()));
        let out = webtune(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        results.as_array().unwrap().iter().map(|r| r["predictions"].as_array().unwrap().clone()).collect::<Vec<_>>()
    };
    let (on_gpu, on_cpu) = (predict("wgpu"), predict("cpu"));
    for (gpu, cpu) in on_gpu.iter().zip(&on_cpu) {
        assert_eq!(gpu[0]["label"], cpu[0]["label"], "top class: {gpu:?} vs {cpu:?}");
        for (g, c) in gpu.iter().zip(cpu) {
            assert_eq!(g["label"], c["label"]);
            let (g, c) = (g["probability"].as_f64().unwrap(), c["probability"].as_f64().unwrap());
            assert!((g - c).abs() < 1e-3, "{gpu:?} vs {cpu:?}");
        }
    }

    // auto takes wgpu on real hardware only: a software adapter is slower than the CPU backend.
    let out = webtune(&["predict".as_ref(), model.as_os_str(), fresh[0].as_os_str(), "--backend".as_ref(), "auto".as_ref()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let software = ["llvmpipe", "lavapipe", "SwiftShader"].iter().any(|s| backend_line.contains(s));
    let expected = if software { "backend: cpu (flex; the only GPU adapter, " } else { "backend: wgpu (" };
    assert!(stderr(&out).contains(expected), "{}", stderr(&out));
}

/// Without any adapter (Vulkan and EGL drivers hidden), `--backend wgpu` is one error line and
/// `auto` falls back to the CPU and says why.
#[test]
fn no_gpu_adapter_is_an_error_for_wgpu_and_a_note_for_auto() {
    let tmp = tempfile::tempdir().unwrap();
    let picture = tmp.path().join("pic.png");
    std::fs::write(&picture, common::png(&common::generated_image("disc", &mut rand::SeedableRng::seed_from_u64(1)))).unwrap();
    let none = tmp.path().join("none.json");
    let without_adapters = |backend: &str| {
        Command::new(env!("CARGO_BIN_EXE_webtune"))
            .args(["imagenet".as_ref(), "--weights".as_ref(), common::legacy_weights().as_os_str(), picture.as_os_str(), "--backend".as_ref(), backend.as_ref()])
            // The Vulkan loader's and glvnd's EGL driver lists, pointed at nothing.
            .env("VK_ICD_FILENAMES", &none)
            .env("VK_DRIVER_FILES", &none)
            .env("__EGL_VENDOR_LIBRARY_FILENAMES", &none)
            .output()
            .unwrap()
    };
    let out = without_adapters("wgpu");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.starts_with("webtune: no GPU adapter found for --backend wgpu: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let out = without_adapters("auto");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("backend: cpu (flex; no GPU adapter: "), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("class "), "the top-5 table");
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

    // (arguments, message, exit status: the error kind's)
    let cases: Vec<(Vec<&std::ffi::OsStr>, &str, i32)> = vec![
        (vec!["predict".as_ref(), junk.as_os_str(), picture.as_os_str()], "junk.safetensors: not a valid safetensors file", 4),
        (vec!["convert".as_ref(), junk.as_os_str(), out_file.as_os_str()], "not a weights file", 4),
        (
            vec!["imagenet".as_ref(), "--weights".as_ref(), weights.as_os_str(), junk.as_os_str()],
            "junk.safetensors: not a supported image",
            3,
        ),
        (
            vec!["imagenet".as_ref(), "--weights".as_ref(), weights.as_os_str(), missing.as_os_str()],
            "missing.png: No such file",
            3,
        ),
        (vec!["train".as_ref(), missing.as_os_str(), "--weights".as_ref(), weights.as_os_str()], "missing.png: No such file", 3),
    ];
    for (args, expected, code) in cases {
        let out = webtune(&args);
        // Commands that compute first say which backend they run on.
        let err: String = stderr(&out).lines().filter(|l| !l.starts_with("backend: ")).map(|l| format!("{l}\n")).collect();
        assert_eq!(out.status.code(), Some(code), "{args:?} should fail with {code}");
        assert!(err.starts_with("webtune: ") && err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    // A folder with one class only: the dataset problem, in words.
    let one = tmp.path().join("one");
    std::fs::create_dir_all(one.join("cats")).unwrap();
    std::fs::copy(&picture, one.join("cats").join("a.png")).unwrap();
    let out = webtune(&["train".as_ref(), one.as_os_str(), "--weights".as_ref(), common::legacy_weights().as_os_str()]);
    assert_eq!(out.status.code(), Some(5), "a dataset error");
    assert!(stderr(&out).contains("only one class (\"cats\")"), "{}", stderr(&out));
    // A setting out of range is refused before any work, naming it (exit status 2).
    let out = webtune(&["train".as_ref(), one.as_os_str(), "--weights".as_ref(), common::legacy_weights().as_os_str(), "--lr".as_ref(), "0".as_ref()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("head learning rate must be a number in (0, 1], got 0"), "{}", stderr(&out));
    // Unknown flags are clap's usage error (exit code 2).
    let out = webtune(&["train".as_ref(), "--no-such-flag".as_ref()]);
    assert_eq!(out.status.code(), Some(2));
}
