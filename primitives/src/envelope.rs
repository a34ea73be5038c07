//! The segment envelope: how a seller seals one segment of a stream (DESIGN.md, "Data plane").
//!
//! Each segment `d` of a stream is sealed with the keys of its epoch, as in the paper:
//!
//! - `e = AES-256-GCM(k_e, nonce, d ‖ σ_d)` with a fresh random 96-bit nonce, and
//! - `σ_d = HMAC-SHA256(k_m, d)`, the paper's MAC over the plaintext,
//!
//! and carries a clear [`SegmentHeader`] (stream, epoch, sequence, timestamp) that is bound to
//! the ciphertext as AES-GCM additional authenticated data, so a header cannot be moved to
//! another ciphertext or edited without the buyer noticing. Storage operators read the header
//! **without keys** ([`parse_header`]) to store segments by `(stream, sequence)`; buyers open
//! the envelope ([`open`]) with the epoch keys they received sealed on chain and check the
//! keys against the on-chain commitment [`key_commitment`]`(k_e, k_m) = blake2_256(k_e ‖ k_m)`.
//!
//! σ_d travels inside the ciphertext rather than next to it: a clear HMAC would let operators
//! see which segments repeat the same plaintext.
//!
//! # Wire format, version 1
//!
//! ```text
//! offset  size        field
//! 0       1           version = 1
//! 1       52          header: SCALE(SegmentHeader) = stream (32) ‖ epoch (u32 LE) ‖
//!                     sequence (u64 LE) ‖ timestamp (u64 LE, ms since the Unix epoch)
//! 53      12          nonce
//! 65      n + 32 + 16 AES-256-GCM(k_e, nonce, aad = bytes[0..53], d ‖ σ_d) ‖ GCM tag
//! ```
//!
//! `n = len(d)` is at most [`MAX_PAYLOAD_LEN`], so an envelope is at most
//! [`MAX_ENVELOPE_LEN`] bytes; decoding refuses anything longer before doing any work.
//!
//! ```
//! # #[cfg(feature = "std")] {
//! use fastdata_primitives::envelope::{open, parse_header, seal, EpochKeys, SegmentHeader};
//! use sp_core::H256;
//!
//! let keys = EpochKeys::new([1; 32], [2; 32]);
//! let header = SegmentHeader { stream: H256::repeat_byte(7), epoch: 0, sequence: 1, timestamp: 1_700_000_000_000 };
//! let sealed = seal(&keys, &header, b"21.5 C").unwrap();
//!
//! // An operator reads the header without keys…
//! assert_eq!(parse_header(&sealed).unwrap(), header);
//! // …a buyer with the epoch keys gets the plaintext back, checked twice (GCM tag and σ_d).
//! let opened = open(&keys, &sealed).unwrap();
//! assert_eq!(opened.payload, b"21.5 C");
//! # }
//! ```

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_core::H256;

use aes_gcm::{
    aead::{AeadInPlace, KeyInit},
    Aes256Gcm, Nonce,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{EpochIndex, Sequence, StreamId};

/// Current version of the wire format (first byte of every envelope).
pub const ENVELOPE_VERSION: u8 = 1;
/// Length of the SCALE-encoded [`SegmentHeader`].
pub const HEADER_LEN: usize = 32 + 4 + 8 + 8;
/// Length of the AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM authentication tag.
pub const TAG_LEN: usize = 16;
/// Length of σ_d (HMAC-SHA256).
pub const MAC_LEN: usize = 32;
/// Bytes before the ciphertext: version, header, nonce. These are the AAD (minus the nonce).
pub const PREFIX_LEN: usize = 1 + HEADER_LEN + NONCE_LEN;
/// Fixed overhead of an envelope over its plaintext.
pub const OVERHEAD: usize = PREFIX_LEN + MAC_LEN + TAG_LEN;
/// Largest plaintext segment (64 KiB). IIoT segments are usually a few hundred bytes.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;
/// Largest envelope on the wire.
pub const MAX_ENVELOPE_LEN: usize = OVERHEAD + MAX_PAYLOAD_LEN;
/// Smallest envelope on the wire (empty plaintext).
pub const MIN_ENVELOPE_LEN: usize = OVERHEAD;

/// The clear header of a segment, bound to its ciphertext as AAD.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    MaxEncodedLen,
    TypeInfo,
)]
pub struct SegmentHeader {
    /// The stream the segment belongs to.
    pub stream: StreamId,
    /// The key epoch the segment is sealed under.
    pub epoch: EpochIndex,
    /// Position of the segment in the stream (strictly increasing per stream).
    pub sequence: Sequence,
    /// When the seller recorded the segment, in milliseconds since the Unix epoch.
    pub timestamp: u64,
}

