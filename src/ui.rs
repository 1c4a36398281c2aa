//! The dashboard's files, embedded in the binary (`ui/static/`, no build step): their content
//! types, a version hash for cache-busting URLs, and gzip copies made once at first use.
//!
//! Assets are addressed as `/assets/<version>/<path>`, where `<version>` hashes every file: a
//! browser may cache them forever, and a new binary changes every URL. `index.html` names that
//! version and is never cached.
//!
//! Must not: read files at run time (one file to deploy), or need Node to build.

use std::io::Write;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    /// The same bytes gzip-compressed, when that is smaller.
    pub gzip: Option<Vec<u8>>,
}

macro_rules! files {
    ($($path:literal => $type:literal),+ $(,)?) => {
        const FILES: &[(&str, &str, &[u8])] = &[
            $(($path, $type, include_bytes!(concat!("../ui/static/", $path)))),+
        ];
    };
}

files! {
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "dom.js" => "text/javascript; charset=utf-8",
    "filters.js" => "text/javascript; charset=utf-8",
    "logs.js" => "text/javascript; charset=utf-8",
    "drawer.js" => "text/javascript; charset=utf-8",
    "insights.js" => "text/javascript; charset=utf-8",
    "signals.js" => "text/javascript; charset=utf-8",
    "settings.js" => "text/javascript; charset=utf-8",
    "deliveries.js" => "text/javascript; charset=utf-8",
    "audit.js" => "text/javascript; charset=utf-8",
    "vocabulary.js" => "text/javascript; charset=utf-8",
    "views.js" => "text/javascript; charset=utf-8",
    "role.js" => "text/javascript; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "vendor/uPlot.iife.min.js" => "text/javascript; charset=utf-8",
    "vendor/uPlot.min.css" => "text/css; charset=utf-8",
}

/// Where the version goes in `index.html`.
const VERSION_MARK: &str = "__ASSET_VERSION__";

pub struct Assets {
    pub version: String,
    /// `index.html` with the version filled in.
    pub index: Asset,
    files: Vec<Asset>,
}

impl Assets {
    /// The embedded files, hashed and compressed once per process.
    pub fn get() -> &'static Assets {
        static ASSETS: OnceLock<Assets> = OnceLock::new();
        ASSETS.get_or_init(Assets::build)
    }

    fn build() -> Assets {
        let mut hasher = Sha256::new();
        for (path, _, bytes) in FILES {
            hasher.update(path.as_bytes());
            hasher.update(bytes);
        }
        let version = hex::encode(&hasher.finalize()[..6]);
        let files: Vec<Asset> = FILES
            .iter()
            .filter(|(path, _, _)| *path != "index.html")
            .map(|(path, content_type, bytes)| Asset {
                path,
                content_type,
                bytes,
                gzip: gzip(bytes),
            })
            .collect();
        let (_, index_type, index_bytes) = FILES
            .iter()
            .find(|(path, _, _)| *path == "index.html")
            .expect("index.html is embedded");
        let html = std::str::from_utf8(index_bytes)
            .expect("index.html is UTF-8")
            .replace(VERSION_MARK, &version);
        let html: &'static [u8] = Box::leak(html.into_bytes().into_boxed_slice());
        Assets {
            index: Asset {
                path: "index.html",
                content_type: index_type,
                bytes: html,
                gzip: gzip(html),
            },
            version,
            files,
        }
    }

    pub fn file(&self, path: &str) -> Option<&Asset> {
        self.files.iter().find(|a| a.path == path)
    }
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() + 64 < bytes.len()).then_some(compressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_the_versioned_assets() {
        let assets = Assets::get();
        let html = std::str::from_utf8(assets.index.bytes).unwrap();
        assert!(!html.contains(VERSION_MARK));
        assert!(html.contains(&format!("/assets/{}/app.js", assets.version)));
        assert!(assets.file("app.js").is_some());
        assert!(assets.file("index.html").is_none());
        assert!(assets.file("../Cargo.toml").is_none());
    }

    /// A module left out of `files!` would only show up as a 404 in the browser.
    #[test]
    fn every_file_in_ui_static_is_embedded() {
        fn walk(dir: &std::path::Path, prefix: &str, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                if entry.file_type().unwrap().is_dir() {
                    walk(&entry.path(), &format!("{name}/"), out);
                } else {
                    out.push(name);
                }
            }
        }
        let mut on_disk = Vec::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/static");
        walk(&root, "", &mut on_disk);
        let embedded: Vec<&str> = FILES.iter().map(|(path, _, _)| *path).collect();
        // Licence texts ship in the repository, not in the page.
        for path in on_disk.into_iter().filter(|p| !p.ends_with(".LICENSE")) {
            assert!(
                embedded.contains(&path.as_str()),
                "ui/static/{path} is not in files!"
            );
        }
    }
}
