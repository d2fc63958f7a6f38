//! The test models' cache: `$ATTEND_CACHE/models` (default `~/.cache/attend/models`), filled by
//! tests/fetch-models.sh.

use std::path::PathBuf;

/// `file` in the model cache; panics saying what to run when it is missing.
pub fn cached_model(file: &str) -> PathBuf {
    let dir = std::env::var_os("ATTEND_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/attend"));
    let p = dir.join("models").join(file);
    assert!(
        p.exists(),
        "{} is missing: run tests/fetch-models.sh",
        p.display()
    );
    p
}