/// Why an envelope could not be sealed, parsed or opened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EnvelopeError {
    /// Fewer bytes than the smallest envelope: the input is truncated or not an envelope.
    TooShort,
    /// More bytes than [`MAX_ENVELOPE_LEN`]: refused before any work.
    TooLong,
    /// The plaintext is longer than [`MAX_PAYLOAD_LEN`]: split it into several segments.
    PayloadTooLarge,
    /// The version byte is not one this code understands: upgrade the reader.
    UnsupportedVersion(u8),
    /// The GCM tag does not verify: wrong epoch key `k_e`, or the header, nonce or ciphertext
    /// was altered.
    Decryption,
    /// The ciphertext decrypted but σ_d does not match: wrong MAC key `k_m` (keys that do not
    /// match the epoch commitment) or a seller bug.
    BadMac,
    /// The system random number generator failed while drawing a nonce.
    Randomness,
}

impl core::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort => write!(f, "envelope shorter than {MIN_ENVELOPE_LEN} bytes"),
            Self::TooLong => write!(f, "envelope longer than {MAX_ENVELOPE_LEN} bytes"),
            Self::PayloadTooLarge => write!(
                f,
                "segment plaintext longer than {MAX_PAYLOAD_LEN} bytes; split it"
            ),
            Self::UnsupportedVersion(v) => write!(f, "unsupported envelope version {v}"),
            Self::Decryption => write!(
                f,
                "authentication failed: wrong epoch key or tampered header/ciphertext"
            ),
            Self::BadMac => write!(f, "sigma_d mismatch: wrong MAC key for this epoch"),
            Self::Randomness => write!(f, "system random number generator failed"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EnvelopeError {}

/// The keys of one epoch of a stream: `k_e` (AES-256-GCM) and `k_m` (HMAC-SHA256).
/// Wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct EpochKeys {
    /// Encryption key `k_e`.
    pub k_e: [u8; 32],
    /// MAC key `k_m`.
    pub k_m: [u8; 32],
}

impl EpochKeys {
    /// Keys from their raw bytes.
    pub fn new(k_e: [u8; 32], k_m: [u8; 32]) -> Self {
        Self { k_e, k_m }
    }

    /// Fresh random keys for a new epoch (std only).
    #[cfg(feature = "std")]
    pub fn generate() -> Result<Self, EnvelopeError> {
        let mut keys = Self {
            k_e: [0; 32],
            k_m: [0; 32],
        };
        fill_random(&mut keys.k_e)?;
        fill_random(&mut keys.k_m)?;
        Ok(keys)
    }

    /// The on-chain commitment to these keys, `blake2_256(k_e ‖ k_m)`.
    pub fn commitment(&self) -> H256 {
        key_commitment(&self.k_e, &self.k_m)
    }
}

impl core::fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        f.debug_struct("EpochKeys")
            .field("commitment", &self.commitment())
            .finish()
    }
}

impl Drop for EpochKeys {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.k_e.zeroize();
        self.k_m.zeroize();
    }
}

/// The key commitment registered on chain for an epoch: `blake2_256(k_e ‖ k_m)`.
pub fn key_commitment(k_e: &[u8; 32], k_m: &[u8; 32]) -> H256 {
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(k_e);
    both[32..].copy_from_slice(k_m);
    let commitment = H256(sp_io::hashing::blake2_256(&both));
    zeroize::Zeroize::zeroize(&mut both);
    commitment
}

/// An envelope split into its parts, without any key: what an operator sees.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SealedSegment<'a> {
    /// The clear header.
    pub header: SegmentHeader,
    /// The AES-GCM nonce.
    pub nonce: [u8; NONCE_LEN],
    /// `AES-256-GCM(d ‖ σ_d) ‖ tag`.
    pub ciphertext: &'a [u8],
    /// The authenticated prefix (version and header).
    aad: &'a [u8],
}

