//! The `webtune` binary on hostile files: each is refused or skipped with one line naming the
//! file and the reason, the exit code is non-zero only when the command cannot do its job, and
//! no webtune process peaks above 1.5 GB of memory.

mod common;
mod hostile;

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};

use hostile::*;
use image::ImageFormat;

/// The most memory one `webtune` process may take on any case (the limit).
const PEAK_MEMORY_LIMIT: u64 = 1536 << 20;

/// Runs `webtune args` and checks its peak resident memory, which it prints (run with
/// `--nocapture` to see each case's).
fn webtune(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_webtune"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let (status, peak) = wait_with_peak_memory(child.id());
    let shown: Vec<_> = args.iter().map(|arg| Path::new(arg).file_name().unwrap_or(arg).to_string_lossy()).collect();
    eprintln!("webtune {}: peak {:.1} MB", shown.join(" "), peak as f64 / (1 << 20) as f64);
    assert!(peak < PEAK_MEMORY_LIMIT, "webtune {} peaked at {} MB", shown.join(" "), peak >> 20);
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// Waits for the child `pid` and returns its exit status and its own largest resident set
/// (`wait4` reports it per process, in kilobytes on Linux).
fn wait_with_peak_memory(pid: u32) -> (ExitStatus, u64) {
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `pid` is our own child, not yet waited for (std's `Child` is never waited on here);
    // wait4 fills `status` and the rusage struct it is given.
    let usage = unsafe {
        assert_eq!(libc::wait4(pid as libc::pid_t, &mut status, 0, usage.as_mut_ptr()), pid as libc::pid_t);
        usage.assume_init()
    };
    (ExitStatus::from_raw(status), usage.ru_maxrss as u64 * 1024)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn convert_refuses_hostile_weights_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("memo.pth", torch_zip(&pickle::memo_bomb(), &[], &[]), "memo bomb"),
        ("deep.pth", torch_zip(&pickle::nested_lists(300_000), &[], &[]), "nested more than 100 deep"),
        ("system.pth", torch_zip(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.", &[], &[]), "refusing to load os.system"),
        ("script.pt", torch_zip(b"\x80\x02}.", &[], &[("archive/constants.pkl", b"\x80\x02).")]), "TorchScript"),
        ("lying.safetensors", {
            let mut b = safetensors_by_hand("{}", &[]);
            b[..8].copy_from_slice(&(1u64 << 63).to_le_bytes());
            b
        }, "safetensors"),
    ];
    for (name, bytes, reason) in cases {
        let input = tmp.path().join(name);
        std::fs::write(&input, bytes).unwrap();
        let run = webtune(&["convert".as_ref(), input.as_os_str(), out.as_os_str()]);
        let message = stderr(&run);
        assert!(!run.status.success(), "{name}: {message}");
        assert!(message.contains(&format!("{}: ", input.display())) && message.contains(reason), "{name}: {message}");
        assert!(!out.exists(), "nothing is written");
    }
}

/// A valid export of an untrained EfficientNet-Lite0 with two classes.
fn write_model(path: &Path) {
    use webtune::model::{BackboneKind, Classifier, HeadConfig};
    let kind = BackboneKind::EfficientNetLite0;
    let device = burn::tensor::Device::flex();
    let model = webtune::TrainedModel {
        classifier: Classifier::new(kind, &HeadConfig::new(kind.features(), 2), &device),
        labels: vec!["cats".into(), "dogs".into()],
        spec: kind.spec(),
        hidden_units: 0,
        training: serde_json::Value::Null,
    };
    std::fs::write(path, pollster::block_on(model.to_safetensors()).unwrap()).unwrap();
}

#[test]
fn predict_refuses_bombs_and_hostile_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model.safetensors");
    write_model(&model);
    let bomb = tmp.path().join("bomb.png");
    std::fs::write(&bomb, png_by_hand(100_000, 100_000, 8, 0, false, None, &[0, 0, 0])).unwrap();
    let wide = tmp.path().join("wide.png");
    std::fs::write(&wide, png_by_hand(16_384, 1, 8, 0, false, None, &[&[0u8][..], &[7; 16_384]].concat())).unwrap();
    for (image, reason) in [(&bomb, "image too large"), (&wide, "image too elongated")] {
        let run = webtune(&["predict".as_ref(), model.as_os_str(), image.as_os_str()]);
        assert!(!run.status.success());
        assert!(stderr(&run).contains(&format!("{}: {reason}", image.display())), "{}", stderr(&run));
    }
    // The same model with its labels emptied.
    let bytes = std::fs::read(&model).unwrap();
    let (tensors, mut metadata) = webtune::weights::read_safetensors(&bytes).unwrap();
    metadata.insert("labels".into(), "[]".into());
    let hostile = tmp.path().join("hostile.safetensors");
    std::fs::write(&hostile, webtune::weights::write_safetensors(&tensors, metadata).unwrap()).unwrap();
    let good = tmp.path().join("good.png");
    std::fs::write(&good, encode(&gradient(50, 40), ImageFormat::Png)).unwrap();
    let run = webtune(&["predict".as_ref(), hostile.as_os_str(), good.as_os_str()]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains(&format!("{}: metadata \"labels\" is empty", hostile.display())), "{}", stderr(&run));
}

/// Three good pictures a class plus every kind of bad file, in a folder or in a zip.
fn hostile_dataset() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = common::generated_dataset(3, 7)
        .into_iter()
        .filter(|(label, _, _)| label != "checks")
        .map(|(label, name, bytes)| (format!("{label}/{name}"), bytes))
        .collect();
    let jpeg = encode(&gradient(64, 64), ImageFormat::Jpeg);
    files.extend([
        ("disc/bomb.png".to_string(), png_by_hand(100_000, 100_000, 8, 0, false, None, &[0, 0, 0])),
        ("disc/wide.png".to_string(), png_by_hand(16_384, 1, 8, 0, false, None, &[&[0u8][..], &[7; 16_384]].concat())),
        ("stripes/cut.jpg".to_string(), jpeg[..jpeg.len() / 2].to_vec()),
        ("stripes/notes.jpg".to_string(), b"not a picture at all".to_vec()),
        ("stripes/.DS_Store".to_string(), b"\0\0\0\x01Bud1".to_vec()),
        ("readme.txt".to_string(), b"hello".to_vec()),
    ]);
    files
}

fn train(data: &Path, out: &Path) -> Output {
    webtune(&[
        "train".as_ref(), data.as_os_str(), "--weights".as_ref(), common::legacy_weights().as_os_str(), "--out".as_ref(),
        out.as_os_str(), "--epochs".as_ref(), "2".as_ref(), "--unfreeze".as_ref(), "0".as_ref(), "--json".as_ref(),
    ])
}

fn check_training_skipped_the_bad_files(run: &Output) {
    let message = stderr(run);
    assert!(run.status.success(), "{message}");
    for expected in [
        "skipped disc/bomb.png: image too large",
        "skipped disc/wide.png: image too elongated",
        "skipped stripes/cut.jpg: truncated image",
        "skipped stripes/notes.jpg: not a supported image format",
        "skipped readme.txt: at the top of the dataset",
    ] {
        assert!(message.contains(expected), "{expected:?} in\n{message}");
    }
    assert!(!message.contains(".DS_Store"), "clutter is silent: {message}");
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["images"], 6, "three good pictures in each class remain");
}

