//! WeChat's callback protocol (`docs/contract.md` §12): signatures, and the
//! AES message crypto of safe mode, exactly as the WeChat server does it.
//!
//! Two traps (see the tests' vectors): real EncodingAESKeys are often
//! non-canonical base64 (the 43rd character carries stray low bits), so the
//! key is decoded with trailing bits allowed; and WeChat pads with PKCS#7 to
//! 32-byte blocks, so pad values 17–32 are normal and a 16-byte unpadder
//! would reject half of all messages.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha1::{Digest, Sha1};

type Decryptor = cbc::Decryptor<aes::Aes256>;
type Encryptor = cbc::Encryptor<aes::Aes256>;

/// WeChat pads to this block size, not AES's 16.
const PAD_BLOCK: usize = 32;

/// Base64 as WeChat writes it: padded, and lenient about the last
/// character's spare bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `sha1(sort(parts) joined)` as lowercase hex: the `signature` (token,
/// timestamp, nonce) and the `msg_signature` (plus `Encrypt`).
pub fn signature(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let digest = Sha1::digest(sorted.concat().as_bytes());
    hex::encode(digest)
}

/// Constant-time comparison of two signatures.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the EncodingAESKey must be 43 base64 characters")]
    BadKey,
    #[error("Encrypt is not base64 of whole AES blocks")]
    BadCiphertext,
    #[error("the decrypted message is not well-formed (padding or length)")]
    BadPlaintext,
    #[error("the message is for another app id")]
    WrongAppId,
}

/// The account's message key (from `wechat.encoding_aes_key`) and app id.
#[derive(Clone)]
pub struct MessageCrypto {
    key: [u8; 32],
    app_id: String,
}

impl std::fmt::Debug for MessageCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("MessageCrypto").field("app_id", &self.app_id).finish_non_exhaustive()
    }
}

impl MessageCrypto {
    pub fn new(encoding_aes_key: &str, app_id: &str) -> Result<Self, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::BadKey);
        }
        let bytes = LENIENT.decode(format!("{encoding_aes_key}=")).map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(MessageCrypto { key, app_id: app_id.to_owned() })
    }

    /// The message inside `Encrypt`, after checking its app id.
    pub fn decrypt(&self, encrypt: &str) -> Result<Vec<u8>, CryptoError> {
        let mut data = LENIENT.decode(encrypt.trim()).map_err(|_| CryptoError::BadCiphertext)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(CryptoError::BadCiphertext);
        }
        let plain = Decryptor::new(&self.key.into(), self.key[..16].into())
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| CryptoError::BadCiphertext)?;
        let pad = usize::from(*plain.last().ok_or(CryptoError::BadPlaintext)?);
        if !(1..=PAD_BLOCK).contains(&pad) || pad > plain.len() || plain[plain.len() - pad..].iter().any(|&b| usize::from(b) != pad) {
            return Err(CryptoError::BadPlaintext);
        }
        let content = &plain[..plain.len() - pad];
        if content.len() < 20 {
            return Err(CryptoError::BadPlaintext);
        }
        let len = u32::from_be_bytes(content[16..20].try_into().expect("4 bytes")) as usize;
        let rest = &content[20..];
        if len > rest.len() {
            return Err(CryptoError::BadPlaintext);
        }
        let (message, app_id) = rest.split_at(len);
        if app_id != self.app_id.as_bytes() {
            return Err(CryptoError::WrongAppId);
        }
        Ok(message.to_vec())
    }

    /// `Encrypt` for `message`, with the 16 random bytes given.
    pub fn encrypt(&self, random: [u8; 16], message: &[u8]) -> String {
        let mut plain = Vec::with_capacity(message.len() + self.app_id.len() + 20 + PAD_BLOCK);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&u32::try_from(message.len()).expect("messages are small").to_be_bytes());
        plain.extend_from_slice(message);
        plain.extend_from_slice(self.app_id.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let len = plain.len();
        let cipher =
            Encryptor::new(&self.key.into(), self.key[..16].into()).encrypt_padded_mut::<NoPadding>(&mut plain, len).expect("whole blocks");
        base64::engine::general_purpose::STANDARD.encode(cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `../shared/data/wechat/wechat_test_vectors.json`, copied into the repository.
    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../../tests/fixtures/wechat/vectors.json")).unwrap()
    }

    #[test]
    fn the_official_url_and_plaintext_signatures() {
        assert_eq!(signature(&["AAAAA", "1714036504", "1514711492"]), "f464b24fc39322e44b38aa78f5edd27bd1441696");
        assert_eq!(signature(&["AAAAA", "1714037059", "486452656"]), "899cf89e464efb63f54ddac96b0a0a235f53aa78");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn tencent_s_sample_decrypts_with_its_non_canonical_key() {
        let v = &vectors()["vector_A_official_WXBizMsgCrypt_sample_xml"];
        let s = |k: &str| v[k].as_str().unwrap();
        assert_eq!(signature(&[s("token"), s("timestamp"), s("nonce"), s("encrypt")]), s("msg_signature"));
        let crypto = MessageCrypto::new(s("encoding_aes_key"), s("appid")).unwrap();
        let plain = crypto.decrypt(s("encrypt")).unwrap();
        assert_eq!(String::from_utf8(plain).unwrap(), v["decrypted"]["msg"].as_str().unwrap());
        let other = MessageCrypto::new(s("encoding_aes_key"), "wx0000000000000000").unwrap();
        assert_eq!(other.decrypt(s("encrypt")), Err(CryptoError::WrongAppId));
    }

    /// Re-encrypting with the vector's own 16 random characters gives
    /// WeChat's ciphertext byte for byte.
    #[test]
    fn both_official_vectors_encrypt_byte_for_byte() {
        let all = vectors();
        for (v, token) in [
            (&all["vector_A_official_WXBizMsgCrypt_sample_xml"], "spamtest"),
            (&all["vector_B_official_doc_debug_demo_json"]["safe_mode"], "AAAAA"),
        ] {
            let s = |k: &str| v[k].as_str().unwrap();
            assert_eq!(signature(&[token, s("timestamp"), s("nonce"), s("encrypt")]), s("msg_signature"));
            let crypto = MessageCrypto::new(s("encoding_aes_key"), s("appid")).unwrap();
            let plain = crypto.decrypt(s("encrypt")).unwrap();
            assert_eq!(std::str::from_utf8(&plain).unwrap(), v["decrypted"]["msg"].as_str().unwrap());
            let random: [u8; 16] = v["decrypted"]["random16"].as_str().unwrap().as_bytes().try_into().unwrap();
            assert_eq!(crypto.encrypt(random, &plain), s("encrypt"));
        }
    }

    #[test]
    fn a_32_byte_pad_is_produced_and_accepted() {
        let crypto = MessageCrypto::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2").unwrap();
        for len in 0..70 {
            let message = vec![b'x'; len];
            let encrypt = crypto.encrypt([1; 16], &message);
            let raw = base64::engine::general_purpose::STANDARD.decode(&encrypt).unwrap();
            assert_eq!(raw.len() % 32, 0, "padded to 32-byte blocks");
            assert_eq!(crypto.decrypt(&encrypt).unwrap(), message);
        }
        assert_eq!(crypto.decrypt("not base64!"), Err(CryptoError::BadCiphertext));
        assert_eq!(crypto.decrypt("AAAA"), Err(CryptoError::BadCiphertext));
        assert!(MessageCrypto::new("short", "x").is_err());
    }
}
