//! The pictures of a labelled dataset, from a folder of class sub-folders or a zip of one.
//! Labels follow `webtune::data::place`, the rule the page uses too: the class is the first
//! folder below the dataset's root, hidden entries are ignored, files at the root are reported.
//!
//! Nothing a file or a zip header declares is trusted for allocation: every read goes through
//! `take()` with the remaining allowance, and files that are not pictures by their first bytes
//! are skipped before the rest is read (a video in a class folder, a zip entry of zeros).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use webtune::data::{MAX_FILE_BYTES, Placement, below_root, check_image_signature, label_collisions, place, wrapping_folder};
use webtune::{Error, Result};

pub struct LabelledFile {
    pub label: String,
    /// Path below the dataset's root (`cats/a.jpg`), for messages.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// How much a dataset may make the CLI read. Files are read one at a time, each just before it
/// is decoded, so what the CLI holds is the decoded pictures, not the files.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Larger files are skipped with a warning (the decoder would refuse them anyway).
    pub file_bytes: u64,
    /// A dataset past this is refused as a whole rather than exhausting memory.
    pub total_bytes: u64,
    /// Most entries (files and folders) a dataset may list.
    pub entries: usize,
}

impl Default for ReadLimits {
    /// 100 MiB a file (`MAX_FILE_BYTES`), 2 GiB in all (a few thousand phone photos), 200 000
    /// entries.
    fn default() -> Self {
        Self { file_bytes: MAX_FILE_BYTES as u64, total_bytes: 2 << 30, entries: 200_000 }
    }
}

/// The labelled files of a dataset and a line for every file that was skipped and why.
pub struct Dataset {
    pub files: Vec<LabelledFile>,
    pub skipped: Vec<String>,
}

/// [`list_dataset`] read whole, with explicit limits.
pub fn read_dataset(source: &Path, limits: &ReadLimits) -> Result<Dataset> {
    let mut files = Vec::new();
    let skipped = list_dataset(source, limits)?.read_each(|file| {
        files.push(file);
        Ok(())
    })?;
    Ok(Dataset { files, skipped })
}

/// The labelled files of a dataset, listed and not yet read (see [`Listing::read_each`]).
pub struct Listing {
    source: PathBuf,
    limits: ReadLimits,
    reader: Box<dyn EntryReader>,
    /// Entry index, path below the root and label, in path order.
    labelled: Vec<(usize, String, String)>,
    skipped: Vec<String>,
}

impl Listing {
    pub fn len(&self) -> usize {
        self.labelled.len()
    }

    /// Reads the files in path order (so that a seed gives the same split whatever order the
    /// file system or the archive lists them in), giving each to `each` and dropping its bytes
    /// after; returns a line for every file that was skipped and why. The first error `each`
    /// returns ends the reading.
    pub fn read_each(self, mut each: impl FnMut(LabelledFile) -> Result<()>) -> Result<Vec<String>> {
        let Listing { source, limits, mut reader, labelled, mut skipped } = self;
        let mut total = 0u64;
        for (index, name, label) in labelled {
            let allowance = limits.file_bytes.min(limits.total_bytes - total);
            match reader.read(index, allowance)? {
                Ok(bytes) => {
                    total += bytes.len() as u64;
                    each(LabelledFile { label, name, bytes })?;
                }
                Err(Skip::TooLarge) if allowance < limits.file_bytes => {
                    return Err(Error::Dataset(format!(
                        "{}: the dataset holds more than {} MB of files; use a smaller copy or a subset",
                        source.display(),
                        limits.total_bytes >> 20
                    )));
                }
                Err(Skip::TooLarge) => skipped.push(format!("{name}: file too large (at most {} MB)", limits.file_bytes >> 20)),
                Err(Skip::Because(why)) => skipped.push(format!("{name}: {why}")),
            }
        }
        Ok(skipped)
    }
}

/// Lists a folder of class sub-folders or a zip of one: which files are pictures of which class,
/// and which entries are skipped before reading any file.
pub fn list_dataset(source: &Path, limits: &ReadLimits) -> Result<Listing> {
    let mut reader: Box<dyn EntryReader> =
        if source.is_dir() { Box::new(Folder::open(source, limits)?) } else { Box::new(Zip::open(source, limits)?) };
    let mut skipped = reader.take_skipped();
    let entries = reader.entries();
    let root = wrapping_folder(entries.iter().map(|e| e.path.as_str())).map(str::to_string);
    let shift = usize::from(root.is_some());

    let mut labelled = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let name = below_root(&entry.path, root.as_deref()).to_string();
        match place(&name) {
            Placement::Class(label) => labelled.push((index, name, label)),
            Placement::Ignored => {}
            Placement::Unlabelled(why) => skipped.push(format!("{name}: {why}")),
        }
    }
    let collisions =
        label_collisions(labelled.iter().map(|(i, _, label)| (entries[*i].raw_parts[shift].as_slice(), label.as_str())));
    if let Some((label, names)) = collisions.first() {
        return Err(Error::Dataset(format!(
            "{}: class folders {} all read as \"{label}\"; rename them so that they differ",
            source.display(),
            names.join(" and ")
        )));
    }

    labelled.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(Listing { source: source.to_path_buf(), limits: *limits, reader, labelled, skipped })
}

