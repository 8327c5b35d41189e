//! The recipe: every setting of a training run, with its default and its allowed range declared
//! once, here. The engine validates against [`SETTINGS`]; the page builds its form from the same
//! table (generated into TypeScript by this crate's tests), and the CLI takes its defaults from
//! [`Recipe::default`], so none of them can drift from the others.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::Augmentation;
use crate::error::{Error, Result};
use crate::model::BackboneKind;
use crate::train::{FineTuneOptions, HeadOptions};

/// Everything a training run needs besides the pictures: phase 1 (the head), whether and how
/// deep phase 2 fine-tunes, and phase 2's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(default, rename_all = "camelCase")]
pub struct Recipe {
    pub head: HeadOptions,
    /// Backbone units to fine-tune after the head, from the end; 0 trains the head only.
    /// `None` (the default) takes the recommendation for the data ([`crate::train::recommend`]).
    pub unfreeze: Option<usize>,
    pub fine_tune: FineTuneOptions,
    pub augmentation: Augmentation,
    /// Views cached per training picture for phase 2: the center view, then augmented ones
    /// (default 2; only the center view when augmentation is off).
    pub views_per_image: usize,
}

impl Default for Recipe {
    fn default() -> Self {
        Self {
            head: HeadOptions::default(),
            unfreeze: None,
            fine_tune: FineTuneOptions::default(),
            augmentation: Augmentation::default(),
            views_per_image: 2,
        }
    }
}

/// How a setting's value is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum SettingKind {
    Integer,
    Number,
    Boolean,
}

/// One end of a setting's range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Bound {
    pub value: f64,
    /// Whether `value` itself is allowed.
    pub inclusive: bool,
}

const fn incl(value: f64) -> Option<Bound> {
    Some(Bound { value, inclusive: true })
}
const fn excl(value: f64) -> Option<Bound> {
    Some(Bound { value, inclusive: false })
}

/// One setting of the recipe: where it is, what it means, and what the engine accepts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Setting {
    /// Path of the field in the recipe's JSON, e.g. `head.learningRate`.
    pub key: &'static str,
    pub label: &'static str,
    /// One line for the user: what it does, when to change it.
    pub help: &'static str,
    pub kind: SettingKind,
    pub min: Option<Bound>,
    /// `None` with `max_is_units`: the backbone's number of units; otherwise unbounded.
    pub max: Option<Bound>,
    /// The upper bound is the backbone's unit count (known once a backbone is loaded).
    pub max_is_units: bool,
    /// Shown multiplied by this (100 for shares shown as percentages).
    pub display_scale: f64,
    /// Tucked away under "Advanced" on the page.
    pub advanced: bool,
}

const fn setting(key: &'static str, label: &'static str, help: &'static str, kind: SettingKind, min: Option<Bound>, max: Option<Bound>) -> Setting {
    Setting { key, label, help, kind, min, max, max_is_units: false, display_scale: 1.0, advanced: true }
}

use SettingKind::{Boolean, Integer, Number};

