//! The local keystore: secrets that never go on chain.
//!
//! One JSON file (default `~/.fastdata/keystore.json`, override with `FASTDATA_KEYSTORE`),
//! created and rewritten with permissions `0600`:
//!
//! - named sr25519 accounts (`fastdata did create --name`), as 32-byte seeds;
//! - X25519 key-agreement secrets per account (the DID's public key is on chain; the secret
//!   opens the sealed data keys). Old secrets are kept after a rotation so keys sealed to them
//!   still open;
//! - per stream (seller side): the data keys `k_e`, `k_m` of every epoch (their commitment is
//!   on chain), the first sequence published under each epoch and the block at which each
//!   rotated epoch was opened (so that the key-delivery service gives a purchase exactly the
//!   epochs it bought, see [`crate::seller::epochs_due`]), and the next sequence to use. Files
//!   written before these records existed still open; their epochs are simply unrecorded.
//!
//! With a passphrase (`FASTDATA_KEYSTORE_PASSPHRASE`, see [`Passphrase`]) the file is
//! encrypted at rest: format version 2 is a JSON envelope
//! `{"version":2,"kdf":{..},"cipher":"aes-256-gcm","salt":..,"nonce":..,"ciphertext":..}`
//! whose key is derived from the passphrase with Argon2id (costs in the header, see
//! [`KdfParams`]) and whose header is authenticated with the ciphertext; every save draws a
//! fresh nonce. Without a passphrase the file is the plaintext version 1 as before. A
//! plaintext file opened with a passphrase is written encrypted on its next save; an encrypted
//! file opened without the passphrase, or with a wrong one, is an error and nothing is
//! written.
//!
//! Writes go to a temporary file in the same directory that is renamed over the old one, so a
//! crash never leaves a half-written keystore.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use fastdata_primitives::{envelope::EpochKeys, BlockNumber, EpochIndex, Sequence, StreamId};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sp_core::crypto::Ss58Codec;
use zeroize::{Zeroize, Zeroizing};

use crate::{account::Account, error::Error};

/// The environment variable that holds the keystore passphrase.
pub const PASSPHRASE_ENV: &str = "FASTDATA_KEYSTORE_PASSPHRASE";

/// Format version of a plaintext keystore.
const PLAINTEXT_VERSION: u32 = 1;
/// Format version of an encrypted keystore (the envelope).
const ENCRYPTED_VERSION: u32 = 2;
/// The only cipher of format version 2.
const CIPHER: &str = "aes-256-gcm";
/// The only KDF of format version 2.
const KDF: &str = "argon2id";
/// Argon2 version 1.3.
const ARGON2_VERSION: u32 = 0x13;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;

/// A keystore passphrase, wiped from memory when dropped.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// A passphrase from text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(Zeroizing::new(text.into().into_bytes()))
    }

    /// The passphrase in `FASTDATA_KEYSTORE_PASSPHRASE`, if set and not empty.
    pub fn from_env() -> Option<Self> {
        let value = std::env::var_os(PASSPHRASE_ENV)?;
        let bytes = Zeroizing::new(value.into_encoded_bytes());
        (!bytes.is_empty()).then(|| Self(bytes))
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Argon2id costs of an encrypted keystore, kept in its header so that they can change
/// without breaking older files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane.
    fn default() -> Self {
        Self {
            m_cost: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// The largest memory cost a file may ask for (4 GiB), so that a damaged or hostile
    /// header cannot exhaust the machine.
    pub const MAX_M_COST: u32 = 4 * 1024 * 1024;
    /// The most passes a file may ask for.
    pub const MAX_T_COST: u32 = 64;
    /// The most lanes a file may ask for.
    pub const MAX_P_COST: u32 = 16;

    fn argon2(&self) -> Result<argon2::Argon2<'static>, String> {
        if self.m_cost > Self::MAX_M_COST
            || self.t_cost > Self::MAX_T_COST
            || self.p_cost > Self::MAX_P_COST
        {
            return Err(format!(
                "key-derivation costs {self:?} exceed the limits (m_cost {} KiB, t_cost {}, p_cost {})",
                Self::MAX_M_COST,
                Self::MAX_T_COST,
                Self::MAX_P_COST
            ));
        }
        let params = argon2::Params::new(self.m_cost, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| format!("key-derivation costs {self:?}: {e}"))?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }
}

/// The key of an encrypted keystore and what it was derived with.
struct Sealing {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    key: Zeroizing<[u8; 32]>,
}

impl Sealing {
    /// Derives the key of `passphrase` under `params` and `salt`.
    fn derive(
        passphrase: &Passphrase,
        params: KdfParams,
        salt: [u8; SALT_LEN],
    ) -> Result<Self, String> {
        let mut key = Zeroizing::new([0u8; 32]);
        params
            .argon2()?
            .hash_password_into(&passphrase.0, &salt, key.as_mut())
            .map_err(|e| format!("key derivation failed: {e}"))?;
        Ok(Self { params, salt, key })
    }

    /// A new key under a fresh random salt.
    fn fresh(passphrase: &Passphrase, params: KdfParams) -> Result<Self, String> {
        let mut salt = [0u8; SALT_LEN];
        OsRng
            .try_fill_bytes(&mut salt)
            .map_err(|e| format!("the OS random generator failed: {e}"))?;
        Self::derive(passphrase, params, salt)
    }

    /// The header bytes the ciphertext authenticates.
    fn aad(&self) -> Vec<u8> {
        let p = self.params;
        format!(
            "fastdata keystore v{ENCRYPTED_VERSION} {CIPHER} {KDF} v{ARGON2_VERSION} m={} t={} p={} salt={}",
            p.m_cost,
            p.t_cost,
            p.p_cost,
            hex::encode(self.salt)
        )
        .into_bytes()
    }

    /// Encrypts `plaintext` under a fresh nonce.
    fn seal(&self, plaintext: &[u8]) -> Result<Envelope, String> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| format!("the OS random generator failed: {e}"))?;
        let cipher = Aes256Gcm::new_from_slice(self.key.as_ref()).map_err(|e| e.to_string())?;
        let aad = self.aad();
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| "encryption failed".to_owned())?;
        Ok(Envelope {
            version: ENCRYPTED_VERSION,
            kdf: KdfHeader {
                algorithm: KDF.to_owned(),
                version: ARGON2_VERSION,
                m_cost: self.params.m_cost,
                t_cost: self.params.t_cost,
                p_cost: self.params.p_cost,
            },
            cipher: CIPHER.to_owned(),
            salt: hex::encode(self.salt),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        })
    }

    /// Decrypts `ciphertext`; `None` if the key is wrong or anything was altered.
    fn open(&self, nonce: &[u8; NONCE_LEN], ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let cipher = Aes256Gcm::new_from_slice(self.key.as_ref()).ok()?;
        let aad = self.aad();
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// The KDF part of the envelope's header.
#[derive(Serialize, Deserialize)]
struct KdfHeader {
    algorithm: String,
    version: u32,
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
}

/// An encrypted keystore file (format version 2), all binary fields in hex.
#[derive(Serialize, Deserialize)]
struct Envelope {
    version: u32,
    kdf: KdfHeader,
    cipher: String,
    salt: String,
    nonce: String,
    ciphertext: String,
}

/// Just the format version of a keystore file.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    version: u32,
}