/// One file of the dataset before labelling: its path relative to the source, `/`-separated
/// and written lossily, and the raw bytes of each path component (to report merged spellings).
struct Entry {
    path: String,
    raw_parts: Vec<Vec<u8>>,
}

/// Why one file is not read; the rest of the dataset is.
enum Skip {
    TooLarge,
    Because(String),
}

/// A folder or a zip: lists its files, then reads any of them within an allowance.
trait EntryReader {
    fn entries(&self) -> &[Entry];
    /// Entries that were not listed at all (unsafe names, encrypted, duplicates), with reasons.
    fn take_skipped(&mut self) -> Vec<String>;
    /// The bytes of entry `index`, or why not; an outer `Err` ends the whole read.
    fn read(&mut self, index: usize, allowance: u64) -> Result<std::result::Result<Vec<u8>, Skip>>;
}

/// Reads at most `allowance` bytes, refusing non-pictures by their first bytes before reading on,
/// and a file whose `declared` size (on disk, or in the zip's directory) is over the allowance
/// without reading further: a 3 GB video or an honest zip bomb costs 512 bytes. A size that lies
/// low is caught by the cap on what is read.
fn read_capped(mut from: impl Read, declared: u64, allowance: u64) -> std::io::Result<std::result::Result<Vec<u8>, Skip>> {
    let mut head = Vec::new();
    (&mut from).take(512.min(allowance + 1)).read_to_end(&mut head)?;
    if let Err(why) = check_image_signature(&head) {
        return Ok(Err(Skip::Because(why)));
    }
    if declared > allowance {
        return Ok(Err(Skip::TooLarge));
    }
    let mut bytes = head;
    (&mut from).take(allowance + 1 - bytes.len() as u64).read_to_end(&mut bytes)?;
    Ok(if bytes.len() as u64 > allowance { Err(Skip::TooLarge) } else { Ok(bytes) })
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// Folders deeper than this below the root are not searched (and reported).
const MAX_DEPTH: usize = 32;

struct Folder {
    entries: Vec<Entry>,
    paths: Vec<PathBuf>,
    skipped: Vec<String>,
}

impl Folder {
    fn open(dir: &Path, limits: &ReadLimits) -> Result<Self> {
        let mut folder = Folder { entries: Vec::new(), paths: Vec::new(), skipped: Vec::new() };
        folder.walk(dir, &mut Vec::new(), limits)?;
        Ok(folder)
    }

    /// Every file below `dir`, depth first. Symbolic links to folders are not followed (a loop
    /// would never end); hidden folders are not entered (a `.git` can hold thousands of files).
    fn walk(&mut self, dir: &Path, parts: &mut Vec<Vec<u8>>, limits: &ReadLimits) -> Result<()> {
        let mut children = std::fs::read_dir(dir)
            .map_err(io_error(dir))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(io_error(dir))?;
        children.sort();
        for child in children {
            let raw = child.file_name().unwrap_or_default();
            parts.push(raw.as_encoded_bytes().to_vec());
            let path = lossy_path(parts);
            let kind = std::fs::symlink_metadata(&child).map_err(io_error(&child))?.file_type();
            if kind.is_dir() && !hidden(raw) {
                if parts.len() > MAX_DEPTH {
                    self.skipped.push(format!("{path}/: more than {MAX_DEPTH} folders deep"));
                } else {
                    self.walk(&child, parts, limits)?;
                }
            } else if kind.is_file() || (kind.is_symlink() && child.is_file()) {
                if self.entries.len() >= limits.entries {
                    return Err(Error::Dataset(format!("{}: more than {} files", dir.display(), limits.entries)));
                }
                self.entries.push(Entry { path, raw_parts: parts.clone() });
                self.paths.push(child);
            }
            parts.pop();
        }
        Ok(())
    }
}

fn hidden(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name.starts_with(b".") || name == b"__MACOSX"
}

fn lossy_path(parts: &[Vec<u8>]) -> String {
    parts.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>().join("/")
}

impl EntryReader for Folder {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }
    fn take_skipped(&mut self) -> Vec<String> {
        std::mem::take(&mut self.skipped)
    }
    fn read(&mut self, index: usize, allowance: u64) -> Result<std::result::Result<Vec<u8>, Skip>> {
        let path = &self.paths[index];
        let file = std::fs::File::open(path).map_err(io_error(path))?;
        let size = file.metadata().map_err(io_error(path))?.len();
        read_capped(file, size, allowance).map_err(io_error(path))
    }
}