impl<'a> SealedSegment<'a> {
    /// Splits `bytes` into header, nonce and ciphertext, checking version and size bounds
    /// (no key needed, nothing decrypted).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(EnvelopeError::TooLong);
        }
        if bytes.len() < MIN_ENVELOPE_LEN {
            return Err(EnvelopeError::TooShort);
        }
        if bytes[0] != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(bytes[0]));
        }
        let (aad, rest) = bytes.split_at(1 + HEADER_LEN);
        // The header is fixed width, so decoding 52 bytes cannot fail; keep the error anyway.
        let header = SegmentHeader::decode(&mut &aad[1..]).map_err(|_| EnvelopeError::TooShort)?;
        let (nonce_bytes, ciphertext) = rest.split_at(NONCE_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(nonce_bytes);
        Ok(Self {
            header,
            nonce,
            ciphertext,
            aad,
        })
    }

    /// Length of the plaintext inside.
    pub fn payload_len(&self) -> usize {
        self.ciphertext.len().saturating_sub(MAC_LEN + TAG_LEN)
    }
}

/// Reads the header of an envelope without keys (operators).
pub fn parse_header(bytes: &[u8]) -> Result<SegmentHeader, EnvelopeError> {
    SealedSegment::parse(bytes).map(|sealed| sealed.header)
}

/// A segment opened with its epoch keys: the header (authenticated) and the plaintext
/// (authenticated by GCM and by σ_d).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OpenedSegment {
    /// The header the seller bound to the ciphertext.
    pub header: SegmentHeader,
    /// The plaintext segment `d`.
    pub payload: Vec<u8>,
}

fn sigma(k_m: &[u8; 32], payload: &[u8]) -> Result<Hmac<Sha256>, EnvelopeError> {
    // HMAC accepts keys of any length; the error branch is unreachable with 32 bytes.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(k_m).map_err(|_| EnvelopeError::BadMac)?;
    mac.update(payload);
    Ok(mac)
}

/// Seals `payload` under `keys` with the caller's `nonce`.
///
/// A nonce must never be used twice with the same `k_e` (GCM loses confidentiality and
/// integrity if it is). Use [`seal`], which draws a random nonce, unless you are producing test
/// vectors or run without std and have your own random source.
pub fn seal_with_nonce(
    keys: &EpochKeys,
    header: &SegmentHeader,
    nonce: [u8; NONCE_LEN],
    payload: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(EnvelopeError::PayloadTooLarge);
    }
    let mut out = Vec::with_capacity(OVERHEAD + payload.len());
    out.push(ENVELOPE_VERSION);
    header.encode_to(&mut out);
    debug_assert_eq!(out.len(), 1 + HEADER_LEN);

    let mut buffer = Vec::with_capacity(payload.len() + MAC_LEN + TAG_LEN);
    buffer.extend_from_slice(payload);
    buffer.extend_from_slice(&sigma(&keys.k_m, payload)?.finalize().into_bytes());

    let cipher = Aes256Gcm::new(&keys.k_e.into());
    cipher
        .encrypt_in_place(Nonce::from_slice(&nonce), &out, &mut buffer)
        .map_err(|_| EnvelopeError::PayloadTooLarge)?;

    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buffer);
    Ok(out)
}

/// Seals `payload` under `keys` with a fresh random nonce from the operating system.
#[cfg(feature = "std")]
pub fn seal(
    keys: &EpochKeys,
    header: &SegmentHeader,
    payload: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    seal_with_nonce(keys, header, nonce, payload)
}

#[cfg(feature = "std")]
fn fill_random(bytes: &mut [u8]) -> Result<(), EnvelopeError> {
    use rand_core::RngCore;
    rand_core::OsRng
        .try_fill_bytes(bytes)
        .map_err(|_| EnvelopeError::Randomness)
}