/// How a keystore file is stored, as [`Keystore::stored_format`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredFormat {
    /// No file yet.
    Missing,
    /// Plaintext JSON (format version 1): anyone who can read the file has the keys.
    Plaintext,
    /// Encrypted with a passphrase (format version 2) under these key-derivation costs.
    Encrypted(KdfParams),
}

/// What a keystore holds, without its secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Names of the stored accounts.
    pub accounts: Vec<String>,
    /// X25519 key-agreement secrets, over all accounts (rotated ones included).
    pub x25519_secrets: usize,
    /// Streams with stored secrets.
    pub streams: usize,
    /// Epoch keys over all streams.
    pub epoch_keys: usize,
}

/// Everything stored for one stream of a seller.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct StreamSecrets {
    /// `epoch → (k_e, k_m)`, hex.
    pub epochs: BTreeMap<EpochIndex, (String, String)>,
    /// `epoch → first sequence published under it`.
    #[serde(default)]
    pub epoch_starts: BTreeMap<EpochIndex, Sequence>,
    /// `epoch → block at which its rotation was seen finalized` (rotated epochs only).
    #[serde(default)]
    pub epoch_opened: BTreeMap<EpochIndex, BlockNumber>,
    /// The next sequence number to publish.
    #[serde(default)]
    pub next_sequence: Sequence,
}

/// What the seller's keystore recorded of one epoch of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochRecord {
    /// The epoch.
    pub epoch: EpochIndex,
    /// First sequence published under it, if recorded.
    pub first_sequence: Option<Sequence>,
    /// Block by which it was opened, if recorded.
    pub opened_at: Option<BlockNumber>,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    version: u32,
    #[serde(default)]
    accounts: BTreeMap<String, String>,
    #[serde(default)]
    x25519: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    streams: BTreeMap<String, StreamSecrets>,
}

impl Drop for File {
    fn drop(&mut self) {
        for v in self.accounts.values_mut() {
            v.zeroize();
        }
        for list in self.x25519.values_mut() {
            for v in list.iter_mut() {
                v.zeroize();
            }
        }
        for s in self.streams.values_mut() {
            for (a, b) in s.epochs.values_mut() {
                a.zeroize();
                b.zeroize();
            }
        }
    }
}

/// The keystore file.
pub struct Keystore {
    path: PathBuf,
    file: File,
    /// Set: saves encrypt. Unset: saves write plaintext.
    passphrase: Option<Passphrase>,
    /// Costs for a key under a new salt (the first encrypted save of a plaintext file).
    kdf: KdfParams,
    /// The key of the file, derived once (by the open of an encrypted file or the first
    /// encrypted save) and kept so that saves and reloads do not pay the KDF again.
    sealing: OnceLock<Sealing>,
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim_start_matches("0x"), &mut out).ok()?;
    Some(out)
}

