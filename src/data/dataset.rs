//! The user's labelled images, decoded and cropped once when added.

use std::collections::BTreeSet;

use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::augment::Augmentation;
use super::decode::decode_image;
use super::labels::label_of;
use super::preprocess::{center_crop, resize_shorter_side, shorter_side_size};
use super::stored::StoredPicture;
use crate::error::{Error, Result};
use crate::model::BackboneSpec;

/// Fewest images a class needs: one to train on and one to validate with.
pub const MIN_IMAGES_PER_CLASS: usize = 2;

#[derive(Debug, Clone)]
pub struct LabelledImage {
    pub id: u32,
    pub label: String,
    pub file_name: String,
    /// Shorter side resized to the backbone's `resize_size`, compressed: evaluation takes the
    /// center crop, augmentation random crops.
    pub stored: StoredPicture,
}

impl LabelledImage {
    /// The picture at the backbone's `resize_size` (decoded from [`Self::stored`]).
    pub fn pixels(&self) -> RgbImage {
        self.stored.pixels()
    }

    /// The evaluation view: the center crop at the input size.
    pub fn center_view(&self, spec: &BackboneSpec) -> RgbImage {
        center_crop(&self.pixels(), spec)
    }
}

/// A view of a stored picture that every engine makes alike from the picture's bytes: its center
/// crop (`seed: None`), or the augmented view that `seed` draws.
#[derive(Debug, Clone, Copy)]
pub struct ViewOf<'a> {
    pub picture: &'a StoredPicture,
    pub seed: Option<u64>,
}

impl ViewOf<'_> {
    /// The view, `spec.input_size` square.
    pub fn make(&self, augmentation: &Augmentation, spec: &BackboneSpec) -> RgbImage {
        view_of(&self.picture.pixels(), self.seed, augmentation, spec)
    }
}

/// The view of decoded stored `pixels` that [`ViewOf::make`] makes.
pub fn view_of(pixels: &RgbImage, seed: Option<u64>, augmentation: &Augmentation, spec: &BackboneSpec) -> RgbImage {
    match seed {
        Some(seed) => augmentation.view(pixels, spec.input_size, &mut ChaCha8Rng::seed_from_u64(seed)),
        None => center_crop(pixels, spec),
    }
}