/// Opens an envelope with its epoch keys: checks version and size, the GCM tag over header
/// and ciphertext, then σ_d over the plaintext (in constant time).
///
/// The caller still checks that the header is the one it expects (stream, epoch, sequence).
pub fn open(keys: &EpochKeys, bytes: &[u8]) -> Result<OpenedSegment, EnvelopeError> {
    let sealed = SealedSegment::parse(bytes)?;
    let mut buffer = Vec::from(sealed.ciphertext);
    let cipher = Aes256Gcm::new(&keys.k_e.into());
    cipher
        .decrypt_in_place(Nonce::from_slice(&sealed.nonce), sealed.aad, &mut buffer)
        .map_err(|_| EnvelopeError::Decryption)?;
    if buffer.len() < MAC_LEN {
        return Err(EnvelopeError::TooShort);
    }
    let split = buffer.len() - MAC_LEN;
    let (payload, mac) = buffer.split_at(split);
    sigma(&keys.k_m, payload)?
        .verify_slice(mac)
        .map_err(|_| EnvelopeError::BadMac)?;
    buffer.truncate(split);
    Ok(OpenedSegment {
        header: sealed.header,
        payload: buffer,
    })
}

/// Appends one envelope to a download body as a frame: 4-byte big-endian length, then the
/// bytes. Operators serve segment ranges and replicas in this framing.
pub fn encode_frame(out: &mut Vec<u8>, envelope: &[u8]) {
    out.extend_from_slice(&(envelope.len() as u32).to_be_bytes());
    out.extend_from_slice(envelope);
}

/// Splits a download body into its envelopes, refusing truncated frames and frames longer
/// than [`MAX_ENVELOPE_LEN`].
pub fn decode_frames(mut body: &[u8]) -> Result<Vec<&[u8]>, alloc::string::String> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        let (envelope, rest) = split_frame(body)?;
        frames.push(envelope);
        body = rest;
    }
    Ok(frames)
}

/// Length of the operator's sr25519 signature that ends a signed frame.
pub const FRAME_SIGNATURE_LEN: usize = 64;

/// Appends one envelope to a buyer's download body as a signed frame: 4-byte big-endian length
/// of the envelope, the envelope, then the serving operator's 64-byte sr25519 signature of
/// [`SegmentStatement::of`](crate::custody::SegmentStatement::of)`(stream, sequence, envelope)`
/// on the chain's genesis ([`crate::custody`]).
pub fn encode_signed_frame(
    out: &mut Vec<u8>,
    envelope: &[u8],
    signature: &[u8; FRAME_SIGNATURE_LEN],
) {
    encode_frame(out, envelope);
    out.extend_from_slice(signature);
}

/// One decoded signed frame: the envelope and the operator's raw sr25519 signature of it.
pub type SignedFrame<'a> = (&'a [u8], [u8; FRAME_SIGNATURE_LEN]);

/// Splits a buyer's download body into its envelopes and the operator's signature of each
/// (not checked here), refusing truncated frames or signatures and envelopes longer than
/// [`MAX_ENVELOPE_LEN`].
pub fn decode_signed_frames(
    mut body: &[u8],
) -> Result<Vec<SignedFrame<'_>>, alloc::string::String> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        let (envelope, rest) = split_frame(body)?;
        if rest.len() < FRAME_SIGNATURE_LEN {
            return Err("truncated frame signature".into());
        }
        let (signature, rest) = rest.split_at(FRAME_SIGNATURE_LEN);
        let mut raw = [0u8; FRAME_SIGNATURE_LEN];
        raw.copy_from_slice(signature);
        frames.push((envelope, raw));
        body = rest;
    }
    Ok(frames)
}

