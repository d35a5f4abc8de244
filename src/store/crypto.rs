//! AES-256-GCM for sensitive columns (phone numbers, transcripts, extracted details, webhook
//! secrets), under the data key.
//!
//! A sealed value is `v2.`, the sealing key's id ([`DataKey::id`]), `.` and base64 of a fresh
//! random 96-bit nonce and the ciphertext with its tag. The associated data names the column and
//! row (`calls.from:CA…`), so a sealed value copied into another row or column does not open.
//! Values sealed before key ids (`v1.` and the base64) still open, under any key of the ring.
//!
//! A [`Keyring`] seals under its current key and opens under the key a value names, so a new
//! key can be put in service while values sealed under the previous ones (`DATA_KEY_PREVIOUS`)
//! still open, until `phone-agent rekey` has re-sealed them ([`super::rekey`]).
//!
//! Sealed values cannot be searched, so a column looked up by value (the do-not-call list's
//! numbers) also stores a keyed hash: HMAC-SHA256 under a lookup key derived from the data key
//! with HKDF-SHA256 (no salt, info [`LOOKUP_KEY_INFO`]), never the data key itself.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};

use crate::guard::token::hex;
use crate::redact::Secret;

/// Prefix of every sealed value (the format version), followed by the key id and a `.`.
const SEALED_PREFIX: &str = "v2.";
/// Prefix of values sealed before key ids: no key id follows.
const UNNAMED_PREFIX: &str = "v1.";
/// Length of the key in bytes.
const KEY_LEN: usize = 32;
/// HKDF's info for the lookup key: names its one use, so no other derived key equals it.
pub const LOOKUP_KEY_INFO: &[u8] = b"phone-agent lookup hash v1";
/// HKDF's info for the key id: names a key in what it seals without saying anything of it.
pub const KEY_ID_INFO: &[u8] = b"phone-agent key id v1";
/// HKDF info of the key signing stream tokens (so every instance sharing the data key verifies
/// the tokens any of them minted).
pub const STREAM_TOKEN_KEY_INFO: &[u8] = b"phone-agent stream token v1";
/// Length of a key id in bytes (shown as twice as many hex digits).
const KEY_ID_LEN: usize = 4;

/// An SQL condition true when `column` holds a sealed value of either format (plain text, such
/// as the JSON of an event without words, starts otherwise).
pub fn sealed_condition(column: &str) -> String {
    format!("({column} LIKE '{UNNAMED_PREFIX}%' OR {column} LIKE '{SEALED_PREFIX}%')")
}

/// What went wrong with the data key or a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// `DATA_KEY` or the key file is not base64 of 32 bytes.
    #[error("the data key must be base64 of 32 random bytes")]
    BadKey,
    /// The key file could not be read or created.
    #[error("data key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An existing secret file is empty: it would key an HMAC or a cipher with nothing.
    #[error("secret file {0} is empty: delete it to have a new secret generated, or fill it")]
    EmptyFile(String),
    /// An existing secret file can be read by other users than its owner.
    #[error("secret file {path} is readable by other users (mode {mode:o}): chmod 600 it")]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A sealed value does not open under this key (wrong key, tampered, or moved between rows).
    #[error("a sealed value does not open under the data key")]
    Open,
    /// A sealed value names a key the ring does not hold.
    #[error(
        "a value is sealed under data key {0}, which is neither DATA_KEY nor in DATA_KEY_PREVIOUS"
    )]
    UnknownKey(String),
    /// The system's random generator failed.
    #[error("no randomness available")]
    Random,
}

/// Reads the secret in the file at `path` (trimmed), or creates the file (mode 0600, never
/// overwriting) holding base64 of 32 new random bytes. An existing file must hold something and
/// be its owner's alone (no permission bits for group or others).
pub fn load_or_create_secret(path: &Path) -> Result<(Secret, KeySource), CryptoError> {
    let key_file = |source| CryptoError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    match fs::read_to_string(path) {
        Ok(text) => {
            owner_only(path)?;
            let secret = text.trim();
            if secret.is_empty() {
                return Err(CryptoError::EmptyFile(path.display().to_string()));
            }
            return Ok((Secret::new(secret), KeySource::File));
        }
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(key_file(error)),
        Err(_) => {}
    }
    let mut bytes = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CryptoError::Random)?;
    let encoded = BASE64.encode(bytes);
    if let Some(dir) = path.parent() {
        super::create_private_dir(dir).map_err(key_file)?;
    }
    let mut file = super::create_private_file(path).map_err(key_file)?;
    file.write_all(format!("{encoded}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(key_file)?;
    Ok((Secret::new(encoded), KeySource::Generated))
}

/// Refuses a file other users may read (Unix permission bits; elsewhere, every file passes).
fn owner_only(path: &Path) -> Result<(), CryptoError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path)
            .map_err(|source| CryptoError::KeyFile {
                path: path.display().to_string(),
                source,
            })?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::Exposed {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    Ok(())
}

