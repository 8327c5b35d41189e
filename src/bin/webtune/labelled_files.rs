//! The pictures of a labelled dataset, from a folder of class sub-folders or a zip of one.
//! A file's class is the name of the folder it sits in, as in the page.

use std::io::Read;
use std::path::{Path, PathBuf};

use webtune::{Error, Result};

pub struct LabelledFile {
    pub label: String,
    /// Path inside the dataset (`cats/a.jpg`), for messages.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Every file one level below a class folder, sorted by path so that a seed gives the same
/// split whatever order the file system or the archive lists them in.
pub fn read_labelled_files(source: &Path) -> Result<Vec<LabelledFile>> {
    let mut files = if source.is_dir() { from_folder(source)? } else { from_zip(source)? };
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

fn from_folder(dir: &Path) -> Result<Vec<LabelledFile>> {
    let mut files = Vec::new();
    for class in entries(dir)?.into_iter().filter(|p| p.is_dir()) {
        let label = class.file_name().unwrap_or_default().to_string_lossy().into_owned();
        for path in entries(&class)?.into_iter().filter(|p| p.is_file() && !is_clutter(p)) {
            let name = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
            files.push(LabelledFile { label: label.clone(), name, bytes: std::fs::read(&path).map_err(io_error(&path))? });
        }
    }
    Ok(files)
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io_error(dir))
}

/// Files operating systems leave behind that are never pictures.
fn is_clutter(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.starts_with('.') || name == "Thumbs.db" || name == "desktop.ini"
}

/// A zip whose files sit in class folders, at the top (`cats/a.jpg`) or under one root folder
/// (`pets/cats/a.jpg`): the label is the file's parent folder either way.
fn from_zip(path: &Path) -> Result<Vec<LabelledFile>> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let not_zip = |e: zip::result::ZipError| Error::Dataset(format!("{}: not a folder or a readable zip file ({e})", path.display()));
    let mut archive = zip::ZipArchive::new(file).map_err(not_zip)?;
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(not_zip)?;
        let name = entry.name().to_string();
        let parts: Vec<&str> = name.split('/').collect();
        if entry.is_dir() || parts.len() < 2 || parts.iter().any(|p| p.starts_with("__MACOSX")) || is_clutter(Path::new(&name)) {
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(|e| Error::Dataset(format!("{}: {name}: {e}", path.display())))?;
        files.push(LabelledFile { label: parts[parts.len() - 2].to_string(), name, bytes });
    }
    Ok(files)
}
