//! Resuming a cached partial download (the logic behind the browser's model cache): a resumed
//! request proves the cached part is today's file with `If-Range`, and any response that does
//! not continue it exactly makes the download start over — never a splice.

use attend::download::{on_response, request_headers, Response, Resume, Validators};

fn v(etag: Option<&str>, modified: Option<&str>) -> Validators {
    Validators::from_headers(etag, modified)
}

#[test]
fn resumed_requests_carry_if_range() {
    let strong = v(Some("\"abc\""), Some("Wed, 02 Dec 2026 01:00:00 GMT"));
    assert_eq!(
        request_headers(1000, &strong),
        vec![
            ("Range", "bytes=1000-".to_string()),
            ("If-Range", "\"abc\"".to_string())
        ]
    );
    // A weak ETag may not be used with If-Range: the date is.
    let weak = v(Some("W/\"abc\""), Some("Wed, 02 Dec 2026 01:00:00 GMT"));
    assert_eq!(
        request_headers(1000, &weak)[1],
        ("If-Range", "Wed, 02 Dec 2026 01:00:00 GMT".to_string())
    );
    // Nothing proves the cached part is today's file: ask for the whole file.
    assert!(request_headers(1000, &v(None, None)).is_empty());
    assert!(request_headers(1000, &v(Some("W/\"x\""), None)).is_empty());
    // Nothing cached: a plain request.
    assert!(request_headers(0, &strong).is_empty());
}

fn resp(
    status: u16,
    range: Option<&'static str>,
    length: Option<&'static str>,
) -> Response<'static> {
    Response {
        status,
        content_range: range,
        content_length: length,
        etag: Some("\"new\""),
        ..Default::default()
    }
}

/// The hole: a 200 answer to a resumed request (the file changed, so If-Range failed, or the
/// server ignores ranges) used to skip the cached length of the new file and append the rest.
#[test]
fn a_changed_file_restarts_the_download() {
    let r = on_response(1000, true, Some(5000), &resp(200, None, Some("6000")));
    assert_eq!(
        r,
        Resume::Restart {
            total: Some(6000),
            validators: v(Some("\"new\""), None)
        }
    );
}

#[test]
fn a_matching_range_appends() {
    let r = on_response(
        1000,
        true,
        Some(5000),
        &resp(206, Some("bytes 1000-4999/5000"), Some("4000")),
    );
    assert_eq!(r, Resume::Append { total: Some(5000) });
    let r = on_response(
        1000,
        true,
        Some(5000),
        &resp(206, Some("bytes 1000-4999/*"), None),
    );
    assert_eq!(r, Resume::Append { total: None });
}

#[test]
fn a_range_that_does_not_continue_the_cache_refetches() {
    // Wrong start, changed total, no Content-Range, or a range nobody asked for.
    for (have, cr) in [
        (1000, Some("bytes 0-4999/5000")),
        (1000, Some("bytes 1000-5999/6000")),
        (1000, None),
        (1000, Some("garbage")),
    ] {
        let r = on_response(have, true, Some(5000), &resp(206, cr, None));
        assert_eq!(r, Resume::Refetch, "{cr:?}");
    }
    assert!(matches!(
        on_response(0, false, None, &resp(206, Some("bytes 0-9/10"), None)),
        Resume::Fail(_)
    ));
}

#[test]
fn range_not_satisfiable_completes_only_a_whole_cache() {
    let r = on_response(
        5000,
        true,
        Some(5000),
        &resp(416, Some("bytes */5000"), None),
    );
    assert_eq!(r, Resume::Complete);
    // The file is now shorter or longer than the cache: start over.
    let r = on_response(
        5000,
        true,
        Some(5000),
        &resp(416, Some("bytes */4000"), None),
    );
    assert_eq!(r, Resume::Refetch);
    let r = on_response(5000, true, None, &resp(416, None, None));
    assert_eq!(r, Resume::Refetch);
}

#[test]
fn http_errors_and_encoded_lengths() {
    assert_eq!(
        on_response(0, false, None, &resp(404, None, None)),
        Resume::Fail("HTTP 404 (not found: check the URL)".into())
    );
    for (status, hint) in [
        (403, "access denied"),
        (503, "try again later"),
        (410, "not found"),
    ] {
        match on_response(0, false, None, &resp(status, None, None)) {
            Resume::Fail(m) => assert!(
                m.starts_with(&format!("HTTP {status} (")) && m.contains(hint),
                "{m}"
            ),
            other => panic!("{status}: {other:?}"),
        }
    }
    // A gzip body's Content-Length is not the file's size.
    let mut r = resp(200, None, Some("123"));
    r.content_encoding = Some("gzip");
    assert!(matches!(
        on_response(0, false, None, &r),
        Resume::Restart { total: None, .. }
    ));
}