/// A keystore file as read: its contents and, if it was encrypted, its key.
struct Loaded {
    file: File,
    sealing: Option<Sealing>,
}

/// Reads and, if needed, decrypts the keystore file at `path`; `None` if there is none.
/// `cached` is a key already derived for this file (reused if salt and costs match). A
/// plaintext file must not be readable by others; so must an encrypted one unless
/// `encrypted_may_be_shared` (a backup on removable media).
fn load(
    path: &Path,
    passphrase: Option<&Passphrase>,
    cached: Option<&Sealing>,
    encrypted_may_be_shared: bool,
) -> Result<Option<Loaded>, Error> {
    let err = |detail: String| Error::Keystore {
        path: path.display().to_string(),
        detail,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let probe: Probe = serde_json::from_slice(&bytes)
        .map_err(|e| err(format!("not a FAST DATA keystore: {e}")))?;
    if probe.version > ENCRYPTED_VERSION {
        return Err(err(format!(
            "format version {} is newer than this fastdata understands ({ENCRYPTED_VERSION}); upgrade fastdata",
            probe.version
        )));
    }
    let encrypted = probe.version == ENCRYPTED_VERSION;
    if !(encrypted && encrypted_may_be_shared) {
        check_private(path)?;
    }
    if !encrypted {
        let file = serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("not a FAST DATA keystore: {e}")))?;
        return Ok(Some(Loaded {
            file,
            sealing: None,
        }));
    }
    let envelope: Envelope = serde_json::from_slice(&bytes)
        .map_err(|e| err(format!("not a FAST DATA keystore: {e}")))?;
    if envelope.kdf.algorithm != KDF
        || envelope.kdf.version != ARGON2_VERSION
        || envelope.cipher != CIPHER
    {
        return Err(err(format!(
            "unsupported encryption {} v{} / {}; upgrade fastdata",
            envelope.kdf.algorithm, envelope.kdf.version, envelope.cipher
        )));
    }
    let params = KdfParams {
        m_cost: envelope.kdf.m_cost,
        t_cost: envelope.kdf.t_cost,
        p_cost: envelope.kdf.p_cost,
    };
    let damaged = |what: &str| err(format!("encrypted keystore with a damaged {what}"));
    let mut salt = [0u8; SALT_LEN];
    hex::decode_to_slice(&envelope.salt, &mut salt).map_err(|_| damaged("salt"))?;
    let mut nonce = [0u8; NONCE_LEN];
    hex::decode_to_slice(&envelope.nonce, &mut nonce).map_err(|_| damaged("nonce"))?;
    let ciphertext = hex::decode(&envelope.ciphertext).map_err(|_| damaged("ciphertext"))?;
    let Some(passphrase) = passphrase else {
        return Err(err(format!(
            "the keystore is encrypted: set {PASSPHRASE_ENV} to its passphrase"
        )));
    };
    let sealing = match cached {
        Some(c) if c.params == params && c.salt == salt => Sealing {
            params,
            salt,
            key: c.key.clone(),
        },
        _ => Sealing::derive(passphrase, params, salt).map_err(err)?,
    };
    let plaintext = sealing.open(&nonce, &ciphertext).ok_or_else(|| {
        err(format!(
            "cannot decrypt: wrong passphrase in {PASSPHRASE_ENV}, or the file was altered; nothing was written"
        ))
    })?;
    let file = serde_json::from_slice(&plaintext)
        .map_err(|e| err(format!("decrypted, but not a FAST DATA keystore: {e}")))?;
    Ok(Some(Loaded {
        file,
        sealing: Some(sealing),
    }))
}

