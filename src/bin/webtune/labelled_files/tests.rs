//! Datasets built in a temporary folder or in memory: every hostile case is generated here.

use std::io::Write;

use super::*;

fn png(shade: u8) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(8, 8, image::Rgb([shade, 0, 0]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A zip of `(name, bytes)` entries, deflated.
fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Replaces every occurrence of `from` by `to` (same length), in headers and directory alike:
/// how names the zip writer would refuse (duplicates, `..`, backslashes) are made.
fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut found = false;
    for at in 0..bytes.len() - from.len() {
        if &bytes[at..at + from.len()] == from {
            bytes[at..at + to.len()].copy_from_slice(to);
            found = true;
        }
    }
    assert!(found);
}

/// Sets the "encrypted" flag of entry `name` in its local header and its directory record.
fn set_encrypted(bytes: &mut [u8], name: &str) {
    for at in 0..bytes.len() - 46 {
        let local = bytes[at..].starts_with(b"PK\x03\x04") && bytes[at + 30..].starts_with(name.as_bytes());
        let central = bytes[at..].starts_with(b"PK\x01\x02") && bytes[at + 46..].starts_with(name.as_bytes());
        if local {
            bytes[at + 6] |= 1;
        }
        if central {
            bytes[at + 8] |= 1;
        }
    }
}

fn write_zip(dir: &Path, bytes: &[u8]) -> PathBuf {
    let path = dir.join("data.zip");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn summary(d: &Dataset) -> Vec<(String, String, usize)> {
    d.files.iter().map(|f| (f.label.clone(), f.name.clone(), f.bytes.len())).collect()
}

fn tree() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("cats/a.png", png(1)),
        ("cats/2024/summer/b.png", png(2)),
        // Sorts before the folder `2024/` as a string, after it component by component.
        ("cats/2024 b.png", png(4)),
        ("dogs/c.png", png(3)),
        ("dogs/.DS_Store", b"clutter".to_vec()),
        (".git/objects/ab", b"blob".to_vec()),
        ("__MACOSX/dogs/._c.png", b"fork".to_vec()),
        ("readme.txt", b"not in a class".to_vec()),
    ]
}

#[test]
fn a_folder_and_a_zip_of_it_are_labelled_alike() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pets");
    for (name, bytes) in tree() {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let limits = ReadLimits::default();
    let from_folder = read_dataset(&root, &limits).unwrap();
    // In the order of the paths' bytes, which the page follows too (a seed then splits alike).
    let expected = vec![
        ("cats".to_string(), "cats/2024 b.png".to_string(), png(4).len()),
        ("cats".to_string(), "cats/2024/summer/b.png".to_string(), png(2).len()),
        ("cats".to_string(), "cats/a.png".to_string(), png(1).len()),
        ("dogs".to_string(), "dogs/c.png".to_string(), png(3).len()),
    ];
    assert_eq!(summary(&from_folder), expected);
    assert_eq!(from_folder.skipped, vec!["readme.txt: at the top of the dataset, not in a class folder".to_string()]);

    let from_zip = read_dataset(&write_zip(dir.path(), &zip_of(&tree())), &limits).unwrap();
    assert_eq!(summary(&from_zip), expected);
    assert_eq!(from_zip.skipped, from_folder.skipped);
    // `zip -r pets.zip pets`: the wrapping folder is not a class.
    let wrapped: Vec<(String, Vec<u8>)> = tree().into_iter().filter(|(n, _)| *n != "readme.txt").map(|(n, b)| (format!("pets/{n}"), b)).collect();
    let wrapped: Vec<(&str, Vec<u8>)> = wrapped.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let from_wrapped = read_dataset(&write_zip(dir.path(), &zip_of(&wrapped)), &limits).unwrap();
    assert_eq!(summary(&from_wrapped), expected);
    assert!(from_wrapped.skipped.is_empty(), "{:?}", from_wrapped.skipped);
}

#[test]
fn hostile_zip_entries_are_skipped_by_name_and_the_rest_is_read() {
    let mut bytes = zip_of(&[
        ("cats/a.png", png(1)),
        ("cats/b.png", png(2)),
        ("dogs/c.png", png(3)),
        ("dogs/d.png", png(4)),
        ("aa/evil.png", png(5)),
        ("cats/x.png", png(6)),
        ("cats/secret.png", png(7)),
        ("xdogs/abs.png", png(8)),
    ]);
    patch(&mut bytes, b"xdogs/abs.png", b"/dogs/abs.png");
    patch(&mut bytes, b"dogs/d.png", b"dogs/c.png"); // a duplicate name
    patch(&mut bytes, b"aa/evil.png", b"../evil.png");
    patch(&mut bytes, b"cats/x.png", b"cats\\x.png");
    set_encrypted(&mut bytes, "cats/secret.png");
    let dir = tempfile::tempdir().unwrap();
    let dataset = read_dataset(&write_zip(dir.path(), &bytes), &ReadLimits::default()).unwrap();
    let names: Vec<&str> = dataset.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["cats/a.png", "cats/b.png"]);
    let skipped = dataset.skipped.join("\n");
    for expected in [
        "dogs/c.png: appears 2 times in the zip",
        "../evil.png: unsafe name",
        "cats\\x.png: unsafe name",
        "/dogs/abs.png: unsafe name",
        "cats/secret.png: encrypted in the zip",
    ] {
        assert!(skipped.contains(expected), "{expected} in\n{skipped}");
    }
}