/// Classes and their images. Classes are kept sorted by name, so the class index of a label
/// does not depend on the order files were dropped in.
#[derive(Debug)]
pub struct ImageSet {
    spec: BackboneSpec,
    classes: BTreeSet<String>,
    images: Vec<LabelledImage>,
    next_id: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ClassSummary {
    pub label: String,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DatasetSummary {
    pub classes: Vec<ClassSummary>,
    pub images: usize,
    pub trainable: bool,
    /// Why training is not possible yet, in words for the user.
    pub problem: Option<String>,
}

/// One picture decoded, resized and stored for a backbone, not yet in a set: the work of
/// [`ImageSet::add`] that needs no set, so that many pictures can be prepared at once.
pub struct PreparedImage {
    label: String,
    file_name: String,
    stored: StoredPicture,
}

impl PreparedImage {
    /// Checks the label, decodes `bytes` and keeps the picture at `spec`'s stored size, as
    /// [`ImageSet::add`] would.
    pub fn new(spec: &BackboneSpec, label: &str, file_name: &str, bytes: &[u8]) -> Result<Self> {
        let label = valid_label(label)?;
        let decoded = decode_image(file_name, bytes)?;
        let stored = StoredPicture::new(file_name, &resize_shorter_side(&decoded, spec))?;
        Ok(Self { label, file_name: file_name.to_string(), stored })
    }
}

impl ImageSet {
    pub fn new(spec: BackboneSpec) -> Self {
        Self { spec, classes: BTreeSet::new(), images: Vec::new(), next_id: 0 }
    }

    /// Adds a class with no images yet (a folder that turned out empty, say).
    pub fn add_class(&mut self, label: &str) -> Result<()> {
        self.classes.insert(valid_label(label)?);
        Ok(())
    }

    /// Decodes, resizes and adds one image. On error nothing changes.
    pub fn add(&mut self, label: &str, file_name: &str, bytes: &[u8]) -> Result<u32> {
        let prepared = PreparedImage::new(&self.spec, label, file_name, bytes)?;
        Ok(self.add_prepared(prepared))
    }

    /// Adds a picture [`PreparedImage::new`] decoded for this set's backbone: what [`Self::add`]
    /// does, with the decoding done beforehand (on other threads, by the CLI).
    pub fn add_prepared(&mut self, prepared: PreparedImage) -> u32 {
        let PreparedImage { label, file_name, stored } = prepared;
        self.push(label, &file_name, stored)
    }

    /// Adds a picture given as the bytes [`LabelledImage::stored`] had (kept by the page across a
    /// reload, or for the next engine): taken back exactly as they are when they still are a
    /// stored picture of this backbone's size, a few milliseconds; anything else (another
    /// backbone's size, an altered file) is added as [`Self::add`] adds a new file. The bytes go
    /// through the same decoder and checks either way.
    pub fn add_compact(&mut self, label: &str, file_name: &str, bytes: &[u8]) -> Result<u32> {
        let label = valid_label(label)?;
        let decoded = decode_image(file_name, bytes)?;
        // A stored picture is already at the size resizing would give it.
        let stored_size = shorter_side_size(decoded.dimensions(), &self.spec) == decoded.dimensions();
        let stored = match stored_size.then(|| StoredPicture::reopen(bytes, &decoded)).flatten() {
            Some(stored) => stored,
            None => StoredPicture::new(file_name, &resize_shorter_side(&decoded, &self.spec))?,
        };
        Ok(self.push(label, file_name, stored))
    }

    fn push(&mut self, label: String, file_name: &str, stored: StoredPicture) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.classes.insert(label.clone());
        self.images.push(LabelledImage { id, label, file_name: file_name.to_string(), stored });
        id
    }

    /// Removes one picture; its class stays, even when it is left empty.
    pub fn remove(&mut self, id: u32) -> Result<()> {
        let before = self.images.len();
        self.images.retain(|i| i.id != id);
        if before == self.images.len() {
            return Err(unknown_picture(id));
        }
        Ok(())
    }

    pub fn remove_class(&mut self, label: &str) {
        self.classes.remove(label);
        self.images.retain(|i| i.label != label);
    }

    /// Gives class `from` the name `to` (trimmed), which must not be another class's: joining two
    /// classes is [`Self::merge_classes`], asked for by name. Pictures keep their ids, so nothing
    /// computed from them (features) is lost. Returns the new label.
    pub fn rename_class(&mut self, from: &str, to: &str) -> Result<String> {
        self.known_class(from)?;
        let to = valid_label(to)?;
        if to == from {
            return Ok(to);
        }
        if self.classes.contains(&to) {
            return Err(Error::Dataset(format!(
                "there is already a class named \"{to}\": merge \"{from}\" into it instead, or choose another name"
            )));
        }
        self.relabel_class(from, &to);
        Ok(to)
    }

    /// Moves every picture of class `from` into class `into` and removes `from`.
    pub fn merge_classes(&mut self, from: &str, into: &str) -> Result<()> {
        self.known_class(from)?;
        self.known_class(into)?;
        if from == into {
            return Err(Error::Dataset(format!("cannot merge class \"{from}\" into itself")));
        }
        self.relabel_class(from, into);
        Ok(())
    }

    /// Moves one picture to the existing class `to`.
    pub fn move_to(&mut self, id: u32, to: &str) -> Result<()> {
        self.known_class(to)?;
        let image = self.images.iter_mut().find(|i| i.id == id).ok_or_else(|| unknown_picture(id))?;
        image.label = to.to_string();
        Ok(())
    }

    fn relabel_class(&mut self, from: &str, to: &str) {
        self.classes.remove(from);
        self.classes.insert(to.to_string());
        for image in self.images.iter_mut().filter(|i| i.label == from) {
            image.label = to.to_string();
        }
    }

    fn known_class(&self, label: &str) -> Result<()> {
        if self.classes.contains(label) {
            Ok(())
        } else {
            Err(Error::Dataset(format!("there is no class named \"{label}\"")))
        }
    }

    /// Class labels, sorted; a label's position is its class index.
    pub fn labels(&self) -> Vec<String> {
        self.classes.iter().cloned().collect()
    }

    pub fn images(&self) -> &[LabelledImage] {
        &self.images
    }

    pub fn get(&self, id: u32) -> Option<&LabelledImage> {
        self.images.iter().find(|i| i.id == id)
    }

    /// The bytes picture `id` is kept as, which [`Self::add_compact`] takes back.
    pub fn compact(&self, id: u32) -> Result<&[u8]> {
        self.get(id).map(|image| image.stored.bytes()).ok_or_else(|| unknown_picture(id))
    }

    pub fn class_index(&self, label: &str) -> Option<usize> {
        self.classes.iter().position(|l| l == label)
    }

    pub fn summary(&self) -> DatasetSummary {
        let classes: Vec<ClassSummary> = self
            .classes
            .iter()
            .map(|label| ClassSummary { label: label.clone(), count: self.images.iter().filter(|i| &i.label == label).count() })
            .collect();
        let problem = trainability_problem(&classes);
        DatasetSummary { images: self.images.len(), trainable: problem.is_none(), problem, classes }
    }

    /// `Ok` when the set can be trained on, else the reason as a [`Error::Dataset`].
    pub fn check_trainable(&self) -> Result<()> {
        match self.summary().problem {
            None => Ok(()),
            Some(problem) => Err(Error::Dataset(problem)),
        }
    }
}

/// A class name as typed or as a folder gave it: trimmed, and one that a dataset folder of that
/// name would give back under the rule of [`super::labels`] (no `/`, not a hidden or clutter
/// folder's name), so that a class made on the page survives a round trip through folders.
fn valid_label(label: &str) -> Result<String> {
    let label = label.trim();
    let refuse = |why: &str| Err(Error::Dataset(format!("{why}: choose another class name")));
    if label.is_empty() {
        return Err(Error::Dataset("a class name cannot be empty".into()));
    }
    if label.contains('/') {
        return refuse(&format!("\"{label}\" contains \"/\", which separates folders"));
    }
    if label.chars().any(char::is_control) {
        return refuse("a class name cannot contain control characters (a tab, a line break)");
    }
    if label_of(&format!("{label}/picture")).as_deref() != Some(label) {
        return refuse(&format!("\"{label}\" is the name of a folder datasets skip (hidden, or the system's)"));
    }
    Ok(label.to_string())
}

fn unknown_picture(id: u32) -> Error {
    Error::Dataset(format!("there is no picture with id {id} (it was removed)"))
}

fn trainability_problem(classes: &[ClassSummary]) -> Option<String> {
    if let Some(empty) = classes.iter().find(|c| c.count == 0) {
        return Some(format!("class \"{}\" has no images: add some or remove it", empty.label));
    }
    if classes.len() < 2 {
        return Some(match classes.first() {
            None => "add images in at least two classes (one folder per class)".into(),
            Some(only) => format!("only one class (\"{}\"): add a second class to train a classifier", only.label),
        });
    }
    if let Some(small) = classes.iter().find(|c| c.count < MIN_IMAGES_PER_CLASS) {
        return Some(format!(
            "class \"{}\" has {} image; each class needs at least {MIN_IMAGES_PER_CLASS}",
            small.label, small.count
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb};
    use std::io::Cursor;

    fn png(color: [u8; 3]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        RgbImage::from_pixel(32, 24, Rgb(color)).write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn reports_what_blocks_training_until_it_is_possible() {
        let mut set = ImageSet::new(BackboneSpec::efficientnet_lite0());
        assert!(set.summary().problem.unwrap().contains("at least two classes"));
        set.add("cats", "a.png", &png([200, 10, 10])).unwrap();
        assert!(set.summary().problem.unwrap().contains("only one class (\"cats\")"));
        set.add_class("dogs").unwrap();
        assert!(set.summary().problem.unwrap().contains("class \"dogs\" has no images"));
        set.add("dogs", "b.png", &png([10, 10, 200])).unwrap();
        assert!(set.summary().problem.unwrap().contains("needs at least 2"));
        set.add("dogs", "c.png", &png([10, 10, 210])).unwrap();
        set.add("cats", "d.png", &png([210, 10, 10])).unwrap();
        let summary = set.summary();
        assert!(summary.trainable, "{summary:?}");
        assert_eq!(summary.classes, vec![
            ClassSummary { label: "cats".into(), count: 2 },
            ClassSummary { label: "dogs".into(), count: 2 }
        ]);
    }

    #[test]
    fn a_bad_file_changes_nothing() {
        let mut set = ImageSet::new(BackboneSpec::efficientnet_lite0());
        set.add("cats", "a.png", &png([1, 2, 3])).unwrap();
        let err = set.add("cats", "broken.png", b"\x89PNG\r\n\x1a\nnope").unwrap_err().to_string();
        assert!(err.starts_with("broken.png: "), "{err}");
        assert!(set.add("dogs", "notes.txt", b"plain text").is_err());
        assert_eq!(set.labels(), vec!["cats"]);
        assert_eq!(set.images().len(), 1);
        assert_eq!(set.images()[0].stored.dimensions(), (341, 256));
        assert_eq!(set.images()[0].center_view(&BackboneSpec::efficientnet_lite0()).dimensions(), (224, 224));
    }

    /// A 400×300 PNG with texture, as a photo would have.
    fn textured_png() -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let picture = RgbImage::from_fn(400, 300, |x, y| Rgb([(x % 251) as u8, (y * 3 % 256) as u8, ((x * y) % 253) as u8]));
        picture.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn compact_bytes_come_back_exactly_and_anything_else_is_added_as_a_new_file() {
        let mut set = ImageSet::new(BackboneSpec::efficientnet_lite0());
        let original = textured_png();
        let a = set.add("cats", "a.png", &original).unwrap();
        let compact = set.get(a).unwrap().stored.bytes().to_vec();

        // Taken back byte for byte: the same picture, not a second generation of it.
        let b = set.add_compact("cats", "a.png", &compact).unwrap();
        assert_eq!(set.get(b).unwrap().stored.bytes(), &compact[..]);
        assert_eq!(set.get(b).unwrap().pixels(), set.get(a).unwrap().pixels());

        // Bytes that are not a stored picture are added as a new file would be.
        let c = set.add_compact("cats", "c.png", &original).unwrap();
        assert_eq!(set.get(c).unwrap().stored.bytes(), &compact[..]);
        let mut small = Cursor::new(Vec::new());
        RgbImage::from_pixel(100, 80, Rgb([9, 99, 199])).write_to(&mut small, ImageFormat::Jpeg).unwrap();
        let d = set.add_compact("cats", "d.jpg", small.get_ref()).unwrap();
        assert_eq!(set.get(d).unwrap().stored.dimensions(), (320, 256));

        // Damaged bytes are refused like any file, naming it, and change nothing.
        let before = set.images().len();
        let err = set.add_compact("cats", "a.png", &compact[..compact.len() - 40]).unwrap_err().to_string();
        assert!(err.starts_with("a.png: truncated image"), "{err}");
        assert!(set.add_compact("cats", "e.png", b"").is_err());
        assert_eq!(set.images().len(), before);
    }

    #[test]
    fn a_picture_prepared_apart_is_added_as_add_adds_it() {
        let spec = BackboneSpec::efficientnet_lite0();
        let mut set = ImageSet::new(spec.clone());
        let a = set.add("cats", "a.png", &textured_png()).unwrap();
        // Prepared on another thread, as the CLI does.
        let prepared = std::thread::spawn(move || PreparedImage::new(&BackboneSpec::efficientnet_lite0(), " dogs ", "b.png", &textured_png()));
        let b = set.add_prepared(prepared.join().unwrap().unwrap());
        assert_eq!(b, a + 1);
        let (a, b) = (set.get(a).unwrap(), set.get(b).unwrap());
        assert_eq!((b.label.as_str(), b.file_name.as_str()), ("dogs", "b.png"), "the label is checked and trimmed as add does");
        assert_eq!(b.stored.bytes(), a.stored.bytes());
        // What add refuses, preparing refuses, with the same message.
        let err = PreparedImage::new(&spec, "cats", "broken.png", b"\x89PNG\r\n\x1a\nnope").err().unwrap().to_string();
        assert_eq!(err, set.add("cats", "broken.png", b"\x89PNG\r\n\x1a\nnope").unwrap_err().to_string());
        assert!(PreparedImage::new(&spec, "", "c.png", &textured_png()).is_err(), "an empty label");
    }

    #[test]
    fn labels_are_sorted_whatever_the_order_of_adding() {
        let mut set = ImageSet::new(BackboneSpec::efficientnet_lite0());
        set.add("zebra", "z.png", &png([0, 0, 0])).unwrap();
        set.add("ant", "a.png", &png([0, 0, 0])).unwrap();
        assert_eq!(set.labels(), vec!["ant", "zebra"]);
        assert_eq!(set.class_index("zebra"), Some(1));
        set.remove_class("ant");
        assert_eq!(set.labels(), vec!["zebra"]);
    }

    fn two_classes() -> (ImageSet, [u32; 3]) {
        let mut set = ImageSet::new(BackboneSpec::efficientnet_lite0());
        let a = set.add("cats", "a.png", &png([200, 10, 10])).unwrap();
        let b = set.add("cats", "b.png", &png([210, 10, 10])).unwrap();
        let c = set.add("dogs", "c.png", &png([10, 10, 200])).unwrap();
        (set, [a, b, c])
    }

    fn labels_of(set: &ImageSet) -> Vec<(u32, String)> {
        set.images().iter().map(|i| (i.id, i.label.clone())).collect()
    }

    #[test]
    fn a_renamed_class_keeps_its_pictures_and_their_ids() {
        let (mut set, [a, b, c]) = two_classes();
        assert_eq!(set.rename_class("cats", "  zebras ").unwrap(), "zebras");
        assert_eq!(set.labels(), vec!["dogs", "zebras"]);
        assert_eq!(labels_of(&set), vec![(a, "zebras".into()), (b, "zebras".into()), (c, "dogs".into())]);
        assert_eq!(set.rename_class("zebras", "zebras").unwrap(), "zebras", "the same name is no change");
        // An empty class can be renamed too.
        set.add_class("birds").unwrap();
        set.rename_class("birds", "owls").unwrap();
        assert_eq!(set.labels(), vec!["dogs", "owls", "zebras"]);
    }

    #[test]
    fn a_rename_that_cannot_be_done_says_why_and_changes_nothing() {
        let (mut set, _) = two_classes();
        let before = labels_of(&set);
        let refused = |set: &mut ImageSet, from: &str, to: &str| set.rename_class(from, to).unwrap_err().to_string();
        assert!(refused(&mut set, "cats", "dogs").contains("already a class named \"dogs\": merge"));
        assert!(refused(&mut set, "cats", " dogs\t").contains("already a class named \"dogs\""));
        assert!(refused(&mut set, "cats", "   ").contains("cannot be empty"));
        assert!(refused(&mut set, "cats", "").contains("cannot be empty"));
        assert!(refused(&mut set, "cows", "bulls").contains("no class named \"cows\""));
        assert!(refused(&mut set, "cats", "a/b").contains("\"/\""));
        assert!(refused(&mut set, "cats", ".hidden").contains("folder datasets skip"));
        assert!(refused(&mut set, "cats", "__MACOSX").contains("folder datasets skip"));
        assert!(refused(&mut set, "cats", "..").contains("folder datasets skip"));
        assert!(refused(&mut set, "cats", "a\nb").contains("control characters"));
        assert_eq!(set.rename_class("cats", "dogs").unwrap_err().kind(), crate::error::ErrorKind::Dataset);
        assert_eq!(labels_of(&set), before);
        assert_eq!(set.labels(), vec!["cats", "dogs"]);
    }

    #[test]
    fn every_accepted_name_is_the_label_its_folder_would_give() {
        let mut set = ImageSet::new(BackboneSpec::efficientnet_lite0());
        for name in ["cats", " spaced out ", "été", "a.b", "..c", "x y/z", ".d", "Thumbs.db", "", "\u{7f}"] {
            if let Ok(()) = set.add_class(name) {
                let label = name.trim();
                assert_eq!(super::super::labels::label_of(&format!("{label}/a.jpg")).as_deref(), Some(label), "{name:?}");
            }
        }
        assert_eq!(set.labels(), vec!["Thumbs.db", "a.b", "cats", "spaced out", "été"]);
    }

    #[test]
    fn merging_moves_every_picture_and_drops_the_class() {
        let (mut set, [a, b, c]) = two_classes();
        set.merge_classes("dogs", "cats").unwrap();
        assert_eq!(set.labels(), vec!["cats"]);
        assert_eq!(labels_of(&set), vec![(a, "cats".into()), (b, "cats".into()), (c, "cats".into())]);
        assert!(set.merge_classes("cats", "cats").unwrap_err().to_string().contains("into itself"));
        assert!(set.merge_classes("cats", "dogs").unwrap_err().to_string().contains("no class named \"dogs\""));
        assert!(set.merge_classes("dogs", "cats").unwrap_err().to_string().contains("no class named \"dogs\""));
        assert_eq!(set.summary().classes, vec![ClassSummary { label: "cats".into(), count: 3 }]);
    }

    #[test]
    fn pictures_move_between_classes_and_are_removed_by_id() {
        let (mut set, [a, b, c]) = two_classes();
        set.move_to(a, "dogs").unwrap();
        assert_eq!(labels_of(&set), vec![(a, "dogs".into()), (b, "cats".into()), (c, "dogs".into())]);
        assert!(set.move_to(a, "birds").unwrap_err().to_string().contains("no class named \"birds\""));
        assert!(set.move_to(99, "cats").unwrap_err().to_string().contains("no picture with id 99"));
        set.remove(b).unwrap();
        assert!(set.remove(b).unwrap_err().to_string().contains("no picture with id"));
        // The emptied class stays, and says it is empty.
        assert_eq!(set.labels(), vec!["cats", "dogs"]);
        assert!(set.summary().problem.unwrap().contains("class \"cats\" has no images"));
    }
}