struct Zip {
    archive: zip::ZipArchive<std::fs::File>,
    entries: Vec<Entry>,
    indices: Vec<usize>,
    skipped: Vec<String>,
}

impl Zip {
    fn open(path: &Path, limits: &ReadLimits) -> Result<Self> {
        let damaged = |e: &dyn std::fmt::Display| {
            Error::Dataset(format!("{}: not a folder or a readable zip file (truncated or damaged?): {e}", path.display()))
        };
        let file = std::fs::File::open(path).map_err(io_error(path))?;
        let archive = zip::ZipArchive::new(file).map_err(|e| damaged(&e))?;
        if archive.is_empty() {
            return Err(Error::Dataset(format!("{}: the zip file is empty", path.display())));
        }
        if archive.len() > limits.entries {
            return Err(Error::Dataset(format!("{}: more than {} entries in the zip", path.display(), limits.entries)));
        }
        let duplicates = duplicate_names(path, archive.central_directory_start()).map_err(|e| damaged(&e))?;
        let mut zip = Zip { archive, entries: Vec::new(), indices: Vec::new(), skipped: Vec::new() };
        for (name, count) in &duplicates {
            zip.skipped.push(format!("{name}: appears {count} times in the zip, so which copy is meant is unclear"));
        }
        for index in 0..zip.archive.len() {
            let entry = zip.archive.by_index_raw(index).map_err(|e| damaged(&e))?;
            let raw = entry.name_raw().to_vec();
            let name = String::from_utf8_lossy(&raw).into_owned();
            if entry.is_dir() || duplicates.contains_key(&name) {
                continue;
            }
            let unsafe_name = raw.contains(&b'\\')
                || raw.starts_with(b"/")
                || raw.get(1) == Some(&b':')
                || raw.split(|&b| b == b'/').any(|p| p == b"..");
            let why = if unsafe_name {
                Some("unsafe name in the zip (an absolute path, `..`, or a backslash)")
            } else if entry.encrypted() {
                Some("encrypted in the zip (webtune cannot ask for passwords: zip it again without one)")
            } else {
                None
            };
            if let Some(why) = why {
                // Hidden clutter stays silent even when it is also odd.
                if place(&name) != Placement::Ignored {
                    zip.skipped.push(format!("{name}: {why}"));
                }
                continue;
            }
            let raw_parts = raw.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".").map(<[u8]>::to_vec).collect();
            zip.entries.push(Entry { path: name, raw_parts });
            zip.indices.push(index);
        }
        Ok(zip)
    }
}

/// Names the zip's central directory lists more than once, with their counts. The zip crate
/// keeps only the last entry of a name, so a duplicate would otherwise be dropped unseen.
fn duplicate_names(path: &Path, start: u64) -> std::io::Result<HashMap<String, usize>> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut reader = std::io::BufReader::new(file);
    let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut header = [0u8; 46];
    // Central directory records: signature, fixed fields, then name, extra field and comment.
    while reader.read_exact(&mut header).is_ok() && header[..4] == *b"PK\x01\x02" {
        let field = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]) as usize;
        let (name_len, extra_len, comment_len) = (field(28), field(30), field(32));
        let mut name = vec![0u8; name_len];
        reader.read_exact(&mut name)?;
        reader.seek_relative((extra_len + comment_len) as i64)?;
        *counts.entry(name).or_default() += 1;
    }
    Ok(counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, n)| (String::from_utf8_lossy(&name).into_owned(), n))
        .collect())
}

impl EntryReader for Zip {
    fn entries(&self) -> &[Entry] {
        &self.entries
    }
    fn take_skipped(&mut self) -> Vec<String> {
        std::mem::take(&mut self.skipped)
    }
    fn read(&mut self, index: usize, allowance: u64) -> Result<std::result::Result<Vec<u8>, Skip>> {
        let entry = match self.archive.by_index(self.indices[index]) {
            Ok(entry) => entry,
            Err(e) => return Ok(Err(Skip::Because(format!("unreadable zip entry ({e})")))),
        };
        // The declared size may lie either way; the cap on what is read does not.
        let declared = entry.size();
        match read_capped(entry, declared, allowance) {
            Ok(result) => Ok(result),
            Err(e) => Ok(Err(Skip::Because(format!("damaged or truncated zip entry ({e})")))),
        }
    }
}

#[cfg(test)]
mod tests;