/// Every setting of [`Recipe`], in the order the page shows them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        advanced: false,
        max_is_units: true,
        ..setting(
            "unfreeze",
            "Backbone blocks to fine-tune",
            "After the head, fine-tune this many backbone units from the end (0: head only). Empty: the recommendation for your data.",
            Integer,
            incl(0.0),
            None,
        )
    },
    setting("head.epochs", "Head epochs", "Most passes over the training pictures in phase 1.", Integer, incl(1.0), incl(10_000.0)),
    setting("head.learningRate", "Head learning rate", "Adam's step size for the new head.", Number, excl(0.0), incl(1.0)),
    setting("head.batchSize", "Head batch size", "Pictures per step in phase 1 (clamped to the training split).", Integer, incl(1.0), incl(4096.0)),
    setting("head.hiddenUnits", "Hidden units", "A hidden layer in the head (0: a single linear layer).", Integer, incl(0.0), incl(4096.0)),
    setting("head.dropout", "Dropout", "Share of features dropped before each linear layer while training.", Number, incl(0.0), excl(1.0)),
    Setting {
        display_scale: 100.0,
        ..setting(
            "head.valFraction",
            "Validation share",
            "Share of each class held out to measure the model honestly (0: no validation).",
            Number,
            incl(0.0),
            incl(0.5),
        )
    },
    setting("head.seed", "Seed", "Same seed, same pictures and settings: the same model.", Integer, incl(0.0), incl(4_294_967_295.0)),
    setting(
        "head.patience",
        "Head patience",
        "Head epochs without a better validation loss before phase 1 stops (the best epoch is kept); 0 runs every epoch.",
        Integer,
        incl(0.0),
        incl(10_000.0),
    ),
    setting("head.weightDecay", "Weight decay", "L2 penalty on the head's weights; keeps it from over-fitting small sets.", Number, incl(0.0), incl(1.0)),
    setting("head.standardize", "Standardise features", "Scale each feature by its training-split statistics, so one learning rate fits every dataset.", Boolean, None, None),
    setting(
        "fineTune.epochs",
        "Fine-tune epochs",
        "Most epochs of phase 2 (fewer when the step budget fills first); early stopping usually ends sooner.",
        Integer,
        incl(1.0),
        incl(1000.0),
    ),
    setting(
        "fineTune.steps",
        "Step budget",
        "With many pictures, phase 2 runs fewer epochs (at least 3) to take about this many steps; 0: no budget.",
        Integer,
        incl(0.0),
        incl(1_000_000.0),
    ),
    setting("fineTune.learningRate", "Fine-tune learning rate", "The head's peak rate in phase 2.", Number, excl(0.0), incl(1.0)),
    setting(
        "fineTune.backboneLrFactor",
        "Backbone rate factor",
        "The unfrozen blocks learn at the head's rate times this.",
        Number,
        excl(0.0),
        incl(1.0),
    ),
    setting("fineTune.warmupEpochs", "Warmup epochs", "Epochs of linear warmup before the cosine decay.", Integer, incl(0.0), incl(100.0)),
    setting("fineTune.labelSmoothing", "Label smoothing", "Softens the targets; helps against over-confident models.", Number, incl(0.0), excl(0.5)),
    setting("fineTune.patience", "Patience", "Epochs without a better validation loss before phase 2 stops (the best epoch is kept).", Integer, incl(1.0), incl(1000.0)),
    setting("fineTune.batchSize", "Fine-tune batch size", "Views per step in phase 2.", Integer, incl(1.0), incl(1024.0)),
    setting("viewsPerImage", "Views per picture", "Views cached per training picture for phase 2: the center view, then augmented ones.", Integer, incl(1.0), incl(32.0)),
    setting("augmentation.enabled", "Augment", "Random crops, flips and colour changes in phase 2.", Boolean, None, None),
    setting("augmentation.horizontalFlip", "Mirror left-right", "Turn off where left and right matter (text, digits, arrows).", Boolean, None, None),
    setting("augmentation.colorJitter", "Colour jitter", "Largest relative change of brightness, contrast and saturation.", Number, incl(0.0), incl(0.5)),
    Setting {
        display_scale: 100.0,
        ..setting(
            "augmentation.minCropArea",
            "Smallest crop",
            "Smallest share of the picture a random crop covers.",
            Number,
            incl(0.05),
            incl(1.0),
        )
    },
];

impl Setting {
    /// The upper bound, `units` being the backbone's unit count (for `unfreeze`).
    fn upper(&self, units: Option<usize>) -> Option<Bound> {
        match (self.max_is_units, units) {
            (true, Some(units)) => incl(units as f64),
            _ => self.max,
        }
    }

    /// Whether `value` is allowed, `units` being the backbone's unit count.
    pub fn accepts(&self, value: f64, units: Option<usize>) -> bool {
        let max = self.upper(units);
        let above = |b: Bound| if b.inclusive { value >= b.value } else { value > b.value };
        let below = |b: Bound| if b.inclusive { value <= b.value } else { value < b.value };
        value.is_finite()
            && (self.kind != SettingKind::Integer || value.fract() == 0.0)
            && self.min.is_none_or(above)
            && max.is_none_or(below)
    }

    /// "between 1 and 1000", "in (0, 1]": the allowed range in words.
    pub fn range_text(&self, units: Option<usize>) -> String {
        let max = self.upper(units);
        match (self.min, max) {
            (Some(lo), Some(hi)) if lo.inclusive && hi.inclusive && self.kind == SettingKind::Integer => {
                format!("a whole number between {} and {}", lo.value, hi.value)
            }
            (Some(lo), Some(hi)) => format!(
                "a number in {}{}, {}{}",
                if lo.inclusive { "[" } else { "(" },
                lo.value,
                hi.value,
                if hi.inclusive { "]" } else { ")" }
            ),
            (Some(lo), None) => format!("{} {}", if lo.inclusive { "at least" } else { "above" }, lo.value),
            (None, Some(hi)) => format!("{} {}", if hi.inclusive { "at most" } else { "below" }, hi.value),
            (None, None) => "true or false".into(),
        }
    }
}

/// The value at a dotted `key` of a JSON object.
fn lookup<'a>(json: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(json, |v, part| v.get(part))
}

/// Checks the settings whose keys start with `prefix` (`""`: all) against `json`, the serialised
/// part of the recipe they live in. The first setting out of range is named in the error.
pub(crate) fn check(json: &Value, prefix: &str, units: Option<usize>) -> Result<()> {
    for s in SETTINGS.iter().filter(|s| s.key.starts_with(prefix)) {
        let key = &s.key[prefix.len()..];
        let value = match lookup(json, key) {
            None | Some(Value::Null) => continue, // optional (unfreeze) or not part of this group
            Some(v) => v,
        };
        let ok = match (s.kind, value) {
            (SettingKind::Boolean, Value::Bool(_)) => true,
            (SettingKind::Boolean, _) => false,
            (_, Value::Number(n)) => n.as_f64().is_some_and(|v| s.accepts(v, units)),
            _ => false,
        };
        if !ok {
            let got = value.as_f64().map_or_else(|| value.to_string(), |v| v.to_string());
            return Err(Error::Settings {
                setting: s.key.to_string(),
                message: format!("{} must be {}, got {got}", s.label.to_lowercase(), s.range_text(units)),
            });
        }
    }
    Ok(())
}

