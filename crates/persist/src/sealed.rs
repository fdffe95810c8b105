//! Small versioned, checksummed JSON files: `{"version": N, "sha256":
//! "<hex>", "payload": "<JSON>"}`. The payload is kept as a string so the
//! checksum covers exactly the bytes written, independent of how floats
//! re-encode. A file that fails to open is answered by re-measuring.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::sha256_hex;

/// Why a sealed file could not be opened.
#[derive(Debug, PartialEq, Eq)]
pub enum SealError {
    /// Not JSON, or not the expected shape.
    Corrupt(String),
    /// Written by another format version.
    Version { found: u32, expected: u32 },
    /// The payload does not match its checksum.
    Checksum,
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::Corrupt(why) => write!(f, "corrupt: {why}"),
            SealError::Version { found, expected } => write!(f, "format version {found}, expected {expected}"),
            SealError::Checksum => f.write_str("checksum mismatch"),
        }
    }
}

impl std::error::Error for SealError {}

#[derive(Serialize, Deserialize)]
struct Envelope {
    version: u32,
    sha256: String,
    payload: String,
}

#[derive(Deserialize)]
struct Header {
    version: u32,
}

/// `value` in an envelope of format `version`.
pub fn seal<T: Serialize>(version: u32, value: &T) -> Result<String, SealError> {
    let payload = serde_json::to_string(value).map_err(|e| SealError::Corrupt(e.to_string()))?;
    let env = Envelope { version, sha256: sha256_hex(payload.as_bytes()), payload };
    serde_json::to_string_pretty(&env).map_err(|e| SealError::Corrupt(e.to_string()))
}

/// The value sealed in `text`, if it has format `version` and its checksum
/// holds. The version is read first, so a newer layout is told apart from
/// a corrupt file.
pub fn open<T: DeserializeOwned>(text: &str, version: u32) -> Result<T, SealError> {
    let corrupt = |e: serde_json::Error| SealError::Corrupt(e.to_string());
    let header: Header = serde_json::from_str(text).map_err(corrupt)?;
    if header.version != version {
        return Err(SealError::Version { found: header.version, expected: version });
    }
    let env: Envelope = serde_json::from_str(text).map_err(corrupt)?;
    if sha256_hex(env.payload.as_bytes()) != env.sha256 {
        return Err(SealError::Checksum);
    }
    serde_json::from_str(&env.payload).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let text = seal(3, &vec![1u32, 2, 3]).unwrap();
        assert_eq!(open::<Vec<u32>>(&text, 3).unwrap(), vec![1, 2, 3]);
        assert_eq!(open::<Vec<u32>>(&text, 4), Err(SealError::Version { found: 3, expected: 4 }));
        let tampered = text.replace("[1,2,3]", "[1,2,4]");
        assert_eq!(open::<Vec<u32>>(&tampered, 3), Err(SealError::Checksum));
        assert!(matches!(open::<Vec<u32>>("not json", 3), Err(SealError::Corrupt(_))));
        assert!(matches!(open::<Vec<u32>>(r#"{"version": 3}"#, 3), Err(SealError::Corrupt(_))));
    }
}
