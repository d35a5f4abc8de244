//! HMAC-SHA256 written out from its definition (RFC 2104) over the `sha2` crate, to check
//! webhook signatures independently of the code under test (which uses `ring`).

use sha2::{Digest, Sha256};

/// HMAC-SHA256 of the concatenated `parts` under `key` (at most 64 bytes, as webhook keys are).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let mut inner = Sha256::new().chain_update(pad(0x36));
    for part in parts {
        inner.update(part);
    }
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner.finalize())
        .finalize()
        .to_vec()
}
