//! PyTorch checkpoints as users have them, written by an independent writer
//! (`tests/reference/make_torch_checkpoint.py`, numpy and the standard `pickle`, no torch) and read
//! back with `read_weights_file`: both `torch.save` formats, every element type, strided views,
//! training-checkpoint wrappers and `DataParallel` prefixes, and the files that must be refused.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use serde_json::json;
use webtune::weights::{TensorMap, TensorValues, read_weights_file};

/// Name, dtype, shape, row-major values, layout, padding before the view in its storage.
const TENSORS: &[(&str, &str, &[usize], &[f64], &str, usize)] = &[
    ("conv.weight", "float32", &[2, 1, 2, 2], &[0.5, -1.0, 2.25, 3.0, -0.125, 8.0, 1e-3, -7.5], "contiguous", 0),
    ("fc.weight", "float32", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "transposed", 0),
    ("fc.bias", "float32", &[3], &[0.1, -0.2, 0.3], "contiguous", 2),
    ("bn.weight", "float16", &[4], &[0.5, -1.25, 3.0, 1024.0], "contiguous", 0),
    ("bn.bias", "bfloat16", &[2, 2], &[1.5, -2.0, 0.0078125, 256.0], "transposed", 1),
    ("bn.running_var", "float64", &[3], &[0.1, 1e-7, 12345.678], "contiguous", 0),
    ("bn.num_batches_tracked", "int64", &[], &[12345678901.0], "contiguous", 0),
    ("empty", "float32", &[0, 3], &[], "contiguous", 0),
];

fn spec() -> serde_json::Value {
    let tensors: Vec<_> = TENSORS
        .iter()
        .map(|(name, dtype, shape, values, layout, offset)| {
            json!({"name": name, "dtype": dtype, "shape": shape, "values": values, "layout": layout, "offset": offset})
        })
        .collect();
    json!({ "tensors": tensors })
}

/// Runs the writer with `args` and returns the checkpoint's bytes.
fn checkpoint(dir: &Path, args: &[&str]) -> Vec<u8> {
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec().to_string()).unwrap();
    let out = dir.join("checkpoint.pth");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/make_torch_checkpoint.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let run = Command::new(python).arg(script).arg(&spec_path).arg(&out).args(args).output().unwrap();
    assert!(run.status.success(), "writer failed (is numpy installed?): {}", String::from_utf8_lossy(&run.stderr));
    std::fs::read(&out).unwrap()
}

/// Every tensor of [`TENSORS`], and nothing else, with its shape and exact values.
fn assert_all_tensors(map: &TensorMap, case: &str) {
    let names: Vec<&str> = map.keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = TENSORS.iter().map(|t| t.0).collect();
    expected.sort();
    assert_eq!(names, expected, "{case}");
    for (name, dtype, shape, values, _, _) in TENSORS {
        let entry = &map[*name];
        assert_eq!(entry.shape, *shape, "{case}: {name}");
        match (&entry.values, *dtype) {
            (TensorValues::I64(got), "int64") => {
                assert_eq!(*got, values.iter().map(|&v| v as i64).collect::<Vec<_>>(), "{case}: {name}")
            }
            // Every value is exact in its element type, so the read must be exact too.
            (TensorValues::F32(got), _) => {
                assert_eq!(*got, values.iter().map(|&v| v as f32).collect::<Vec<_>>(), "{case}: {name}")
            }
            (other, _) => panic!("{case}: {name} read as {other:?}"),
        }
    }
}

fn error_of(bytes: &[u8]) -> String {
    read_weights_file(bytes).expect_err("must be refused").to_string()
}

#[test]
fn both_torch_save_formats_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["zip", "legacy"] {
        for storage_type in ["class", "dtype"] {
            let bytes = checkpoint(dir.path(), &["--format", format, "--storage-type", storage_type]);
            assert_all_tensors(&read_weights_file(&bytes).unwrap(), &format!("{format}, storage type by {storage_type}"));
        }
    }
}

#[test]
fn zip_checkpoints_are_found_under_any_root_folder() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = checkpoint(dir.path(), &["--root", "efficientnet-lite0-57934424"]);
    let archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    assert!(archive.file_names().any(|name| name == "efficientnet-lite0-57934424/data.pkl"));
    assert_all_tensors(&read_weights_file(&bytes).unwrap(), "root folder named after the file");
}

#[test]
fn training_checkpoints_and_data_parallel_prefixes_are_unwrapped() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["zip", "legacy"] {
        for wrap in [None, Some("state_dict"), Some("model")] {
            let mut args = vec!["--format", format, "--prefix", "module."];
            if let Some(key) = wrap {
                args.extend(["--wrap", key]);
            }
            let bytes = checkpoint(dir.path(), &args);
            assert_all_tensors(&read_weights_file(&bytes).unwrap(), &format!("{format}, wrapped in {wrap:?}, module. prefix"));
        }
    }
}

#[test]
fn re_zipped_checkpoints_with_deflated_entries_still_read_natively() {
    let dir = tempfile::tempdir().unwrap();
    let stored = checkpoint(dir.path(), &[]);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&stored)).unwrap();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        writer.start_file(entry.name().to_string(), deflated).unwrap();
        writer.write_all(&data).unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();
    assert_all_tensors(&read_weights_file(&bytes).unwrap(), "deflated entries");
}

#[test]
fn pickles_naming_other_code_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["zip", "legacy"] {
        let bytes = checkpoint(dir.path(), &["--format", format, "--inject-global", "os.system"]);
        let err = error_of(&bytes);
        assert!(err.contains("refusing to load os.system"), "{format}: {err}");
    }
}

#[test]
fn broken_and_foreign_files_are_refused_with_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = checkpoint(dir.path(), &[]);
    for cut in [bytes.len() / 2, bytes.len() - 10] {
        let err = error_of(&bytes[..cut]);
        assert!(err.starts_with("a zip file, but an unreadable one (truncated or damaged?)"), "cut at {cut}: {err}");
    }

    let err = error_of(&checkpoint(dir.path(), &["--omit-entry", "data.pkl"]));
    assert_eq!(err, "a zip file, but not a PyTorch checkpoint: no data.pkl in it");

    let err = error_of(&checkpoint(dir.path(), &["--omit-entry", "data/0"]));
    assert_eq!(err, "conv.weight: the checkpoint has no archive/data/0 for its storage");

    // Storages are written in the order of their keys, which are ids that change from run to run,
    // so the cut lands in a storage's elements or in the last one's count: both say truncated.
    let legacy = checkpoint(dir.path(), &["--format", "legacy"]);
    for cut in [3, 9] {
        let err = error_of(&legacy[..legacy.len() - cut]);
        assert!(err.starts_with("weights file is truncated"), "cut {cut}: {err}");
    }
}
