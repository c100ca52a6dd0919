//! `GET /rapport.js`: the website tracker, a plain script in `assets/rapport.js` compiled into the binary. It is
//! compressed once when the router is built and served gzipped to clients that accept it, with an `ETag` per
//! encoding so browsers revalidate it cheaply after the short cache lifetime.

use std::io::Write;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// The tracker's source, exactly as sites receive it.
pub const TRACKER_SOURCE: &str = include_str!("../assets/rapport.js");

/// Pages embed the script for years; a short lifetime lets a new release reach them within minutes, and the
/// `ETag` makes the revalidation a `304`.
const CACHE_CONTROL: &str = "public, max-age=300";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let script = Arc::new(TrackerScript::new(TRACKER_SOURCE));
    Router::new().route(
        "/rapport.js",
        get(move |headers: HeaderMap| {
            let script = Arc::clone(&script);
            async move { script.respond(&headers) }
        }),
    )
}

/// The script in both encodings, with their entity tags.
struct TrackerScript {
    plain: Bytes,
    plain_etag: String,
    /// `None` only if compressing failed, in which case everyone gets the plain script.
    gzipped: Option<Bytes>,
    gzipped_etag: String,
}

impl TrackerScript {
    fn new(source: &str) -> TrackerScript {
        let digest = Sha256::digest(source.as_bytes());
        let tag: String = digest.iter().take(12).map(|byte| format!("{byte:02x}")).collect();
        let gzipped = match gzip(source.as_bytes()) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "compressing rapport.js failed; serving it uncompressed");
                None
            }
        };
        TrackerScript {
            plain: Bytes::copy_from_slice(source.as_bytes()),
            plain_etag: format!("\"{tag}\""),
            gzipped,
            gzipped_etag: format!("\"{tag}-gzip\""),
        }
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let (body, etag, encoding) = match &self.gzipped {
            Some(gzipped) if accepts_gzip(request) => (gzipped.clone(), &self.gzipped_etag, Some("gzip")),
            _ => (self.plain.clone(), &self.plain_etag, None),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if let Ok(value) = HeaderValue::from_str(etag) {
            headers.insert(header::ETAG, value);
        }
        if matches_etag(request, etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/javascript; charset=utf-8"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        // Lets sites load it with `crossorigin` and Subresource Integrity.
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        if let Some(encoding) = encoding {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        (StatusCode::OK, headers, body).into_response()
    }
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// Whether `Accept-Encoding` allows gzip: named with a non-zero quality, or not named and allowed by `*`.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    let codings = request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for coding in codings {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|parameter| {
            let parameter = parameter.trim();
            let quality = parameter.strip_prefix("q=").or_else(|| parameter.strip_prefix("Q="));
            quality.is_some_and(|quality| quality.trim().parse::<f32>().is_ok_and(|quality| quality <= 0.0))
        });
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(!refused);
        } else if name == "*" {
            any = Some(!refused);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// `If-None-Match` with the weak comparison the header calls for.
fn matches_etag(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;

    use super::*;

    /// The contract promises a small script; most sites load it on every page.
    const MAX_GZIPPED_BYTES: usize = 8 * 1024;

    #[test]
    fn tracker_stays_small() {
        let script = TrackerScript::new(TRACKER_SOURCE);
        let gzipped = script.gzipped.unwrap_or_default();
        assert!(!gzipped.is_empty());
        assert!(
            gzipped.len() < MAX_GZIPPED_BYTES,
            "rapport.js is {} bytes gzipped; the bound is {MAX_GZIPPED_BYTES}",
            gzipped.len()
        );
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&gzipped[..]).read_to_string(&mut unzipped).unwrap();
        assert_eq!(unzipped, TRACKER_SOURCE);
    }

    /// Requests a script made of `source` with the given headers; returns the status and the response headers that
    /// matter, as one line.
    fn check(request: &[(&str, &str)]) -> String {
        let script = TrackerScript::new("window.x = 1;\n");
        let mut headers = HeaderMap::new();
        for (name, value) in request {
            headers.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let response = script.respond(&headers);
        let header = |name: header::HeaderName| {
            response.headers().get(name).map_or("-", |value| value.to_str().unwrap()).to_owned()
        };
        format!(
            "{} {} {} {}",
            response.status().as_u16(),
            header(header::CONTENT_ENCODING),
            header(header::ETAG),
            header(header::CONTENT_TYPE),
        )
    }

    #[test]
    fn encoding_and_revalidation() {
        let etag = "\"fe8b9321584a255acd2780b9\"";
        let gzip_etag = "\"fe8b9321584a255acd2780b9-gzip\"";
        let js = "application/javascript; charset=utf-8";
        let cases: [(&[(&str, &str)], String); 10] = [
            (&[], format!("200 - {etag} {js}")),
            (&[("accept-encoding", "gzip, deflate, br")], format!("200 gzip {gzip_etag} {js}")),
            (&[("accept-encoding", "br;q=1.0, gzip;q=0.8")], format!("200 gzip {gzip_etag} {js}")),
            (&[("accept-encoding", "gzip;q=0, *")], format!("200 - {etag} {js}")),
            (&[("accept-encoding", "*")], format!("200 gzip {gzip_etag} {js}")),
            (&[("accept-encoding", "identity")], format!("200 - {etag} {js}")),
            (&[("if-none-match", etag)], format!("304 - {etag} -")),
            (&[("if-none-match", &format!("W/{etag}"))], format!("304 - {etag} -")),
            (&[("accept-encoding", "gzip"), ("if-none-match", etag)], format!("200 gzip {gzip_etag} {js}")),
            (
                &[("accept-encoding", "gzip"), ("if-none-match", &format!("\"x\", {gzip_etag}"))],
                format!("304 - {gzip_etag} -"),
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(check(request), expected, "{request:?}");
        }
    }
}
