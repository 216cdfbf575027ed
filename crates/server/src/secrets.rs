//! Secrets, without any knowledge of HTTP or storage: device tokens, enrolment codes, their hashes
//! and the constant-time comparison of those hashes. Storage keeps the hashes; the HTTP layer
//! parses what devices present; both use this module, which uses neither.
//!
//! A token is `<patient_id>.<device_id>.<secret>` with 32 random bytes of secret in hex. The
//! server keeps only sha256 of the secret, finds the device by the two ids and compares hashes in
//! constant time. An enrolment code is 12 characters of Crockford base32 (60 random bits) shown as
//! `XXXX-XXXX-XXXX`; it too is kept only as a hash, and so is a provider's share code, which
//! has the same form. Neither is ever logged.
//!
//! Providers' secrets: setup links and sign-in sessions are 32 random bytes in hex ([`Opaque`]),
//! kept as sha256; an API token is `hdp.<token_id>.<secret>`; passwords are hashed with
//! argon2id ([`hash_password`]) and never leave this module in the clear.

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// sha256 of a secret (token or enrolment code): what storage keeps instead of the secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Hashes `secret`.
    pub fn of(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    /// A hash as read back from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw hash, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares two hashes in constant time.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

const SECRET_BYTES: usize = 32;

/// The secret half of a fresh device token, and its hash to store. The token text is made once
/// the patient is known, with [`TokenSecret::into_token`].
pub struct TokenSecret {
    secret: String,
    /// sha256 of the secret.
    pub hash: SecretHash,
}

impl TokenSecret {
    /// 32 fresh random bytes.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            hash: SecretHash::of(secret.as_bytes()),
            secret,
        }
    }

    /// A secret the device chose: 64 lowercase hex characters, or `None`.
    pub fn from_device(secret: &str) -> Option<Self> {
        let well_formed = secret.len() == 2 * SECRET_BYTES
            && secret
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        well_formed.then(|| Self {
            hash: SecretHash::of(secret.as_bytes()),
            secret: secret.to_string(),
        })
    }

    /// The bearer token `<patient_id>.<device_id>.<secret>`, shown to the device once.
    pub fn into_token(self, patient_id: Uuid, device_id: Uuid) -> String {
        format!("{patient_id}.{device_id}.{}", self.secret)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSecret").finish_non_exhaustive()
    }
}

/// The parts of a well-formed token: patient, device and the hash of its secret.
pub fn parse_token(token: &str) -> Option<(Uuid, Uuid, SecretHash)> {
    let mut parts = token.split('.');
    let (patient, device, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((
        Uuid::parse_str(patient).ok()?,
        Uuid::parse_str(device).ok()?,
        hash_of_secret_part(secret)?,
    ))
}

/// The hash of a token's secret part, if it has the shape every issued secret has (lower-case
/// hex of `SECRET_BYTES` bytes); anything else is refused before any lookup.
fn hash_of_secret_part(secret: &str) -> Option<SecretHash> {
    let well_formed = secret.len() == 2 * SECRET_BYTES
        && secret
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    well_formed.then(|| SecretHash::of(secret.as_bytes()))
}

/// The prefix of an analyst token, `analyst.<analyst_id>.<secret>`: it can never parse as a
/// device token, nor a device token as an analyst's.
const ANALYST_PREFIX: &str = "analyst";

impl TokenSecret {
    /// The bearer token of an analyst, `analyst.<analyst_id>.<secret>`, shown once.
    pub fn into_analyst_token(self, analyst_id: Uuid) -> String {
        format!("{ANALYST_PREFIX}.{analyst_id}.{}", self.secret)
    }
}

/// The parts of a well-formed analyst token: the analyst and the hash of its secret.
pub fn parse_analyst_token(token: &str) -> Option<(Uuid, SecretHash)> {
    let mut parts = token.split('.');
    let (prefix, analyst, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if prefix != ANALYST_PREFIX || parts.next().is_some() {
        return None;
    }
    Some((Uuid::parse_str(analyst).ok()?, hash_of_secret_part(secret)?))
}

/// Crockford's base32: digits and capitals without I, L, O and U.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_CHARS: usize = 12;

/// A freshly made enrolment code: the text for the patient (shown once) and the hash to store.
pub struct GeneratedCode {
    /// `XXXX-XXXX-XXXX`.
    pub code: String,
    /// sha256 of the normalised code.
    pub hash: SecretHash,
}

impl fmt::Debug for GeneratedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedCode").finish_non_exhaustive()
    }
}

/// Makes an enrolment code with 60 random bits.
pub fn new_code() -> GeneratedCode {
    let bits = rand::rng().next_u64();
    let chars: Vec<u8> = (0..CODE_CHARS)
        .map(|i| CODE_ALPHABET[((bits >> (5 * i)) & 31) as usize])
        .collect();
    let code = chars
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("alphabet is ASCII"))
        .collect::<Vec<_>>()
        .join("-");
    GeneratedCode {
        hash: SecretHash::of(&chars),
        code,
    }
}

