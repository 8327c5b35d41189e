//! The one rule that turns a dataset's file paths into class labels, for a folder, a zip and the
//! page alike: the class is the first folder below the dataset's root, whatever depth the file
//! sits at below it.
//!
//! Paths are `/`-separated and relative to the root (`cats/a.jpg`, `cats/2024/b.jpg`). Hidden
//! entries (any component starting with `.`: `.git/`, `.DS_Store`) and macOS's `__MACOSX/`
//! resource forks are ignored without a word, as are `Thumbs.db` and `desktop.ini`; files
//! directly at the root have no class and are reported. Labels are trimmed of surrounding
//! whitespace, so `cats ` and `cats` are one class, and [`label_collisions`] reports such merges.

use std::collections::BTreeMap;

/// Where a dataset entry belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A picture of this class.
    Class(String),
    /// Clutter an operating system or a tool leaves behind: skipped silently.
    Ignored,
    /// A file that cannot be labelled; the reason says why, for a warning.
    Unlabelled(&'static str),
}

/// Files that are never pictures, whatever folder they are in.
const CLUTTER: [&str; 2] = ["Thumbs.db", "desktop.ini"];

/// The label of the file at `path` (relative to the dataset root), or `None` when it has none.
/// The plain form of [`place`], for callers that do not report skipped files.
pub fn label_of(path: &str) -> Option<String> {
    match place(path) {
        Placement::Class(label) => Some(label),
        _ => None,
    }
}

/// Where the file at `path` (relative to the dataset root, `/`-separated) belongs.
pub fn place(path: &str) -> Placement {
    let parts: Vec<&str> = components(path).collect();
    let Some((file, folders)) = parts.split_last() else { return Placement::Ignored };
    // Checked before hidden names, which `..` would otherwise pass for.
    if parts.contains(&"..") {
        return Placement::Unlabelled("its path leaves the dataset's folder (`..`)");
    }
    if parts.iter().any(|p| p.starts_with('.') || *p == "__MACOSX") || CLUTTER.contains(file) {
        return Placement::Ignored;
    }
    let Some(class) = folders.first() else {
        return Placement::Unlabelled("at the top of the dataset, not in a class folder");
    };
    match class.trim() {
        "" => Placement::Unlabelled("its class folder's name is blank"),
        label => Placement::Class(label.to_string()),
    }
}

/// The folder that wraps a whole dataset, to be removed from every path before [`place`]: a zip
/// made from a folder (`pets/cats/a.jpg`, `pets/dogs/b.jpg`) has one. It is the first component
/// when every labelled file shares it and sits at least two folders below it; a zip of class
/// folders alone (`cats/a.jpg`) has none. Ignored entries (`__MACOSX/...`) do not count.
pub fn wrapping_folder<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut shared: Option<&str> = None;
    for path in paths {
        if place(path) == Placement::Ignored {
            continue;
        }
        let parts: Vec<&str> = components(path).collect();
        if parts.len() < 3 || shared.is_some_and(|s| s != parts[0]) {
            return None;
        }
        shared = Some(parts[0]);
    }
    shared
}

/// `path` without its [`wrapping_folder`] `root`, if it is below it.
pub fn below_root<'a>(path: &'a str, root: Option<&str>) -> &'a str {
    let Some(root) = root else { return path };
    let path = path.trim_start_matches('/');
    path.strip_prefix(root).and_then(|rest| rest.strip_prefix('/')).unwrap_or(path)
}

/// Labels that several differently spelled class folders map to: `cats` and `cats ` (trimmed),
/// or two non-UTF-8 names that read the same once converted. Takes each class folder's raw name
/// (bytes as the file system or the zip gave them) with its label; returns each merged label with
/// the raw names, written lossily and quoted, sorted.
pub fn label_collisions<'a>(folders: impl IntoIterator<Item = (&'a [u8], &'a str)>) -> Vec<(String, Vec<String>)> {
    let mut by_label: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for (raw, label) in folders {
        let names = by_label.entry(label).or_default();
        if !names.contains(&raw) {
            names.push(raw);
        }
    }
    by_label
        .into_iter()
        .filter(|(_, raws)| raws.len() > 1)
        .map(|(label, raws)| {
            let mut names: Vec<String> = raws.iter().map(|r| format!("\"{}\"", r.escape_ascii())).collect();
            names.sort();
            (label.to_string(), names)
        })
        .collect()
}

/// The non-empty components of a `/`-separated path (`a//b/` is `a`, `b`; `./` is dropped).
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|p| !p.is_empty() && *p != ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_is_the_first_folder_at_any_depth() {
        assert_eq!(label_of("cats/a.jpg").as_deref(), Some("cats"));
        assert_eq!(label_of("cats/2024/summer/a.jpg").as_deref(), Some("cats"));
        assert_eq!(label_of("./cats//a.jpg").as_deref(), Some("cats"));
        assert_eq!(label_of("  cats \t/a.jpg").as_deref(), Some("cats"));
    }

    #[test]
    fn hidden_entries_and_os_clutter_are_ignored() {
        for path in [".git/objects/ab", "cats/.DS_Store", "__MACOSX/cats/._a.jpg", ".hidden/a.jpg", "cats/Thumbs.db", "", "/"] {
            assert_eq!(place(path), Placement::Ignored, "{path}");
        }
    }

    #[test]
    fn files_at_the_root_in_blank_folders_or_outside_are_reported() {
        assert!(matches!(place("a.jpg"), Placement::Unlabelled(why) if why.contains("not in a class folder")));
        assert!(matches!(place("../cats/a.jpg"), Placement::Unlabelled(why) if why.contains("leaves the dataset")));
        assert!(matches!(place("cats/../../a.jpg"), Placement::Unlabelled(why) if why.contains("leaves the dataset")));
        assert!(matches!(place("   /a.jpg"), Placement::Unlabelled(why) if why.contains("blank")));
    }

    #[test]
    fn one_wrapping_folder_is_found_and_removed() {
        let wrapped = ["pets/cats/a.jpg", "pets/dogs/b.jpg", "__MACOSX/pets/._x"];
        let root = wrapping_folder(wrapped);
        assert_eq!(root, Some("pets"));
        assert_eq!(below_root("pets/cats/a.jpg", root), "cats/a.jpg");
        assert_eq!(wrapping_folder(["cats/a.jpg", "dogs/b.jpg"]), None);
        assert_eq!(wrapping_folder(["a/cats/a.jpg", "b/dogs/b.jpg"]), None);
        assert_eq!(wrapping_folder(["pets/cats/a.jpg", "pets/b.jpg"]), None, "a file directly in it: it is a class");
        assert_eq!(below_root("cats/a.jpg", None), "cats/a.jpg");
    }

    #[test]
    fn merged_spellings_are_reported_with_their_raw_names() {
        let folders: [(&[u8], &str); 4] = [(b"cats", "cats"), (b"cats ", "cats"), (b"dogs", "dogs"), (b"cats", "cats")];
        let collisions = label_collisions(folders);
        assert_eq!(collisions, vec![("cats".to_string(), vec!["\"cats \"".to_string(), "\"cats\"".to_string()])]);
        // Two invalid UTF-8 spellings that both read as "caf\u{FFFD}".
        let (a, b) = (String::from_utf8_lossy(b"caf\xe9"), String::from_utf8_lossy(b"caf\xff"));
        assert_eq!(a, b);
        let collisions = label_collisions([(&b"caf\xe9"[..], &*a), (&b"caf\xff"[..], &*b)]);
        assert_eq!(collisions[0].1, vec!["\"caf\\xe9\"".to_string(), "\"caf\\xff\"".to_string()]);
    }
}