#[test]
fn train_skips_hostile_files_in_a_folder_and_in_a_zip() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("data");
    for (name, bytes) in hostile_dataset() {
        let path = folder.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    // A 3 GB "video" (sparse on disk): only its first bytes are ever read.
    let video = std::fs::File::create(folder.join("disc/clip.mp4")).unwrap();
    (&video).write_all(b"\0\0\0\x18ftypmp42").unwrap();
    video.set_len(3 << 30).unwrap();
    let run = train(&folder, &tmp.path().join("a.safetensors"));
    check_training_skipped_the_bad_files(&run);
    assert!(stderr(&run).contains("skipped disc/clip.mp4: not a supported image format (JPEG, PNG, WebP, GIF, BMP): this is a video"));

    // The zip adds an entry that inflates from ~200 KB to 200 MB, past the 100 MB cap.
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    bomb.resize(200 << 20, 0);
    let mut entries = hostile_dataset();
    entries.push(("disc/zip-bomb.png".to_string(), bomb));
    let named: Vec<(&str, &[u8])> = entries.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let zip = tmp.path().join("data.zip");
    std::fs::write(&zip, zip_of(&named, true)).unwrap();
    let run = train(&zip, &tmp.path().join("b.safetensors"));
    check_training_skipped_the_bad_files(&run);
    assert!(stderr(&run).contains("skipped disc/zip-bomb.png: file too large (at most 100 MB)"), "{}", stderr(&run));
}

#[test]
fn train_on_a_broken_zip_is_one_error() {
    let tmp = tempfile::tempdir().unwrap();
    let full = zip_of(&[("cats/a.png", &encode(&gradient(9, 9), ImageFormat::Png))], true);
    for (name, bytes) in [("empty.zip", zip_of(&[], true)), ("cut.zip", full[..full.len() / 2].to_vec())] {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let run = train(&path, &tmp.path().join("m.safetensors"));
        assert!(!run.status.success());
        let message = stderr(&run);
        assert_eq!(message.lines().filter(|l| l.starts_with("webtune: ")).count(), 1, "{message}");
        assert!(message.contains(&format!("{}: ", path.display())), "{message}");
    }
}