/// Refuses a file that others may read.
fn check_private(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| Error::Keystore {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::Keystore {
                path: path.display().to_string(),
                detail: format!(
                    "permissions {:o} let others read secrets; run `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                ),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn empty_file() -> File {
    let mut file = File::default();
    file.version = PLAINTEXT_VERSION;
    file
}

impl Keystore {
    /// The default location: `$FASTDATA_KEYSTORE`, else `~/.fastdata/keystore.json`.
    pub fn default_path() -> PathBuf {
        if let Some(path) = std::env::var_os("FASTDATA_KEYSTORE") {
            return PathBuf::from(path);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        home.join(".fastdata").join("keystore.json")
    }

    /// Opens the keystore at `path` with the passphrase in `FASTDATA_KEYSTORE_PASSPHRASE`
    /// (if set), or an empty one if the file does not exist yet (it is created on the first
    /// [`Keystore::save`]). See [`Keystore::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, Passphrase::from_env())
    }

    /// Opens the keystore at `path`, or an empty one if the file does not exist yet. With a
    /// passphrase, saves encrypt (a plaintext file is encrypted on its next save); an
    /// encrypted file needs its passphrase. Refuses a file readable by others.
    pub fn open_with(
        path: impl AsRef<Path>,
        passphrase: Option<Passphrase>,
    ) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let loaded = load(&path, passphrase.as_ref(), None, false)?;
        let (file, sealing) = match loaded {
            Some(l) => (l.file, l.sealing),
            None => (empty_file(), None),
        };
        Ok(Self {
            path,
            file,
            passphrase,
            kdf: KdfParams::default(),
            sealing: sealing.map(OnceLock::from).unwrap_or_default(),
        })
    }

    /// Uses `params` when this keystore next encrypts under a new salt (a plaintext or new
    /// file saved with a passphrase, or a first backup of one). Files keep their costs in
    /// their header; the default ([`KdfParams::default`]) is what people should use, tests
    /// pass cheaper ones.
    pub fn with_kdf(mut self, params: KdfParams) -> Self {
        self.kdf = params;
        self
    }

    /// How the file at `path` is stored, without decrypting it.
    pub fn stored_format(path: impl AsRef<Path>) -> Result<StoredFormat, Error> {
        let path = path.as_ref();
        let err = |detail: String| Error::Keystore {
            path: path.display().to_string(),
            detail,
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StoredFormat::Missing),
            Err(e) => return Err(err(e.to_string())),
        };
        let probe: Probe = serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("not a FAST DATA keystore: {e}")))?;
        if probe.version != ENCRYPTED_VERSION {
            return Ok(StoredFormat::Plaintext);
        }
        let envelope: Envelope = serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("not a FAST DATA keystore: {e}")))?;
        Ok(StoredFormat::Encrypted(KdfParams {
            m_cost: envelope.kdf.m_cost,
            t_cost: envelope.kdf.t_cost,
            p_cost: envelope.kdf.p_cost,
        }))
    }

    /// Whether saves (and backups) encrypt, i.e. a passphrase is set.
    pub fn is_protected(&self) -> bool {
        self.passphrase.is_some()
    }

    /// Reads the file again (another process may have added epochs or accounts).
    pub fn reload(&mut self) -> Result<(), Error> {
        let loaded = load(
            &self.path,
            self.passphrase.as_ref(),
            self.sealing.get(),
            false,
        )?;
        let (mut file, sealing) = match loaded {
            Some(l) => (l.file, l.sealing),
            None => (empty_file(), None),
        };
        // Swap instead of move: `File` wipes its secrets on drop.
        std::mem::swap(&mut self.file, &mut file);
        if let Some(sealing) = sealing {
            self.sealing = OnceLock::from(sealing);
        }
        Ok(())
    }

    /// Where the keystore lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key to encrypt with, derived under a fresh salt if this keystore has none yet.
    fn sealing(&self, passphrase: &Passphrase) -> Result<&Sealing, String> {
        if let Some(sealing) = self.sealing.get() {
            return Ok(sealing);
        }
        let fresh = Sealing::fresh(passphrase, self.kdf)?;
        Ok(self.sealing.get_or_init(|| fresh))
    }

    /// The bytes to write: plaintext JSON, or the encrypted envelope with a fresh nonce.
    fn serialize(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        let json =
            Zeroizing::new(serde_json::to_vec_pretty(&self.file).map_err(|e| e.to_string())?);
        let Some(passphrase) = &self.passphrase else {
            return Ok(json);
        };
        let envelope = self.sealing(passphrase)?.seal(&json)?;
        serde_json::to_vec_pretty(&envelope)
            .map(Zeroizing::new)
            .map_err(|e| e.to_string())
    }

    /// Writes the keystore atomically with permissions 0600, encrypted if a passphrase is
    /// set.
    pub fn save(&self) -> Result<(), Error> {
        let err = |detail: String| Error::Keystore {
            path: self.path.display().to_string(),
            detail,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let bytes = self.serialize().map_err(err)?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let result = (|| {
            let mut f = options.open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e.to_string())
        })
    }

    /// Writes an encrypted copy of the keystore to `to` (permissions 0600), under the
    /// keystore's passphrase and a fresh nonce. Needs a passphrase; never overwrites a file.
    pub fn backup(&self, to: impl AsRef<Path>) -> Result<(), Error> {
        let to = to.as_ref();
        let err = |detail: String| Error::Keystore {
            path: to.display().to_string(),
            detail,
        };
        if self.passphrase.is_none() {
            return Err(err(format!(
                "a backup is always encrypted: set {PASSPHRASE_ENV} to the passphrase to protect it with"
            )));
        }
        let bytes = self.serialize().map_err(err)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(to).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                err("already exists; a backup never overwrites a file: pick another name".into())
            } else {
                err(e.to_string())
            }
        })?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| {
                let _ = std::fs::remove_file(to);
                err(e.to_string())
            })
    }

    /// Restores the backup `from` into a keystore at `to` and returns it. An encrypted backup
    /// needs its passphrase, which then also protects the restored keystore. Refuses to
    /// replace an existing keystore unless `force` (its secrets missing from the backup would
    /// be lost). Nothing is written unless the backup opens.
    pub fn restore(
        from: impl AsRef<Path>,
        to: impl AsRef<Path>,
        passphrase: Option<Passphrase>,
        force: bool,
    ) -> Result<Self, Error> {
        let (from, to) = (from.as_ref(), to.as_ref());
        if !force && std::fs::symlink_metadata(to).is_ok() {
            return Err(Error::Keystore {
                path: to.display().to_string(),
                detail: "a keystore already exists here; restoring would replace its secrets (pass --force if that is what you want)".into(),
            });
        }
        let loaded =
            load(from, passphrase.as_ref(), None, true)?.ok_or_else(|| Error::Keystore {
                path: from.display().to_string(),
                detail: "no such backup file".into(),
            })?;
        let keystore = Self {
            path: to.to_path_buf(),
            file: loaded.file,
            passphrase,
            kdf: KdfParams::default(),
            sealing: loaded.sealing.map(OnceLock::from).unwrap_or_default(),
        };
        keystore.save()?;
        Ok(keystore)
    }

    /// What the keystore holds, without secrets.
    pub fn summary(&self) -> Summary {
        Summary {
            accounts: self.account_names(),
            x25519_secrets: self.file.x25519.values().map(Vec::len).sum(),
            streams: self.file.streams.len(),
            epoch_keys: self.file.streams.values().map(|s| s.epochs.len()).sum(),
        }
    }

    /// Stores a named account seed.
    pub fn add_account(&mut self, name: &str, seed: &[u8; 32]) {
        self.file
            .accounts
            .insert(name.to_owned(), format!("0x{}", hex::encode(seed)));
    }

    /// The named account.
    pub fn account(&self, name: &str) -> Result<Account, Error> {
        let seed = self
            .file
            .accounts
            .get(name)
            .and_then(|s| hex32(s))
            .ok_or_else(|| Error::Keystore {
                path: self.path.display().to_string(),
                detail: format!(
                    "no account named {name:?}; create one with `fastdata did create --name {name}` or pass --suri"
                ),
            })?;
        Ok(Account::from_seed(&seed))
    }

    /// Names of the stored accounts.
    pub fn account_names(&self) -> Vec<String> {
        self.file.accounts.keys().cloned().collect()
    }

    /// Stores a new X25519 secret for `account` (the newest is the current one).
    pub fn add_x25519(&mut self, account: &fastdata_primitives::AccountId, secret: &[u8; 32]) {
        self.file
            .x25519
            .entry(account.to_ss58check())
            .or_default()
            .push(format!("0x{}", hex::encode(secret)));
    }

    /// All X25519 secrets of `account`, newest first.
    pub fn x25519_secrets(&self, account: &fastdata_primitives::AccountId) -> Vec<[u8; 32]> {
        self.file
            .x25519
            .get(&account.to_ss58check())
            .map(|list| list.iter().rev().filter_map(|s| hex32(s)).collect())
            .unwrap_or_default()
    }

    /// The secret whose public key is `public`, if stored for `account`.
    pub fn x25519_secret_for(
        &self,
        account: &fastdata_primitives::AccountId,
        public: &[u8; 32],
    ) -> Option<[u8; 32]> {
        self.x25519_secrets(account)
            .into_iter()
            .find(|s| fastdata_primitives::sealed::x25519_public_key(s).is_ok_and(|p| &p == public))
    }

    /// Stores the keys of `epoch` of `stream`.
    pub fn set_epoch_keys(&mut self, stream: &StreamId, epoch: EpochIndex, keys: &EpochKeys) {
        self.stream_mut(stream).epochs.insert(
            epoch,
            (
                format!("0x{}", hex::encode(keys.k_e)),
                format!("0x{}", hex::encode(keys.k_m)),
            ),
        );
    }

    /// Records that publishing under `epoch` of `stream` starts at sequence `first`, unless a
    /// start is already recorded (sequences only grow, so the first record is the start).
    /// Every publisher must record it before its first segment of an epoch: batch purchases get
    /// the keys of the epochs whose sequence ranges meet their window.
    pub fn record_epoch_start(&mut self, stream: &StreamId, epoch: EpochIndex, first: Sequence) {
        self.stream_mut(stream)
            .epoch_starts
            .entry(epoch)
            .or_insert(first);
    }

    /// Records that `epoch` of `stream` was opened (rotated to) by block `block`.
    pub fn record_epoch_opened(
        &mut self,
        stream: &StreamId,
        epoch: EpochIndex,
        block: BlockNumber,
    ) {
        self.stream_mut(stream).epoch_opened.insert(epoch, block);
    }

    /// What is recorded of each epoch of `stream` that has keys or a recorded start, by epoch.
    pub fn epochs(&self, stream: &StreamId) -> Vec<EpochRecord> {
        let Some(secrets) = self.stream(stream) else {
            return Vec::new();
        };
        let mut epochs: Vec<EpochIndex> = secrets
            .epochs
            .keys()
            .chain(secrets.epoch_starts.keys())
            .copied()
            .collect();
        epochs.sort_unstable();
        epochs.dedup();
        epochs
            .into_iter()
            .map(|epoch| EpochRecord {
                epoch,
                first_sequence: secrets.epoch_starts.get(&epoch).copied(),
                opened_at: secrets.epoch_opened.get(&epoch).copied(),
            })
            .collect()
    }

    /// The keys of `epoch` of `stream`.
    pub fn epoch_keys(&self, stream: &StreamId, epoch: EpochIndex) -> Option<EpochKeys> {
        let (k_e, k_m) = self.stream(stream)?.epochs.get(&epoch)?;
        Some(EpochKeys::new(hex32(k_e)?, hex32(k_m)?))
    }

    /// The secrets of `stream`, if any.
    pub fn stream(&self, stream: &StreamId) -> Option<&StreamSecrets> {
        self.file.streams.get(&hex::encode(stream.as_bytes()))
    }

    /// The secrets of `stream`, created empty if missing.
    pub fn stream_mut(&mut self, stream: &StreamId) -> &mut StreamSecrets {
        self.file
            .streams
            .entry(hex::encode(stream.as_bytes()))
            .or_default()
    }

    /// The streams with stored secrets.
    pub fn streams(&self) -> Vec<StreamId> {
        self.file
            .streams
            .keys()
            .filter_map(|k| hex32(k).map(StreamId::from))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sp_core::H256;

    #[test]
    fn roundtrip_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("keystore.json");
        let mut ks = Keystore::open(&path).unwrap();
        let (account, seed) = Account::generate().unwrap();
        ks.add_account("seller", &seed);
        let (secret, public) = fastdata_primitives::sealed::generate_x25519_keypair();
        ks.add_x25519(&account.account_id(), &secret);
        let stream = H256::repeat_byte(5);
        let keys = EpochKeys::new([1; 32], [2; 32]);
        ks.set_epoch_keys(&stream, 3, &keys);
        ks.stream_mut(&stream).next_sequence = 42;
        ks.save().unwrap();

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let ks = Keystore::open(&path).unwrap();
        assert_eq!(ks.account("seller").unwrap().public(), account.public());
        assert!(ks.account("nobody").is_err());
        assert_eq!(
            ks.x25519_secret_for(&account.account_id(), &public),
            Some(secret)
        );
        assert_eq!(ks.epoch_keys(&stream, 3), Some(keys));
        assert_eq!(ks.epoch_keys(&stream, 4), None);
        assert_eq!(ks.stream(&stream).unwrap().next_sequence, 42);
        assert_eq!(ks.streams(), vec![stream]);
    }

    #[test]
    fn epoch_records_persist_and_old_files_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        let stream = H256::repeat_byte(6);
        let mut ks = Keystore::open(&path).unwrap();
        ks.set_epoch_keys(&stream, 0, &EpochKeys::new([1; 32], [2; 32]));
        ks.set_epoch_keys(&stream, 1, &EpochKeys::new([3; 32], [4; 32]));
        ks.record_epoch_start(&stream, 0, 0);
        ks.record_epoch_start(&stream, 1, 40);
        // A later publisher of the same epoch does not move its start.
        ks.record_epoch_start(&stream, 1, 55);
        ks.record_epoch_opened(&stream, 1, 120);
        ks.save().unwrap();
        let ks = Keystore::open(&path).unwrap();
        assert_eq!(
            ks.epochs(&stream),
            vec![
                EpochRecord {
                    epoch: 0,
                    first_sequence: Some(0),
                    opened_at: None
                },
                EpochRecord {
                    epoch: 1,
                    first_sequence: Some(40),
                    opened_at: Some(120)
                },
            ]
        );
        assert!(ks.epochs(&H256::repeat_byte(7)).is_empty());

        // A file written before the epoch records existed.
        let old = dir.path().join("old.json");
        let key = hex::encode(stream.as_bytes());
        let json = format!(
            r#"{{"version":1,"streams":{{"{key}":{{"epochs":{{"0":["0x{}","0x{}"]}},"next_sequence":9}}}}}}"#,
            hex::encode([1u8; 32]),
            hex::encode([2u8; 32])
        );
        std::fs::write(&old, json).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let ks = Keystore::open(&old).unwrap();
        assert_eq!(
            ks.epochs(&stream),
            vec![EpochRecord {
                epoch: 0,
                first_sequence: None,
                opened_at: None
            }]
        );
        assert_eq!(ks.stream(&stream).unwrap().next_sequence, 9);
    }

    #[test]
    fn reload_sees_other_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        let mut service = Keystore::open(&path).unwrap();
        let stream = H256::repeat_byte(1);
        let mut other = Keystore::open(&path).unwrap();
        other.set_epoch_keys(&stream, 1, &EpochKeys::new([3; 32], [4; 32]));
        other.save().unwrap();
        assert!(service.epoch_keys(&stream, 1).is_none());
        service.reload().unwrap();
        assert!(service.epoch_keys(&stream, 1).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_world_readable_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        Keystore::open(&path).unwrap().save().unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keystore::open(&path).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    /// Cheap Argon2id costs: tests derive many keys.
    const CHEAP: KdfParams = KdfParams {
        m_cost: 8,
        t_cost: 1,
        p_cost: 1,
    };

    fn pass(text: &str) -> Option<Passphrase> {
        Some(Passphrase::new(text))
    }

    /// A keystore with an account, an X25519 secret and epoch keys; returns the seed.
    fn filled(ks: &mut Keystore) -> [u8; 32] {
        let (_, seed) = Account::generate().unwrap();
        ks.add_account("seller", &seed);
        let account = Account::from_seed(&seed);
        let (secret, _) = fastdata_primitives::sealed::generate_x25519_keypair();
        ks.add_x25519(&account.account_id(), &secret);
        ks.set_epoch_keys(
            &H256::repeat_byte(5),
            3,
            &EpochKeys::new([0xa1; 32], [0xb2; 32]),
        );
        seed
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn envelope(path: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn encrypted_roundtrip_hides_the_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        let mut ks = Keystore::open_with(&path, pass("correct horse"))
            .unwrap()
            .with_kdf(CHEAP);
        assert!(ks.is_protected());
        let seed = filled(&mut ks);
        ks.save().unwrap();
        assert_eq!(
            Keystore::stored_format(&path).unwrap(),
            StoredFormat::Encrypted(CHEAP)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bytes = std::fs::read(&path).unwrap();
        for secret in [
            &seed[..],
            hex::encode(seed).as_bytes(),
            hex::encode([0xa1u8; 32]).as_bytes(),
            b"seller",
        ] {
            assert!(!contains(&bytes, secret), "the file shows {secret:?}");
        }

        let first = envelope(&path);
        let again = Keystore::open_with(&path, pass("correct horse")).unwrap();
        assert_eq!(
            again.account("seller").unwrap().public(),
            Account::from_seed(&seed).public()
        );
        assert_eq!(
            again.epoch_keys(&H256::repeat_byte(5), 3),
            Some(EpochKeys::new([0xa1; 32], [0xb2; 32]))
        );
        assert_eq!(again.summary().x25519_secrets, 1);
        // Every save draws a fresh nonce under the same salt (and header costs).
        again.save().unwrap();
        let second = envelope(&path);
        assert_eq!(first["salt"], second["salt"]);
        assert_eq!(first["kdf"], second["kdf"]);
        assert_ne!(first["nonce"], second["nonce"]);
        assert_eq!(second["version"], 2);
    }

    #[test]
    fn default_costs_are_memory_hard() {
        let d = KdfParams::default();
        assert!(
            d.m_cost >= 64 * 1024 && d.t_cost >= 3 && d.p_cost >= 1,
            "{d:?}"
        );
    }

    #[test]
    fn wrong_or_missing_passphrase_is_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        let mut ks = Keystore::open_with(&path, pass("right"))
            .unwrap()
            .with_kdf(CHEAP);
        filled(&mut ks);
        ks.save().unwrap();
        let before = std::fs::read(&path).unwrap();
        for passphrase in [pass("wrong"), pass("Right"), None] {
            let err = Keystore::open_with(&path, passphrase).err().unwrap();
            assert!(matches!(err, Error::Keystore { .. }), "{err}");
            assert!(err.to_string().contains(PASSPHRASE_ENV), "{err}");
        }
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // No temporary file was left either.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn tampering_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        let mut ks = Keystore::open_with(&path, pass("pw"))
            .unwrap()
            .with_kdf(CHEAP);
        filled(&mut ks);
        ks.save().unwrap();
        let good = envelope(&path);
        let flip = |text: &str, at: usize| {
            let mut chars: Vec<char> = text.chars().collect();
            chars[at] = if chars[at] == '0' { '1' } else { '0' };
            chars.into_iter().collect::<String>()
        };
        let ciphertext = good["ciphertext"].as_str().unwrap();
        let salt = good["salt"].as_str().unwrap();
        let nonce = good["nonce"].as_str().unwrap();
        let mut cases = Vec::new();
        for at in [0, ciphertext.len() / 2, ciphertext.len() - 1] {
            let mut v = good.clone();
            v["ciphertext"] = flip(ciphertext, at).into();
            cases.push(v);
        }
        let mut v = good.clone();
        v["salt"] = flip(salt, 3).into();
        cases.push(v);
        let mut v = good.clone();
        v["nonce"] = flip(nonce, 0).into();
        cases.push(v);
        let mut v = good.clone();
        v["kdf"]["t_cost"] = 2.into();
        cases.push(v);
        let mut v = good.clone();
        v["ciphertext"] = ciphertext[..ciphertext.len() - 2].into();
        cases.push(v);
        for (i, case) in cases.into_iter().enumerate() {
            std::fs::write(&path, serde_json::to_vec(&case).unwrap()).unwrap();
            let err = Keystore::open_with(&path, pass("pw")).err();
            let err = err.unwrap_or_else(|| panic!("tampered case {i} opened"));
            assert!(err.to_string().contains("altered"), "case {i}: {err}");
        }
        // A hostile header cannot make the KDF exhaust the machine.
        let mut v = good.clone();
        v["kdf"]["m_cost"] = (KdfParams::MAX_M_COST + 1).into();
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let err = Keystore::open_with(&path, pass("pw"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("exceed the limits"), "{err}");
        // Unknown newer formats are named.
        std::fs::write(&path, br#"{"version":3}"#).unwrap();
        let err = Keystore::open_with(&path, pass("pw"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("upgrade fastdata"), "{err}");
    }

    #[test]
    fn plaintext_file_opens_and_is_encrypted_on_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        let mut old = Keystore::open_with(&path, None).unwrap();
        assert!(!old.is_protected());
        let seed = filled(&mut old);
        old.save().unwrap();
        assert_eq!(
            Keystore::stored_format(&path).unwrap(),
            StoredFormat::Plaintext
        );
        let plain = std::fs::read(&path).unwrap();
        assert!(contains(&plain, hex::encode(seed).as_bytes()));

        // Opening with a passphrase reads it and writes nothing ...
        let ks = Keystore::open_with(&path, pass("new"))
            .unwrap()
            .with_kdf(CHEAP);
        assert_eq!(std::fs::read(&path).unwrap(), plain);
        assert_eq!(ks.summary().accounts, vec!["seller".to_owned()]);
        // ... until the next save, which encrypts.
        ks.save().unwrap();
        assert_eq!(
            Keystore::stored_format(&path).unwrap(),
            StoredFormat::Encrypted(CHEAP)
        );
        let bytes = std::fs::read(&path).unwrap();
        assert!(!contains(&bytes, hex::encode(seed).as_bytes()));
        assert!(!contains(&bytes, &seed));
        assert!(Keystore::open_with(&path, None).is_err());
        let ks = Keystore::open_with(&path, pass("new")).unwrap();
        assert_eq!(
            ks.account("seller").unwrap().public(),
            Account::from_seed(&seed).public()
        );
    }

    #[test]
    fn encrypted_reload_sees_other_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        let service = Keystore::open_with(&path, pass("pw"))
            .unwrap()
            .with_kdf(CHEAP);
        service.save().unwrap();
        let mut service = Keystore::open_with(&path, pass("pw")).unwrap();
        let stream = H256::repeat_byte(1);
        let mut other = Keystore::open_with(&path, pass("pw")).unwrap();
        other.set_epoch_keys(&stream, 1, &EpochKeys::new([3; 32], [4; 32]));
        other.save().unwrap();
        assert!(service.epoch_keys(&stream, 1).is_none());
        service.reload().unwrap();
        assert!(service.epoch_keys(&stream, 1).is_some());
        service.save().unwrap();
        assert!(Keystore::open_with(&path, pass("pw"))
            .unwrap()
            .epoch_keys(&stream, 1)
            .is_some());
    }

    #[test]
    fn backup_and_restore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        let backup = dir.path().join("backup.json");
        let mut plain = Keystore::open_with(&path, None).unwrap();
        let seed = filled(&mut plain);
        plain.save().unwrap();
        let err = plain.backup(&backup).err().unwrap().to_string();
        assert!(err.contains(PASSPHRASE_ENV), "{err}");
        assert!(!backup.exists());

        let ks = Keystore::open_with(&path, pass("pw"))
            .unwrap()
            .with_kdf(CHEAP);
        ks.backup(&backup).unwrap();
        assert_eq!(
            Keystore::stored_format(&backup).unwrap(),
            StoredFormat::Encrypted(CHEAP)
        );
        assert!(!contains(
            &std::fs::read(&backup).unwrap(),
            hex::encode(seed).as_bytes()
        ));
        // Never overwrites a file.
        let first = std::fs::read(&backup).unwrap();
        let err = ks.backup(&backup).err().unwrap().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&backup).unwrap(), first);

        // Restore refuses an existing keystore, a wrong passphrase and a missing backup.
        let before = std::fs::read(&path).unwrap();
        let err = Keystore::restore(&backup, &path, pass("pw"), false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--force"), "{err}");
        let target = dir.path().join("restored.json");
        assert!(Keystore::restore(&backup, &target, pass("bad"), false).is_err());
        assert!(Keystore::restore(&backup, &target, None, false).is_err());
        assert!(Keystore::restore(dir.path().join("none"), &target, pass("pw"), false).is_err());
        assert!(!target.exists());
        assert_eq!(std::fs::read(&path).unwrap(), before);

        // An encrypted backup opens even if its copy lost the private permissions.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let restored = Keystore::restore(&backup, &target, pass("pw"), false).unwrap();
        assert!(restored.is_protected());
        assert_eq!(restored.summary(), ks.summary());
        let reopened = Keystore::open_with(&target, pass("pw")).unwrap();
        assert_eq!(
            reopened.account("seller").unwrap().public(),
            Account::from_seed(&seed).public()
        );
        assert!(matches!(
            Keystore::stored_format(&target).unwrap(),
            StoredFormat::Encrypted(_)
        ));
        // --force replaces the plaintext keystore with the encrypted restore.
        Keystore::restore(&backup, &path, pass("pw"), true).unwrap();
        assert!(matches!(
            Keystore::stored_format(&path).unwrap(),
            StoredFormat::Encrypted(_)
        ));
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        Keystore::open(&path).unwrap().save().unwrap();
        std::fs::write(&path, b"{not json").unwrap();
        let err = Keystore::open(&path).err().unwrap().to_string();
        assert!(err.contains("not a FAST DATA keystore"), "{err}");
    }
}
