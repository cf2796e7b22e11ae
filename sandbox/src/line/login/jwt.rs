//! ID tokens as LINE signs them: HS256 for web login (keyed with the Login channel secret), ES256
//! for LIFF (a P-256 key whose public half the JWK Set at `/oauth2/v2.1/certs` publishes).
//!
//! The signing helpers are public so tests can mint tokens that are wrong on purpose (expired,
//! for another audience, signed with the wrong secret) and present them to the daemon.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// `iss` of every LINE ID token.
pub const ISSUER: &str = "https://access.line.me";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hs256(secret: &str, message: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// An HS256 JWT over `claims`, keyed with `secret`: a web-login ID token when `secret` is the
/// Login channel secret, a forged one otherwise.
pub fn sign_hs256(secret: &str, claims: &Value) -> String {
    let input = format!("{}.{}", b64(br#"{"typ":"JWT","alg":"HS256"}"#), b64(claims.to_string().as_bytes()));
    let signature = hs256(secret, input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// The P-256 key a sandbox signs LIFF ID tokens with, made when the sandbox starts.
#[derive(Debug)]
pub(crate) struct Es256Key {
    pair: EcdsaKeyPair,
    kid: String,
}

impl Es256Key {
    /// A fresh key with a random key id.
    pub(crate) fn generate() -> Es256Key {
        // Key generation only fails if the system has no randomness, which no sandbox can work without.
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("a P-256 key can be generated");
        Es256Key { pair, kid: crate::ids::hex(&mut rand::rng(), 64) }
    }

    /// The key id written in token headers and in the JWK.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// An ES256 JWT over `claims` with this key's `kid` in the header.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "ES256", "kid": self.kid});
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        // The fixed encoding is r || s, exactly what JWS ES256 wants; signing cannot fail with a
        // key this library generated.
        let signature = self.pair.sign(&SystemRandom::new(), input.as_bytes()).expect("ECDSA signing succeeds");
        format!("{input}.{}", b64(signature.as_ref()))
    }

    /// The public key as a JWK (`kty` EC, `crv` P-256, `x`, `y`).
    pub(crate) fn jwk(&self) -> Value {
        // An uncompressed point: 0x04, then x and y (32 bytes each).
        let point = self.pair.public_key().as_ref();
        let (x, y) = point.get(1..).map(|xy| xy.split_at(xy.len() / 2)).unwrap_or_default();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "x": b64(x), "y": b64(y), "alg": "ES256", "use": "sig"})
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(message, signature)
            .is_ok()
    }
}

/// A JWT split into its parts, not yet trusted.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) header: Value,
    pub(crate) claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

impl Parsed {
    /// Splits and decodes `token`; `None` for anything that is not three base64url parts with
    /// JSON objects in the first two.
    pub(crate) fn parse(token: &str) -> Option<Parsed> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
        if !header.is_object() || !claims.is_object() {
            return None;
        }
        Some(Parsed { header, claims, signing_input: format!("{h}.{c}"), signature: URL_SAFE_NO_PAD.decode(s).ok()? })
    }

    /// The header's `alg`.
    pub(crate) fn alg(&self) -> &str {
        self.header["alg"].as_str().unwrap_or_default()
    }

    /// Whether an HS256 token's signature is `secret`'s.
    pub(crate) fn hs256_valid(&self, secret: &str) -> bool {
        self.alg() == "HS256" && ct_eq(&hs256(secret, self.signing_input.as_bytes()), &self.signature)
    }

    /// Whether an ES256 token names `key` in its `kid` and carries its signature.
    pub(crate) fn es256_valid(&self, key: &Es256Key) -> bool {
        self.alg() == "ES256"
            && self.header["kid"].as_str() == Some(key.kid())
            && key.verify(self.signing_input.as_bytes(), &self.signature)
    }
}

/// Byte comparison in constant time, as a signature check should be.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `base64url(SHA-256(verifier))`, the PKCE S256 code challenge.
pub fn s256_challenge(verifier: &str) -> String {
    use sha2::Digest;
    b64(&Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs256_tokens_verify_with_their_secret_only() {
        let token = sign_hs256("secret", &json!({"sub": "U1"}));
        let parsed = Parsed::parse(&token).expect("parses");
        assert_eq!(parsed.claims["sub"], "U1");
        assert!(parsed.hs256_valid("secret"));
        assert!(!parsed.hs256_valid("other"));
    }

    #[test]
    fn es256_tokens_verify_with_their_key_and_the_jwk_has_the_point() {
        let key = Es256Key::generate();
        let token = key.sign(&json!({"sub": "U1"}));
        let parsed = Parsed::parse(&token).expect("parses");
        assert!(parsed.es256_valid(&key));
        assert!(!parsed.es256_valid(&Es256Key::generate()));
        let jwk = key.jwk();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().expect("x")).expect("b64");
        assert_eq!(x.len(), 32);
        let mut tampered = token.clone();
        tampered.push('A');
        assert!(Parsed::parse(&tampered).is_none_or(|p| !p.es256_valid(&key)));
    }

    #[test]
    fn the_pkce_challenge_matches_rfc_7636s_example() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