/// The key sealing sensitive columns.
pub struct DataKey {
    key: LessSafeKey,
    lookup: hmac::Key,
    stream_tokens: hmac::Key,
    id: String,
    random: SystemRandom,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Where a key or secret came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The `DATA_KEY` variable.
    Environment,
    /// Its file, as found.
    File,
    /// Its file, created just now.
    Generated,
}

impl DataKey {
    /// A key from base64 of 32 bytes (the `DATA_KEY` format).
    pub fn from_base64(encoded: &str) -> Result<Self, CryptoError> {
        let bytes = BASE64
            .decode(encoded.trim())
            .map_err(|_| CryptoError::BadKey)?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is an AES-256 key");
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(bytes);
        let hmac_key = |info| {
            prk.expand(&[info], hmac::HMAC_SHA256)
                .expect("32 bytes is a valid HKDF-SHA256 output length")
                .into()
        };
        let lookup = hmac_key(LOOKUP_KEY_INFO);
        let stream_tokens = hmac_key(STREAM_TOKEN_KEY_INFO);
        let mut id = [0u8; KEY_ID_LEN];
        prk.expand(&[KEY_ID_INFO], IdLen)
            .and_then(|okm| okm.fill(&mut id))
            .expect("4 bytes is a valid HKDF-SHA256 output length");
        Self {
            key: LessSafeKey::new(key),
            lookup,
            stream_tokens,
            id: hex(&id),
            random: SystemRandom::new(),
        }
    }

    /// The key's id: 8 hex digits of HKDF-SHA256 of the key (info [`KEY_ID_INFO`]), written in
    /// every value it seals, so a value names the key that opens it without revealing the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key signing stream tokens: HKDF-SHA256 of the data key, info [`STREAM_TOKEN_KEY_INFO`].
    pub fn stream_token_key(&self) -> &hmac::Key {
        &self.stream_tokens
    }

    /// Reads the key file at `path`, or creates it (see [`load_or_create_secret`]).
    pub fn load_or_create(path: &Path) -> Result<(Self, KeySource), CryptoError> {
        let (encoded, source) = load_or_create_secret(path)?;
        Ok((Self::from_base64(encoded.expose())?, source))
    }

    /// Seals `plaintext` for the column and row named by `context`.
    pub fn seal(&self, plaintext: &str, context: &str) -> Result<String, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Random)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        sealed.extend_from_slice(&nonce);
        let mut body = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut body,
            )
            .map_err(|_| CryptoError::Random)?;
        sealed.extend_from_slice(&body);
        Ok(format!(
            "{SEALED_PREFIX}{}.{}",
            self.id,
            BASE64.encode(sealed)
        ))
    }

    /// The keyed hash of `value` that finds its row (lowercase hex HMAC-SHA256 under the lookup
    /// key): equal values hash equal, and without the data key the hash says nothing.
    pub fn lookup_hash(&self, value: &str) -> String {
        hex(hmac::sign(&self.lookup, value.as_bytes()).as_ref())
    }

    /// Opens base64 of nonce and ciphertext.
    fn open_body(&self, encoded: &str, context: &str) -> Result<String, CryptoError> {
        let mut bytes = BASE64.decode(encoded).map_err(|_| CryptoError::Open)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Open);
        }
        let mut body = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| CryptoError::Open)?;
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plaintext.to_vec()).map_err(|_| CryptoError::Open)
    }
}

/// HKDF output length of a key id.
struct IdLen;

impl hkdf::KeyType for IdLen {
    fn len(&self) -> usize {
        KEY_ID_LEN
    }
}

/// A sealed value taken apart.
enum SealedValue<'a> {
    /// `v2.<key id>.<body>`.
    Named {
        /// The sealing key's id.
        key_id: &'a str,
        /// Base64 of nonce and ciphertext.
        body: &'a str,
    },
    /// `v1.<body>`: sealed before key ids.
    Unnamed(&'a str),
}