/// A settings struct as the JSON [`check`] reads. Non-finite floats serialise as `null`, which
/// [`check`] skips: callers refuse them first.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::Backend(format!("settings do not serialise: {e}")))
}

/// Refuses NaN and infinities among `values` (keys relative to `prefix`): JSON has no way to
/// write them, so [`check`] would never see them.
pub(crate) fn finite(prefix: &str, values: &[(&str, f64)]) -> Result<()> {
    for &(key, value) in values {
        if !value.is_finite() {
            let key = format!("{prefix}{key}");
            let s = SETTINGS.iter().find(|s| s.key == key).expect("a declared setting");
            return Err(Error::Settings { setting: key, message: format!("{} must be {}, got {value}", s.label.to_lowercase(), s.range_text(None)) });
        }
    }
    Ok(())
}

impl Recipe {
    /// Checks every setting against [`SETTINGS`]; `kind` bounds `unfreeze`.
    pub fn validate(&self, kind: BackboneKind) -> Result<()> {
        self.head.validate()?;
        finite("fineTune.", &[("learningRate", self.fine_tune.learning_rate), ("backboneLrFactor", self.fine_tune.backbone_lr_factor), ("labelSmoothing", self.fine_tune.label_smoothing)])?;
        finite("augmentation.", &[("colorJitter", self.augmentation.color_jitter), ("minCropArea", self.augmentation.min_crop_area)])?;
        check(&to_json(self)?, "", Some(kind.units()))
    }

    /// The recipe from JSON, missing fields taking their defaults.
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::Settings { setting: String::new(), message: format!("bad recipe: {e}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LITE: BackboneKind = BackboneKind::EfficientNetLite0;

    /// A JSON number as the field's type wants it (whole numbers for integer settings).
    fn number(s: &Setting, v: f64) -> Value {
        if s.kind == SettingKind::Integer { serde_json::json!(v as u64) } else { serde_json::json!(v) }
    }

    fn with(key: &str, value: Value) -> Recipe {
        let mut json = serde_json::to_value(Recipe::default()).unwrap();
        let mut target = &mut json;
        let parts: Vec<&str> = key.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            target = target.get_mut(*part).unwrap();
        }
        target[parts[parts.len() - 1]] = value;
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn every_recipe_field_has_exactly_one_setting() {
        fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, v)| leaves(&format!("{prefix}{k}."), v, out)),
                _ => out.push(prefix.trim_end_matches('.').to_string()),
            }
        }
        let mut fields = Vec::new();
        leaves("", &serde_json::to_value(Recipe::default()).unwrap(), &mut fields);
        let mut keys: Vec<String> = SETTINGS.iter().map(|s| s.key.to_string()).collect();
        fields.sort();
        keys.sort();
        assert_eq!(fields, keys, "SETTINGS must declare every field of Recipe, once");
    }

    #[test]
    fn the_defaults_are_valid() {
        Recipe::default().validate(LITE).unwrap();
    }

    /// The boundary of each setting, as declared, is exactly what validation accepts: the value
    /// on an inclusive bound passes, on an exclusive one fails, and a step beyond fails.
    #[test]
    fn validation_refuses_exactly_outside_each_declared_range() {
        let units = LITE.units();
        for s in SETTINGS.iter().filter(|s| s.kind != SettingKind::Boolean) {
            let step = if s.kind == SettingKind::Integer { 1.0 } else { 1e-6 };
            let max = if s.max_is_units { incl(units as f64) } else { s.max };
            for (bound, outward) in [(s.min, -step), (max, step)] {
                let Some(b) = bound else { continue };
                let on = with(s.key, number(s, b.value)).validate(LITE);
                assert_eq!(on.is_ok(), b.inclusive, "{} at {}: {on:?}", s.key, b.value);
                let beyond = b.value + outward;
                if s.kind == SettingKind::Integer && beyond < 0.0 {
                    continue; // unsigned fields cannot hold it at all
                }
                let err = with(s.key, number(s, beyond)).validate(LITE).unwrap_err();
                assert_eq!(err.setting(), Some(s.key), "{err}");
                assert!(err.to_string().contains(&s.label.to_lowercase()), "{err}");
            }
        }
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        let mut recipe = Recipe::default();
        recipe.head.learning_rate = f64::NAN;
        assert_eq!(recipe.validate(LITE).unwrap_err().setting(), Some("head.learningRate"));
    }

    #[test]
    fn missing_fields_take_defaults() {
        let recipe = Recipe::from_json(r#"{"head": {"epochs": 5}, "unfreeze": 0}"#).unwrap();
        assert_eq!(recipe.head.epochs, 5);
        assert_eq!(recipe.head.learning_rate, HeadOptions::default().learning_rate);
        assert_eq!(recipe.unfreeze, Some(0));
        assert_eq!(recipe.views_per_image, 2);
    }
}
