//! Typed values through serde: JSON by default (readable in git, as the cold tier keeps JSON
//! values as JSON), and postcard as the compact binary codec (a stable, documented wire
//! format: <https://postcard.jamesmunns.com/wire-format>).

use serde::de::DeserializeOwned;
use serde::Serialize;
use strata_tiering::router::Receipt;
use strata_tiering::Key;

use crate::error::{Error, Result};
use crate::store::{Store, WriteOptions};

/// How typed values are turned into bytes and back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Codec {
    /// JSON (`serde_json`): readable everywhere, including `git show`.
    #[default]
    Json,
    /// postcard: compact binary.
    Postcard,
}

impl Codec {
    /// Encodes `value`.
    pub fn encode<T: Serialize + ?Sized>(self, key: &[u8], value: &T) -> Result<Vec<u8>> {
        let encoded = match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Codec::Postcard => postcard::to_stdvec(value).map_err(|e| e.to_string()),
        };
        encoded.map_err(|detail| codec_error(key, self, "encode", detail))
    }

    /// Decodes `bytes`.
    pub fn decode<T: DeserializeOwned>(self, key: &[u8], bytes: &[u8]) -> Result<T> {
        let decoded = match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::Postcard => postcard::from_bytes(bytes).map_err(|e| e.to_string()),
        };
        decoded.map_err(|detail| codec_error(key, self, "decode", detail))
    }
}

fn codec_error(key: &[u8], codec: Codec, op: &'static str, detail: String) -> Error {
    Error::Codec {
        key: Key::new(key).ok(),
        codec,
        op,
        detail,
    }
}

impl Store {
    /// Stores `value` as JSON.
    pub fn put_json<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
    ) -> Result<Receipt> {
        self.put_typed(key, value, Codec::Json, WriteOptions::default())
    }

    /// Reads a JSON value; a value that does not decode as `T` is an error naming the key.
    pub fn get_json<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>> {
        self.get_typed(key, Codec::Json)
    }

    /// Stores `value` with `codec`, as `options` say.
    pub fn put_typed<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
        codec: Codec,
        options: WriteOptions,
    ) -> Result<Receipt> {
        let key = key.as_ref();
        let bytes = codec.encode(key, value)?;
        self.put_with(key, bytes, options)
    }

    /// Reads a value stored with `codec`.
    pub fn get_typed<T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
        codec: Codec,
    ) -> Result<Option<T>> {
        let key = key.as_ref();
        match self.get(key)? {
            Some(bytes) => codec.decode(key, bytes.as_bytes()).map(Some),
            None => Ok(None),
        }
    }
}
