//! Pseudonyms: HMAC-SHA256 of an id under the export key, so one patient gets the same
//! pseudonym in every export made with one key, and no one without the key can link a pseudonym
//! back to a patient id.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// Bytes of an export key.
pub const KEY_BYTES: usize = 32;

/// The server's secret for pseudonyms. Never printed.
#[derive(Clone)]
pub struct ExportKey {
    bytes: [u8; KEY_BYTES],
    /// The HMAC with the key schedule done once: each pseudonym starts from a copy.
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for ExportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExportKey(..)")
    }
}

impl ExportKey {
    /// A key from its bytes (the caller makes them at random and keeps them).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        let keyed = Hmac::<Sha256>::new_from_slice(&bytes).expect("HMAC takes any key length");
        ExportKey { bytes, keyed }
    }

    /// Reads the key file form: 64 hexadecimal characters, surrounding white space ignored.
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != 2 * KEY_BYTES {
            return None;
        }
        let mut bytes = [0u8; KEY_BYTES];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(ExportKey::from_bytes(bytes))
    }

    /// The key file form.
    pub fn to_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn mac(&self, domain: &str, id: Uuid) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        // The domain keeps a patient's pseudonym apart from an entry's even for equal ids.
        mac.update(domain.as_bytes());
        mac.update(id.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The pseudonymous subject id of a patient: the first 63 bits of the HMAC, a positive
    /// 64-bit integer as MEDS asks for.
    pub fn subject_id(&self, patient_id: Uuid) -> i64 {
        let mac = self.mac("subject\0", patient_id);
        let mut first = [0u8; 8];
        first.copy_from_slice(&mac[..8]);
        (u64::from_be_bytes(first) >> 1) as i64
    }

    /// The stable pseudonymous key of an entry: 96 bits of the HMAC in hex.
    pub fn entry_key(&self, entry_id: Uuid) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut key = String::with_capacity(24);
        for b in &self.mac("entry\0", entry_id)[..12] {
            key.push(char::from(HEX[usize::from(b >> 4)]));
            key.push(char::from(HEX[usize::from(b & 15)]));
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_gives_one_pseudonym_and_another_key_another() {
        let patient = Uuid::now_v7();
        let key = ExportKey::from_bytes([7; KEY_BYTES]);
        let same = ExportKey::from_hex(&key.to_hex()).unwrap();
        let other = ExportKey::from_bytes([8; KEY_BYTES]);
        assert_eq!(key.subject_id(patient), same.subject_id(patient));
        assert_ne!(key.subject_id(patient), other.subject_id(patient));
        assert!(key.subject_id(patient) >= 0);
        assert_ne!(key.entry_key(patient), other.entry_key(patient));
        assert_eq!(key.entry_key(patient).len(), 24);
    }

    #[test]
    fn malformed_key_text_is_refused() {
        assert!(ExportKey::from_hex("abc").is_none());
        assert!(ExportKey::from_hex(&"zz".repeat(KEY_BYTES)).is_none());
        assert!(ExportKey::from_hex(&format!(" {}\n", "0a".repeat(KEY_BYTES))).is_some());
    }
}