/// The envelope of the frame at the start of `body` and what follows it.
fn split_frame(body: &[u8]) -> Result<(&[u8], &[u8]), alloc::string::String> {
    if body.len() < 4 {
        return Err("truncated frame length".into());
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&body[..4]);
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_ENVELOPE_LEN {
        return Err(alloc::format!(
            "frame of {len} bytes exceeds the envelope limit"
        ));
    }
    let rest = &body[4..];
    if rest.len() < len {
        return Err("truncated frame".into());
    }
    Ok(rest.split_at(len))
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn frames_roundtrip_and_refuse_garbage() {
        let mut out = Vec::new();
        encode_frame(&mut out, b"abc");
        encode_frame(&mut out, b"");
        encode_frame(&mut out, b"defg");
        assert_eq!(
            decode_frames(&out).unwrap(),
            vec![&b"abc"[..], b"", b"defg"]
        );
        assert!(decode_frames(&out[..out.len() - 1]).is_err());
        assert!(decode_frames(&[0, 0]).is_err());
        assert!(decode_frames(&u32::MAX.to_be_bytes()).is_err());
        assert!(decode_frames(&[]).unwrap().is_empty());
    }

    #[test]
    fn signed_frames_roundtrip() {
        let mut out = Vec::new();
        encode_signed_frame(&mut out, b"abc", &[1; 64]);
        encode_signed_frame(&mut out, b"", &[2; 64]);
        encode_signed_frame(&mut out, b"defg", &[3; 64]);
        assert_eq!(out.len(), 3 * (4 + FRAME_SIGNATURE_LEN) + 7);
        assert_eq!(
            decode_signed_frames(&out).unwrap(),
            vec![
                (&b"abc"[..], [1; 64]),
                (&b""[..], [2; 64]),
                (&b"defg"[..], [3; 64])
            ]
        );
        assert!(decode_signed_frames(&[]).unwrap().is_empty());
        // Unsigned frames are not signed frames.
        let mut unsigned = Vec::new();
        encode_frame(&mut unsigned, b"abc");
        assert!(decode_signed_frames(&unsigned).is_err());
    }

    #[test]
    fn signed_frames_refuse_truncation() {
        let mut out = Vec::new();
        encode_signed_frame(&mut out, b"abc", &[1; 64]);
        encode_signed_frame(&mut out, b"defg", &[3; 64]);
        // Cut anywhere but at a frame boundary: refused.
        let boundary = 4 + 3 + FRAME_SIGNATURE_LEN;
        for len in 1..out.len() {
            let decoded = decode_signed_frames(&out[..len]);
            if len == boundary {
                assert_eq!(decoded.unwrap().len(), 1);
            } else {
                assert!(decoded.is_err(), "truncated to {len}");
            }
        }
        assert_eq!(
            decode_signed_frames(&out[..out.len() - 1]).unwrap_err(),
            "truncated frame signature"
        );
    }

    #[test]
    fn signed_frames_refuse_oversized_envelopes() {
        let mut out = ((MAX_ENVELOPE_LEN + 1) as u32).to_be_bytes().to_vec();
        out.extend(core::iter::repeat_n(
            0u8,
            MAX_ENVELOPE_LEN + 1 + FRAME_SIGNATURE_LEN,
        ));
        assert!(decode_signed_frames(&out)
            .unwrap_err()
            .contains("exceeds the envelope limit"));
        assert!(decode_signed_frames(&u32::MAX.to_be_bytes()).is_err());
        // The largest envelope is fine.
        let mut biggest = Vec::new();
        encode_signed_frame(&mut biggest, &vec![0u8; MAX_ENVELOPE_LEN], &[9; 64]);
        assert_eq!(decode_signed_frames(&biggest).unwrap().len(), 1);
    }

    #[test]
    fn signed_frames_carry_verifiable_statements() {
        use crate::custody::SegmentStatement;
        use sp_core::{sr25519, Pair};
        let operator = sr25519::Pair::from_seed(&[5; 32]);
        let genesis = H256::repeat_byte(0x47);
        let sealed = seal(&keys(), &header(), PLAINTEXT).unwrap();
        let statement = SegmentStatement::of(header().stream, header().sequence, &sealed);
        let mut out = Vec::new();
        encode_signed_frame(
            &mut out,
            &sealed,
            &statement.sign_sr25519(&operator, &genesis).0,
        );
        let frames = decode_signed_frames(&out).unwrap();
        let (envelope, signature) = frames[0];
        let h = parse_header(envelope).unwrap();
        let served = SegmentStatement::of(h.stream, h.sequence, envelope);
        let signature = sr25519::Signature::from_raw(signature);
        assert!(served.verify_sr25519(&signature, &operator.public(), &genesis));
    }

    fn keys() -> EpochKeys {
        EpochKeys::new([0x11; 32], [0x22; 32])
    }

    fn header() -> SegmentHeader {
        SegmentHeader {
            stream: H256::repeat_byte(0x44),
            epoch: 7,
            sequence: 42,
            timestamp: 1_700_000_000_000,
        }
    }

    const PLAINTEXT: &[u8] = b"temperature=21.5C";

    // Computed independently with Python's `cryptography` (AESGCM) and `hmac`/`hashlib`:
    //   aad = b"\x01" + header; pt = d + HMAC-SHA256(k_m, d)
    //   envelope = aad + nonce + AESGCM(k_e).encrypt(nonce, pt, aad)
    const KAT_ENVELOPE: &str = concat!(
        "01",
        "4444444444444444444444444444444444444444444444444444444444444444", // stream
        "07000000",                                                         // epoch
        "2a00000000000000",                                                 // sequence
        "0068e5cf8b010000",                                                 // timestamp
        "333333333333333333333333",                                         // nonce
        "f0e63f36afe01458c7ca8e50951acd1d45d894597b81b919a9e9f61488328d08",
        "7ab5718503b349872a13cde85f227889a72aa49a9a9945df5efd7611325153e9",
        "43",
    );
    // blake2b-256(k_e ‖ k_m) with k_e = 0x11.., k_m = 0x22.. (hashlib.blake2b(digest_size=32)).
    const KAT_COMMITMENT: &str = "428d37d6b34f605a8ff32b6a04c95d9c7d2aead9ecde193b2f5019b7f13ced23";

    fn unhex(s: &str) -> Option<Vec<u8>> {
        let s = s.trim();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect()
    }

    #[test]
    fn known_answer_vector() {
        let sealed = seal_with_nonce(&keys(), &header(), [0x33; 12], PLAINTEXT).unwrap();
        assert_eq!(sealed, unhex(KAT_ENVELOPE).unwrap());
        assert_eq!(sealed.len(), OVERHEAD + PLAINTEXT.len());
        let opened = open(&keys(), &unhex(KAT_ENVELOPE).unwrap()).unwrap();
        assert_eq!(opened.payload, PLAINTEXT);
        assert_eq!(opened.header, header());
    }

    #[test]
    fn known_answer_commitment() {
        assert_eq!(
            keys().commitment().0.to_vec(),
            unhex(KAT_COMMITMENT).unwrap()
        );
        assert_eq!(
            key_commitment(&[0x11; 32], &[0x22; 32]),
            keys().commitment()
        );
    }

    #[test]
    fn header_layout_is_fixed() {
        let encoded = header().encode();
        assert_eq!(encoded.len(), HEADER_LEN);
        assert_eq!(SegmentHeader::max_encoded_len(), HEADER_LEN);
        assert_eq!(&encoded[..32], &[0x44; 32]);
        assert_eq!(&encoded[32..36], &7u32.to_le_bytes());
        assert_eq!(&encoded[36..44], &42u64.to_le_bytes());
        assert_eq!(&encoded[44..52], &1_700_000_000_000u64.to_le_bytes());
    }

    #[test]
    fn roundtrip_and_header_without_keys() {
        for len in [0usize, 1, 15, 16, 17, 256, 4096, MAX_PAYLOAD_LEN] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&keys(), &header(), &payload).unwrap();
            assert_eq!(sealed.len(), OVERHEAD + len);
            assert_eq!(parse_header(&sealed).unwrap(), header());
            let parts = SealedSegment::parse(&sealed).unwrap();
            assert_eq!(parts.payload_len(), len);
            assert_eq!(open(&keys(), &sealed).unwrap().payload, payload);
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let sealed = seal_with_nonce(&keys(), &header(), [0x33; 12], PLAINTEXT).unwrap();
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut forged = sealed.clone();
                forged[byte] ^= 1 << bit;
                let err = open(&keys(), &forged).expect_err("a flipped bit must be detected");
                if byte == 0 {
                    assert!(matches!(err, EnvelopeError::UnsupportedVersion(_)));
                } else {
                    assert_eq!(err, EnvelopeError::Decryption, "byte {byte} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn header_tampering_is_detected() {
        let sealed = seal(&keys(), &header(), PLAINTEXT).unwrap();
        let tamperings: [fn(&mut SegmentHeader); 4] = [
            |h| h.stream = H256::repeat_byte(0x45),
            |h| h.epoch += 1,
            |h| h.sequence += 1,
            |h| h.timestamp -= 1,
        ];
        for tamper in tamperings {
            let mut h = header();
            tamper(&mut h);
            let mut forged = sealed.clone();
            forged[1..1 + HEADER_LEN].copy_from_slice(&h.encode());
            // The operator-visible header changed…
            assert_eq!(parse_header(&forged).unwrap(), h);
            // …and the buyer notices.
            assert_eq!(open(&keys(), &forged), Err(EnvelopeError::Decryption));
        }
        // A header moved onto another segment's ciphertext is detected too.
        let other = seal(
            &keys(),
            &SegmentHeader {
                sequence: 43,
                ..header()
            },
            PLAINTEXT,
        )
        .unwrap();
        let mut spliced = other.clone();
        spliced[..1 + HEADER_LEN].copy_from_slice(&sealed[..1 + HEADER_LEN]);
        assert_eq!(open(&keys(), &spliced), Err(EnvelopeError::Decryption));
    }

    #[test]
    fn wrong_epoch_keys_fail() {
        let sealed = seal(&keys(), &header(), PLAINTEXT).unwrap();
        let next_epoch = EpochKeys::generate().unwrap();
        assert_eq!(open(&next_epoch, &sealed), Err(EnvelopeError::Decryption));
        // Right k_e, wrong k_m: decrypts, but σ_d does not verify.
        let wrong_mac = EpochKeys::new([0x11; 32], [0x23; 32]);
        assert_eq!(open(&wrong_mac, &sealed), Err(EnvelopeError::BadMac));
        assert_ne!(wrong_mac.commitment(), keys().commitment());
    }

    #[test]
    fn nonces_are_unique_over_many_seals() {
        let mut nonces = std::collections::BTreeSet::new();
        let mut ciphertexts = std::collections::BTreeSet::new();
        for _ in 0..20_000 {
            let sealed = seal(&keys(), &header(), PLAINTEXT).unwrap();
            let parts = SealedSegment::parse(&sealed).unwrap();
            assert!(nonces.insert(parts.nonce), "nonce repeated");
            assert!(
                ciphertexts.insert(parts.ciphertext.to_vec()),
                "ciphertext repeated"
            );
        }
    }

    #[test]
    fn size_bounds_are_enforced() {
        let too_big = vec![0u8; MAX_PAYLOAD_LEN + 1];
        assert_eq!(
            seal(&keys(), &header(), &too_big),
            Err(EnvelopeError::PayloadTooLarge)
        );

        let biggest = seal(&keys(), &header(), &vec![0u8; MAX_PAYLOAD_LEN]).unwrap();
        assert_eq!(biggest.len(), MAX_ENVELOPE_LEN);
        let mut oversized = biggest.clone();
        oversized.push(0);
        assert_eq!(parse_header(&oversized), Err(EnvelopeError::TooLong));
        assert_eq!(open(&keys(), &oversized), Err(EnvelopeError::TooLong));
        assert_eq!(
            parse_header(&vec![1u8; 10 * MAX_ENVELOPE_LEN]),
            Err(EnvelopeError::TooLong)
        );

        let sealed = seal(&keys(), &header(), b"").unwrap();
        assert_eq!(sealed.len(), MIN_ENVELOPE_LEN);
        assert_eq!(
            parse_header(&sealed[..MIN_ENVELOPE_LEN - 1]),
            Err(EnvelopeError::TooShort)
        );
        assert_eq!(parse_header(&[]), Err(EnvelopeError::TooShort));
    }

    #[test]
    fn unknown_versions_are_refused() {
        let mut sealed = seal(&keys(), &header(), PLAINTEXT).unwrap();
        sealed[0] = 2;
        assert_eq!(
            parse_header(&sealed),
            Err(EnvelopeError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn truncation_anywhere_is_detected() {
        let sealed = seal(&keys(), &header(), PLAINTEXT).unwrap();
        for len in 0..sealed.len() {
            assert!(open(&keys(), &sealed[..len]).is_err(), "truncated to {len}");
        }
    }

    #[test]
    fn debug_never_prints_keys() {
        let printed = format!("{:?}", keys());
        assert!(!printed.contains("17, 17"), "{printed}");
        assert!(printed.contains("commitment"));
    }
}
