//! Standard base64 with padding (RFC 4648 §4), strict on input: the codec the export format
//! uses for keys and values that are not UTF-8, and the one the `strata` command prints.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Encodes `bytes`.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes `text`, refusing anything but the one canonical encoding of some bytes.
pub(crate) fn base64_decode(text: &str) -> std::result::Result<Vec<u8>, String> {
    STANDARD
        .decode(text)
        .map_err(|e| e.to_string().to_lowercase())
}
