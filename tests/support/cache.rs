//! The test models' cache: `$ATTEND_CACHE/models` (default `~/.cache/attend/models`), filled by
//! tests/fetch-models.sh.

use std::path::PathBuf;

/// The cache's root: `$ATTEND_CACHE`, default `~/.cache/attend`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("ATTEND_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/attend"))
}

/// `file` in the model cache; panics saying what to run when it is missing.
#[allow(dead_code)] // not every test binary that includes this module uses both
pub fn cached_model(file: &str) -> PathBuf {
    let p = cache_dir().join("models").join(file);
    assert!(
        p.exists(),
        "{} is missing: run tests/fetch-models.sh",
        p.display()
    );
    p
}