impl<'a> SealedValue<'a> {
    fn parse(sealed: &'a str) -> Result<Self, CryptoError> {
        if let Some(rest) = sealed.strip_prefix(SEALED_PREFIX) {
            let (key_id, body) = rest.split_once('.').ok_or(CryptoError::Open)?;
            return Ok(Self::Named { key_id, body });
        }
        sealed
            .strip_prefix(UNNAMED_PREFIX)
            .map(Self::Unnamed)
            .ok_or(CryptoError::Open)
    }
}

/// The current data key, which seals, and the previous ones, which still open what they sealed.
#[derive(Debug)]
pub struct Keyring {
    current: DataKey,
    previous: Vec<DataKey>,
}

impl From<DataKey> for Keyring {
    fn from(current: DataKey) -> Self {
        Self::new(current, Vec::new())
    }
}

impl Keyring {
    /// A ring sealing under `current`; a previous key equal to it is dropped.
    pub fn new(current: DataKey, mut previous: Vec<DataKey>) -> Self {
        previous.retain(|key| key.id != current.id);
        Self { current, previous }
    }

    /// The key that seals.
    pub fn current(&self) -> &DataKey {
        &self.current
    }

    /// Every key: the current one first.
    pub fn keys(&self) -> impl Iterator<Item = &DataKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    /// Seals under the current key.
    pub fn seal(&self, plaintext: &str, context: &str) -> Result<String, CryptoError> {
        self.current.seal(plaintext, context)
    }

