//! The user's labelled images, decoded and cropped once when added.

use std::collections::BTreeSet;

use image::RgbImage;
use serde::Serialize;

use super::decode::decode_image;
use super::preprocess::{center_crop, resize_shorter_side};
use crate::error::{Error, Result};
use crate::model::BackboneSpec;

/// Fewest images a class needs: one to train on and one to validate with.
pub const MIN_IMAGES_PER_CLASS: usize = 2;

#[derive(Debug, Clone)]
pub struct LabelledImage {
    pub id: u32,
    pub label: String,
    pub file_name: String,
    /// Shorter side resized to the backbone's `resize_size`: evaluation takes the center crop,
    /// augmentation random crops.
    pub pixels: RgbImage,
}

impl LabelledImage {
    /// The evaluation view: the center crop at the input size.
    pub fn center_view(&self, spec: &BackboneSpec) -> RgbImage {
        center_crop(&self.pixels, spec)
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

impl ImageSet {
    pub fn new(spec: BackboneSpec) -> Self {
        Self { spec, classes: BTreeSet::new(), images: Vec::new(), next_id: 0 }
    }

    /// Adds a class with no images yet (a folder that turned out empty, say).
    pub fn add_class(&mut self, label: &str) -> Result<()> {
        self.classes.insert(valid_label(label)?);
        Ok(())
    }

    /// Decodes, crops and adds one image. On error nothing changes.
    pub fn add(&mut self, label: &str, file_name: &str, bytes: &[u8]) -> Result<u32> {
        let label = valid_label(label)?;
        let decoded = decode_image(file_name, bytes)?;
        let pixels = resize_shorter_side(&decoded, &self.spec);
        let id = self.next_id;
        self.next_id += 1;
        self.classes.insert(label.clone());
        self.images.push(LabelledImage { id, label, file_name: file_name.to_string(), pixels });
        Ok(id)
    }

    pub fn remove(&mut self, id: u32) -> bool {
        let before = self.images.len();
        self.images.retain(|i| i.id != id);
        before != self.images.len()
    }

    pub fn remove_class(&mut self, label: &str) {
        self.classes.remove(label);
        self.images.retain(|i| i.label != label);
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

fn valid_label(label: &str) -> Result<String> {
    let label = label.trim();
    if label.is_empty() {
        return Err(Error::Dataset("a class name cannot be empty".into()));
    }
    Ok(label.to_string())
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
        assert_eq!(set.images()[0].pixels.dimensions(), (341, 256));
        assert_eq!(set.images()[0].center_view(&BackboneSpec::efficientnet_lite0()).dimensions(), (224, 224));
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
}