/// Hashes a code as a person typed it: case, dashes and spaces do not matter, and the letters
/// people confuse with digits (O, I, L) count as those digits. `None` if it cannot be a code.
pub fn hash_code(typed: &str) -> Option<SecretHash> {
    let mut normal = Vec::with_capacity(CODE_CHARS);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !CODE_ALPHABET.contains(&(c as u8)) || normal.len() == CODE_CHARS {
            return None;
        }
        normal.push(c as u8);
    }
    (normal.len() == CODE_CHARS).then(|| SecretHash::of(&normal))
}

/// A random secret for a URL or a cookie (setup link, session): 32 bytes in hex, and its hash.
pub struct Opaque {
    /// The text handed out once.
    pub text: String,
    /// sha256 of the text, what storage keeps.
    pub hash: SecretHash,
}

impl Opaque {
    /// 32 fresh random bytes.
    pub fn generate() -> Self {
        let secret = TokenSecret::generate();
        Self {
            hash: secret.hash,
            text: secret.secret,
        }
    }

    /// The hash of a presented secret, or `None` if it cannot be one of ours.
    pub fn hash_presented(text: &str) -> Option<SecretHash> {
        TokenSecret::from_device(text).map(|s| s.hash)
    }
}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opaque").finish_non_exhaustive()
    }
}

/// The prefix that tells a provider API token from a device token.
pub const PROVIDER_TOKEN_PREFIX: &str = "hdp.";

/// A fresh provider API token `hdp.<token_id>.<secret>` and the hash of its secret.
pub fn new_provider_token(token_id: Uuid) -> (String, SecretHash) {
    let secret = TokenSecret::generate();
    let hash = secret.hash;
    (
        format!("{PROVIDER_TOKEN_PREFIX}{token_id}.{}", secret.secret),
        hash,
    )
}

/// The token id and secret hash of a well-formed provider API token.
pub fn parse_provider_token(token: &str) -> Option<(Uuid, SecretHash)> {
    let (id, secret) = token.strip_prefix(PROVIDER_TOKEN_PREFIX)?.split_once('.')?;
    Some((Uuid::parse_str(id).ok()?, Opaque::hash_presented(secret)?))
}

/// The shortest password a provider may choose.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted (hashing cost grows with it).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Hashes a password with argon2id (the crate's default parameters) and a random salt: the PHC
/// string storage keeps. Slow on purpose: call it off the async threads.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches a PHC string made by [`hash_password`]. Slow on purpose.
pub fn verify_password(phc: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash to verify against when no account matches, so that an unknown email costs as much
/// time as a wrong password and the answer's timing does not tell them apart.
pub fn decoy_password_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_back_to_their_ids_and_hash() {
        let (p, d) = (Uuid::now_v7(), Uuid::now_v7());
        let secret = TokenSecret::generate();
        let expected = secret.hash;
        let token = secret.into_token(p, d);
        let (pp, dd, hash) = parse_token(&token).unwrap();
        assert_eq!((pp, dd), (p, d));
        assert!(hash.matches(&expected));
        assert_ne!(TokenSecret::generate().into_token(p, d), token);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let t = TokenSecret::generate().into_token(Uuid::now_v7(), Uuid::now_v7());
        assert!(parse_token(&format!("{t}.x")).is_none());
        assert!(parse_token(&t[..t.len() - 1]).is_none());
        assert!(parse_token(&t.to_uppercase()).is_none());
        assert!(parse_token("a.b.c").is_none());
        assert!(parse_token("").is_none());
    }

    #[test]
    fn codes_are_typable_and_tolerant_of_how_they_are_typed() {
        let c = new_code();
        assert_eq!(c.code.len(), 14);
        assert_eq!(c.code.matches('-').count(), 2);
        assert!(hash_code(&c.code).unwrap().matches(&c.hash));
        let sloppy = c.code.to_lowercase().replace('-', " ");
        assert!(hash_code(&sloppy).unwrap().matches(&c.hash));
        assert!(hash_code("0000-0000-0000")
            .unwrap()
            .matches(&hash_code("oooo-OOOO-0000").unwrap()));
        assert!(hash_code("1111-1111-1111")
            .unwrap()
            .matches(&hash_code("IIII-llll-1111").unwrap()));
        assert!(hash_code("0000-0000-000").is_none());
        assert!(hash_code("0000-0000-00000").is_none());
        assert!(hash_code("0000-0000-000U").is_none());
        assert!(hash_code("0000-0000-000é").is_none());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify_password(&phc, "correct horse battery"));
        assert!(!verify_password(&phc, "correct horse battery!"));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(hash_password("correct horse battery").unwrap(), phc);
    }

    #[test]
    fn provider_tokens_parse_back_and_differ_from_device_tokens() {
        let id = Uuid::now_v7();
        let (token, hash) = new_provider_token(id);
        let (parsed, presented) = parse_provider_token(&token).unwrap();
        assert_eq!(parsed, id);
        assert!(presented.matches(&hash));
        assert!(parse_token(&token).is_none());
        let device = TokenSecret::generate().into_token(id, id);
        assert!(parse_provider_token(&device).is_none());
        assert!(parse_provider_token("hdp.x.y").is_none());
    }

    #[test]
    fn secret_hashes_do_not_print() {
        assert_eq!(format!("{:?}", SecretHash::of(b"x")), "SecretHash(..)");
        let t = TokenSecret::generate();
        assert!(!format!("{t:?}").contains(&t.secret));
        let c = new_code();
        assert!(!format!("{c:?}").contains(&c.code));
    }
}