    /// Opens `sealed` under the key it names; a `v1.` value under whichever key opens it.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, CryptoError> {
        match SealedValue::parse(sealed)? {
            SealedValue::Named { key_id, body } => self
                .keys()
                .find(|key| key.id == key_id)
                .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?
                .open_body(body, context),
            SealedValue::Unnamed(body) => self
                .keys()
                .find_map(|key| key.open_body(body, context).ok())
                .ok_or(CryptoError::Open),
        }
    }

    /// The current key's lookup hash of `value` (the one new rows are found by).
    pub fn lookup_hash(&self, value: &str) -> String {
        self.current.lookup_hash(value)
    }

    /// `value`'s lookup hash under every key, the current one first: a row written before the
    /// current key was put in service is found by one of the others.
    pub fn lookup_hashes(&self, value: &str) -> Vec<String> {
        self.keys().map(|key| key.lookup_hash(value)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::from_bytes(&[7; KEY_LEN])
    }

    fn ring(byte: u8) -> Keyring {
        DataKey::from_bytes(&[byte; KEY_LEN]).into()
    }

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let key = ring(7);
        let sealed = key.seal("+14155550100", "calls.from:CA1").unwrap();
        assert!(sealed.starts_with(&format!("v2.{}.", key.current().id())));
        assert!(!sealed.contains("4155550100"));
        assert_eq!(key.open(&sealed, "calls.from:CA1").unwrap(), "+14155550100");
        assert!(key.open(&sealed, "calls.from:CA2").is_err());
        assert!(key.open(&sealed, "calls.to:CA1").is_err());
        let other = ring(8);
        assert!(matches!(
            other.open(&sealed, "calls.from:CA1"),
            Err(CryptoError::UnknownKey(id)) if id == key.current().id()
        ));
    }

    #[test]
    fn key_ids_are_hkdf_of_the_key_by_hand() {
        // HKDF-SHA256 (RFC 5869) with no salt (a zero salt), info KEY_ID_INFO, first 4 bytes.
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[0; 32]), &[7; KEY_LEN]);
        let info: Vec<u8> = [KEY_ID_INFO, &[1]].concat();
        let okm = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()), &info);
        assert_eq!(key().id(), hex(&okm.as_ref()[..4]));
        assert_ne!(key().id(), DataKey::from_bytes(&[8; KEY_LEN]).id());
    }

    #[test]
    fn a_ring_seals_under_its_current_key_and_opens_under_any() {
        let old = ring(7);
        let before = old.seal("+14155550100", "c").unwrap();
        let unnamed = format!("v1.{}", before.rsplit('.').next().unwrap());
        let rotated = Keyring::new(
            DataKey::from_bytes(&[8; KEY_LEN]),
            vec![
                DataKey::from_bytes(&[7; KEY_LEN]),
                DataKey::from_bytes(&[8; KEY_LEN]),
            ],
        );
        assert_eq!(
            rotated.keys().count(),
            2,
            "the current key is not also previous"
        );
        let after = rotated.seal("+14155550100", "c").unwrap();
        let current = format!("v2.{}.", rotated.current().id());
        assert!(after.starts_with(&current));
        assert!(!before.starts_with(&current) && !unnamed.starts_with(&current));
        for sealed in [&before, &unnamed, &after] {
            assert_eq!(rotated.open(sealed, "c").unwrap(), "+14155550100");
        }
        assert!(old.open(&after, "c").is_err());
        assert_eq!(
            rotated.lookup_hashes("+14155550100"),
            [
                ring(8).lookup_hash("+14155550100"),
                old.lookup_hash("+14155550100")
            ]
        );
    }

    #[test]
    fn lookup_hashes_are_hmac_under_an_hkdf_derived_key() {
        // HKDF-SHA256 by hand (RFC 5869): no salt is a zero salt; one block of output.
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[0; 32]), &[7; KEY_LEN]);
        let info: Vec<u8> = [LOOKUP_KEY_INFO, &[1]].concat();
        let okm = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()), &info);
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, okm.as_ref()),
            b"+14155550100",
        );
        let key = key();
        assert_eq!(key.lookup_hash("+14155550100"), hex(expected.as_ref()));
        assert_eq!(key.lookup_hash("+14155550100").len(), 64);
        assert_ne!(
            key.lookup_hash("+14155550100"),
            key.lookup_hash("+14155550101")
        );
        let under_the_data_key = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &[7; KEY_LEN]),
            b"+14155550100",
        );
        assert_ne!(
            key.lookup_hash("+14155550100"),
            hex(under_the_data_key.as_ref())
        );
        assert_ne!(
            DataKey::from_bytes(&[8; KEY_LEN]).lookup_hash("+14155550100"),
            key.lookup_hash("+14155550100")
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let key = ring(7);
        assert_ne!(
            key.seal("same", "c").unwrap(),
            key.seal("same", "c").unwrap()
        );
    }

    #[test]
    fn tampered_or_malformed_values_are_refused() {
        let key = ring(7);
        let sealed = key.seal("secret", "c").unwrap();
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(key
            .open(&String::from_utf8(tampered).unwrap(), "c")
            .is_err());
        let id = key.current().id();
        for bad in [
            "",
            "v1.",
            "v1.!!!",
            "v2.AAAA",
            "v1.AAAA",
            "v3.AAAA",
            &format!("v2.{id}."),
            &format!("v2.{id}.!!!"),
            &format!("v2.{id}.AAAA"),
        ] {
            assert!(key.open(bad, "c").is_err(), "{bad}");
        }
    }

    #[test]
    fn key_file_is_created_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/data.key");
        let (first, source) = DataKey::load_or_create(&path).unwrap();
        assert_eq!(source, KeySource::Generated);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = Keyring::from(first).seal("x", "c").unwrap();
        let (second, source) = DataKey::load_or_create(&path).unwrap();
        assert_eq!(source, KeySource::File);
        assert_eq!(Keyring::from(second).open(&sealed, "c").unwrap(), "x");
    }

    #[test]
    fn an_empty_or_exposed_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twilio-auth-token");
        let (created, _) = load_or_create_secret(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let error = load_or_create_secret(&path).unwrap_err();
            assert!(matches!(error, CryptoError::Exposed { mode: 0o644, .. }));
            assert!(error.to_string().contains("chmod 600"), "{error}");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let (loaded, source) = load_or_create_secret(&path).unwrap();
        assert_eq!(
            (loaded.expose(), source),
            (created.expose(), KeySource::File)
        );
        fs::write(&path, " \n").unwrap();
        let error = load_or_create_secret(&path).unwrap_err();
        assert!(matches!(error, CryptoError::EmptyFile(_)), "{error}");
    }

    #[test]
    fn environment_keys_must_be_32_bytes_of_base64() {
        assert!(DataKey::from_base64(&BASE64.encode([1u8; 32])).is_ok());
        assert!(DataKey::from_base64(&BASE64.encode([1u8; 16])).is_err());
        assert!(DataKey::from_base64("not base64").is_err());
    }
}
