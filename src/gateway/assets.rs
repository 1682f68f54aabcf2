//! The web client's static files, embedded in the binary and served under names that
//! carry a hash of their content, so browsers may cache them for good and a new build
//! is never mixed with an old one.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The path it is served at: `/assets/<stem>.<hash>.<ext>`.
    pub path: String,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

/// The web client's files.
#[derive(Debug)]
pub struct Assets {
    /// The script.
    pub js: Asset,
    /// The style sheet.
    pub css: Asset,
}

impl Assets {
    /// The file served at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Asset> {
        [&self.js, &self.css].into_iter().find(|a| a.path == path)
    }
}

fn asset(stem: &str, ext: &str, content_type: &'static str, body: &'static [u8]) -> Asset {
    let digest = Sha256::digest(body);
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    Asset {
        path: format!("/assets/{stem}.{hash}.{ext}"),
        content_type,
        body,
    }
}

/// The icon browsers ask every page's origin for (`/favicon.ico`): a 32 × 32 PNG in
/// an ICO container, embedded like the rest (no request leaves the origin).
pub const FAVICON: &[u8] = include_bytes!("web/favicon.ico");

/// The embedded files, hashed once.
pub static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    js: asset(
        "app",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("web/app.js"),
    ),
    css: asset(
        "app",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("web/app.css"),
    ),
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_a_content_hash() {
        let js = &ASSETS.js;
        assert!(js.path.starts_with("/assets/app.") && js.path.ends_with(".js"));
        assert_eq!(js.path.len(), "/assets/app..js".len() + 12);
        assert_ne!(ASSETS.js.path, ASSETS.css.path);
        assert!(ASSETS.get(&ASSETS.css.path).is_some());
        assert!(ASSETS.get("/assets/app.js").is_none(), "only hashed names");
    }
}
