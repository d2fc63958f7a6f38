//! Resuming a cached partial download safely, as plain logic (the browser source in
//! `wasm/source.rs` does the I/O): a resumed request carries `If-Range` with the validator stored
//! when the download began, so a file that changed on the server comes back whole (200) and
//! replaces the cached part instead of being spliced onto it.

/// The response validators stored with a cached download.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    /// A strong ETag (weak ones, `W/"…"`, may not be used with `If-Range`).
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
}

impl Validators {
    /// From response headers (a weak ETag is dropped).
    pub fn from_headers(etag: Option<&str>, last_modified: Option<&str>) -> Validators {
        let clean = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(String::from);
        Validators {
            etag: clean(etag).filter(|e| !e.starts_with("W/")),
            last_modified: clean(last_modified),
        }
    }

    /// The `If-Range` value: the strong ETag, else the Last-Modified date.
    pub fn if_range(&self) -> Option<&str> {
        self.etag.as_deref().or(self.last_modified.as_deref())
    }
}

/// Extra request headers for fetching a file of which `have` bytes are cached. Without a
/// validator nothing proves the cached part belongs to today's file: the download restarts.
pub fn request_headers(have: u64, v: &Validators) -> Vec<(&'static str, String)> {
    match v.if_range() {
        Some(tag) if have > 0 => vec![
            ("Range", format!("bytes={have}-")),
            ("If-Range", tag.to_string()),
        ],
        _ => Vec::new(),
    }
}

/// The headers of a response that matter here.
#[derive(Clone, Debug, Default)]
pub struct Response<'a> {
    pub status: u16,
    pub content_length: Option<&'a str>,
    pub content_range: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

/// What to do with a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// The body continues the cached bytes: replay the cache, then append the body.
    Append { total: Option<u64> },
    /// The body is the whole file from byte 0: drop the cached bytes (the file changed, or the
    /// server ignored the Range), store these validators, then take the body.
    Restart {
        total: Option<u64>,
        validators: Validators,
    },
    /// The cache already holds the whole file (416 for a range starting at its end).
    Complete,
    /// The response cannot continue the cache (a range that does not start where the cache
    /// ends, a total that changed): drop the cache and request the whole file again.
    Refetch,
    /// An HTTP error, reported as such.
    Fail(String),
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) or `bytes */TOTAL`: (start, total).
fn content_range(v: &str) -> Option<(Option<u64>, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let start = match range.trim() {
        "*" => None,
        r => Some(r.split_once('-')?.0.parse().ok()?),
    };
    Some((start, total))
}

/// Decides how a response continues a cache of `have` bytes whose file was `stored_total`
/// bytes long when last seen (`None`: unknown). `ranged`: the request asked for `bytes=have-`.
pub fn on_response(have: u64, ranged: bool, stored_total: Option<u64>, r: &Response) -> Resume {
    // Lengths of an encoded body are not the file's.
    let identity = r
        .content_encoding
        .is_none_or(|e| e.trim().is_empty() || e.trim().eq_ignore_ascii_case("identity"));
    let cr = r.content_range.and_then(content_range);
    let length = r
        .content_length
        .and_then(|l| l.trim().parse::<u64>().ok())
        .filter(|_| identity);
    match r.status {
        200 => Resume::Restart {
            total: length,
            validators: Validators::from_headers(r.etag, r.last_modified),
        },
        206 if ranged => {
            let Some((Some(start), total)) = cr else {
                return Resume::Refetch;
            };
            let total = total.filter(|_| identity);
            let changed = matches!((stored_total, total), (Some(a), Some(b)) if a != b);
            if start != have || changed {
                return Resume::Refetch;
            }
            Resume::Append { total }
        }
        416 if ranged => match cr {
            Some((None, Some(t))) if t == have => Resume::Complete,
            None if stored_total == Some(have) => Resume::Complete,
            _ => Resume::Refetch,
        },
        s => Resume::Fail(format!("HTTP {s}{}", status_hint(s))),
    }
}

/// What an HTTP error status means for someone loading a model.
fn status_hint(status: u16) -> &'static str {
    match status {
        404 | 410 => " (not found: check the URL)",
        401 | 403 => " (access denied: the server refuses this file)",
        429 => " (too many requests: try again later)",
        500..=599 => " (server error: try again later; loading again resumes the download)",
        _ => "",
    }
}
