//! `directResponse` (DR1-DR2).

use crate::checks::validate_http_status;
use crate::diag::{Cx, Path};
use crate::raw;

/// `directResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    pub(crate) status: u16,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) body_is_text: bool,
}

impl DirectResponse {
    /// Status code.
    pub fn status(&self) -> u16 {
        self.status
    }
    /// Body bytes (decoded from base64 when written as `bytes`).
    pub fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }
}

/// DR1-DR2: a status in range, one body form, at most 1 MiB.
pub(crate) fn validate_direct_response(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    d: &raw::HttpDirectResponse,
) -> DirectResponse {
    use base64::Engine;
    let status = match d.status {
        None => {
            cx.error(
                &p.key("status"),
                "directResponse status is required (e.g. 503)",
            );
            200
        }
        Some(s) => validate_http_status(cx, &p.key("status"), s).unwrap_or(200),
    };
    let mut body = None;
    let mut body_is_text = true;
    if let Some(b) = &d.body {
        let bp = p.key("body");
        match (&b.string, &b.bytes) {
            (Some(_), Some(_)) => cx.error(
                &bp,
                "only one of string or bytes can be set in a directResponse body",
            ),
            (Some(s), None) => body = Some(s.as_bytes().to_vec()),
            (None, Some(enc)) => {
                body_is_text = false;
                match base64::engine::general_purpose::STANDARD.decode(enc) {
                    Ok(v) => body = Some(v),
                    Err(e) => cx.error(&bp.key("bytes"), format!("bytes must be base64: {e}")),
                }
            }
            (None, None) => {}
        }
        if let Some(b) = &body {
            if b.len() > 1 << 20 {
                cx.error(
                    &bp,
                    format!(
                        "direct_response body must be less than 1MB (it is {} bytes); serve large bodies from a backend",
                        b.len()
                    ),
                );
            } else if b.len() > 100 << 10 {
                cx.warn(
                    &bp,
                    format!(
                        "body is {} bytes: large direct_responses may impact control plane performance (over 100 KiB)",
                        b.len()
                    ),
                );
            }
        }
    }
    DirectResponse {
        status,
        body,
        body_is_text,
    }
}
