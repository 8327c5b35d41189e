//! The contract between the engine and the page: the types the wasm boundary (`web.rs`) passes
//! besides the core's own ([`crate::Event`], [`crate::Recipe`], ...), and the test that writes
//! all of their TypeScript declarations, with the recipe's settings table and defaults, into
//! `www/src/engine/generated.ts`, failing when the checked-in file is out of date.

use serde::Serialize;

use crate::backend::BackendKind;
use crate::data::DatasetSummary;
use crate::error::{Error, ErrorKind};
use crate::session::{Session, Stage};
use crate::train::Recommendation;

/// What the page shows about a running engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct EngineInfo {
    /// The backend in use.
    pub backend: BackendKind,
    /// Why "auto" fell back to the CPU, in the engine's words, when it did.
    pub backend_note: Option<String>,
    /// The architecture, e.g. `efficientnet_lite0`.
    pub backbone: String,
    /// Side of the square the backbone sees, in pixels.
    pub input_size: u32,
    /// Backbone units phase 2 can unfreeze (the `unfreeze` setting's upper bound), and what one is.
    pub max_unfreeze: usize,
    pub units_description: String,
    /// The classes of the webtune export the backbone came from, when it did.
    pub continues_from: Option<Vec<String>>,
}

/// The pictures as the engine has them, the recipe it recommends for them, and where the
/// session is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    pub dataset: DatasetSummary,
    pub recommendation: Recommendation,
    pub stage: Stage,
}

impl Overview {
    pub fn of(session: &Session) -> Self {
        Self { dataset: session.summary(), recommendation: session.recommendation(), stage: session.stage() }
    }
}

/// An [`Error`] as the page receives it: the page acts on `kind`, shows `reason` beside `file`
/// (or `message` alone), and points at the form field named by `setting`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    pub kind: ErrorKind,
    /// The whole message, file name included.
    pub message: String,
    /// The message without the file name.
    pub reason: String,
    pub file: Option<String>,
    pub setting: Option<String>,
}

impl From<&Error> for ErrorInfo {
    fn from(error: &Error) -> Self {
        Self {
            kind: error.kind(),
            message: error.to_string(),
            reason: error.reason(),
            file: error.file().map(str::to_string),
            setting: error.setting().map(str::to_string),
        }
    }
}

#[cfg(test)]
mod typescript {
    use ts_rs::{Config, TS};

    use super::*;
    use crate::recipe::{Bound, Recipe, SETTINGS, Setting, SettingKind};
    use crate::session::{Event, Outcome, Phase, Started};

    const GENERATED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/www/src/engine/generated.ts");

    fn generated() -> String {
        let cfg = Config::new().with_large_int("number");
        let mut out = String::from(
            "// Generated from the engine's Rust types by `cargo test` (src/boundary.rs): do not edit.\n\
             // `UPDATE_GENERATED=1 cargo test --lib boundary` rewrites it after a change on the Rust side.\n\n",
        );
        let decls = [
            crate::data::Augmentation::decl(&cfg),
            BackendKind::decl(&cfg),
            Bound::decl(&cfg),
            crate::data::ClassSummary::decl(&cfg),
            crate::train::ClassMetrics::decl(&cfg),
            DatasetSummary::decl(&cfg),
            crate::explain::DuplicateGroup::decl(&cfg),
            crate::explain::DuplicateKind::decl(&cfg),
            crate::explain::DuplicatePicture::decl(&cfg),
            EngineInfo::decl(&cfg),
            crate::train::EpochReport::decl(&cfg),
            ErrorInfo::decl(&cfg),
            ErrorKind::decl(&cfg),
            crate::train::Evaluation::decl(&cfg),
            Event::decl(&cfg),
            crate::train::FineTuneOptions::decl(&cfg),
            crate::explain::GradCam::decl(&cfg),
            crate::train::HeadOptions::decl(&cfg),
            crate::train::Misclassified::decl(&cfg),
            Outcome::decl(&cfg),
            Overview::decl(&cfg),
            Phase::decl(&cfg),
            crate::inference::Prediction::decl(&cfg),
            Recipe::decl(&cfg),
            Recommendation::decl(&cfg),
            Setting::decl(&cfg),
            SettingKind::decl(&cfg),
            Stage::decl(&cfg),
            Started::decl(&cfg),
            crate::explain::Suspect::decl(&cfg),
            crate::explain::SuspectReport::decl(&cfg),
        ];
        for decl in decls {
            out.push_str("export ");
            out.push_str(decl.trim());
            out.push_str("\n\n");
        }
        let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).expect("plain data");
        out.push_str("/** Every setting of the recipe with its range: the engine refuses exactly what lies outside. */\n");
        out.push_str(&format!("export const SETTINGS: Setting[] = {};\n\n", json(serde_json::to_value(SETTINGS).unwrap())));
        out.push_str("/** The recipe's defaults. */\n");
        out.push_str(&format!("export const DEFAULT_RECIPE: Recipe = {};\n", json(serde_json::to_value(Recipe::default()).unwrap())));
        out.push_str(
            "\n/**\n * The largest picture file the engine reads (`webtune::data::MAX_FILE_BYTES`). The page checks it\n \
             * before a file's bytes are read at all, so a video in a class folder or a huge zip entry never\n \
             * reaches the engine's memory.\n */\n",
        );
        out.push_str(&format!("export const MAX_FILE_BYTES = {};\n", crate::data::MAX_FILE_BYTES));
        out
    }

    /// The page's types and settings table are generated from the engine's: this fails when the
    /// checked-in file differs from what the Rust types say now.
    #[test]
    fn generated_typescript_is_current() {
        let want = generated();
        if std::env::var_os("UPDATE_GENERATED").is_some() {
            std::fs::write(GENERATED, &want).unwrap();
            return;
        }
        let have = std::fs::read_to_string(GENERATED).unwrap_or_default();
        assert!(
            have == want,
            "{GENERATED} is out of date with the Rust types: run `UPDATE_GENERATED=1 cargo test --lib boundary` and commit it"
        );
    }
}