#[test]
fn zip_bombs_and_videos_are_not_read_past_their_cap() {
    let limits = ReadLimits { file_bytes: 1 << 20, total_bytes: 8 << 20, entries: 100 };
    // 64 MB that deflate to about 64 KB: a PNG signature, then zeros.
    let mut bomb = png(0)[..8].to_vec();
    bomb.resize(64 << 20, 0);
    let zeros = vec![0u8; 64 << 20];
    let dir = tempfile::tempdir().unwrap();
    let zip = zip_of(&[("cats/a.png", png(1)), ("cats/bomb.png", bomb), ("cats/zeros.jpg", zeros), ("dogs/b.png", png(2))]);
    assert!(zip.len() < 1 << 20, "the bomb compresses");
    let dataset = read_dataset(&write_zip(dir.path(), &zip), &limits).unwrap();
    assert_eq!(dataset.files.len(), 2);
    let skipped = dataset.skipped.join("\n");
    assert!(skipped.contains("cats/bomb.png: file too large (at most 1 MB)"), "{skipped}");
    assert!(skipped.contains("cats/zeros.jpg: not a supported image format"), "{skipped}");

    // The same on disk: a large non-picture is judged by its first bytes only.
    let folder = dir.path().join("set");
    std::fs::create_dir_all(folder.join("cats")).unwrap();
    std::fs::write(folder.join("cats/a.png"), png(1)).unwrap();
    std::fs::write(folder.join("cats/clip.mp4"), [&b"\0\0\0\x18ftypmp42"[..], &vec![0; 4 << 20]].concat()).unwrap();
    let dataset = read_dataset(&folder, &limits).unwrap();
    assert_eq!(dataset.files.len(), 1);
    assert!(dataset.skipped[0].starts_with("cats/clip.mp4: not a supported image format"), "{:?}", dataset.skipped);
}

#[test]
fn a_dataset_past_the_total_cap_is_one_error() {
    let limits = ReadLimits { file_bytes: 1 << 20, total_bytes: 3 * png(1).len() as u64 - 1, entries: 100 };
    let dir = tempfile::tempdir().unwrap();
    let zip = zip_of(&[("cats/a.png", png(1)), ("cats/b.png", png(1)), ("dogs/c.png", png(1))]);
    let err = read_dataset(&write_zip(dir.path(), &zip), &limits).err().unwrap().to_string();
    assert!(err.contains("data.zip: the dataset holds more than"), "{err}");
}

#[test]
fn empty_truncated_and_non_zips_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let full = zip_of(&[("cats/a.png", png(1)), ("dogs/b.png", png(2))]);
    for (bytes, expected) in [
        (zip_of(&[]), "the zip file is empty"),
        (full[..full.len() / 2].to_vec(), "not a folder or a readable zip file"),
        (Vec::new(), "not a folder or a readable zip file"),
        (b"just some text".to_vec(), "not a folder or a readable zip file"),
    ] {
        let err = read_dataset(&write_zip(dir.path(), &bytes), &ReadLimits::default()).err().unwrap().to_string();
        assert!(err.contains("data.zip: ") && err.contains(expected), "{err}");
    }
}

#[test]
fn class_names_that_merge_are_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let zip = zip_of(&[("cats/a.png", png(1)), ("cats /b.png", png(2)), ("dogs/c.png", png(3))]);
    let err = read_dataset(&write_zip(dir.path(), &zip), &ReadLimits::default()).err().unwrap().to_string();
    assert!(err.contains("class folders \"cats \" and \"cats\" all read as \"cats\""), "{err}");
    // Non-UTF-8 folder names on disk, converted lossily to the same label.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let root = dir.path().join("raw");
        for (name, shade) in [(&b"caf\xe9"[..], 1), (b"caf\xff", 2)] {
            let class = root.join(OsStr::from_bytes(name));
            std::fs::create_dir_all(&class).unwrap();
            std::fs::write(class.join("a.png"), png(shade)).unwrap();
        }
        let err = read_dataset(&root, &ReadLimits::default()).err().unwrap().to_string();
        assert!(err.contains("\"caf\\xe9\" and \"caf\\xff\""), "{err}");
    }
}
