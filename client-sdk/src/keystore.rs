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
//! Writes go to a temporary file in the same directory that is renamed over the old one, so a
//! crash never leaves a half-written keystore.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
};

use fastdata_primitives::{envelope::EpochKeys, BlockNumber, EpochIndex, Sequence, StreamId};
use serde::{Deserialize, Serialize};
use sp_core::crypto::Ss58Codec;
use zeroize::Zeroize;

use crate::{account::Account, error::Error};

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
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim_start_matches("0x"), &mut out).ok()?;
    Some(out)
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

    /// Opens the keystore at `path`, or an empty one if the file does not exist yet (it is
    /// created on the first [`Keystore::save`]). Refuses a file readable by others.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let err = |detail: String| Error::Keystore {
            path: path.display().to_string(),
            detail,
        };
        let file = match std::fs::read(&path) {
            Ok(bytes) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(&path)
                        .map_err(|e| err(e.to_string()))?
                        .permissions()
                        .mode();
                    if mode & 0o077 != 0 {
                        return Err(err(format!(
                            "permissions {:o} let others read secrets; run `chmod 600 {}`",
                            mode & 0o777,
                            path.display()
                        )));
                    }
                }
                serde_json::from_slice(&bytes)
                    .map_err(|e| err(format!("not a FAST DATA keystore: {e}")))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut empty = File::default();
                empty.version = 1;
                empty
            }
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(Self { path, file })
    }

    /// Reads the file again (another process may have added epochs or accounts).
    pub fn reload(&mut self) -> Result<(), Error> {
        let fresh = Self::open(&self.path)?;
        // Swap instead of move: `File` wipes its secrets on drop.
        std::mem::swap(&mut self.file, &mut { fresh }.file);
        Ok(())
    }

    /// Where the keystore lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the keystore atomically with permissions 0600.
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
        let mut json = serde_json::to_vec_pretty(&self.file).map_err(|e| err(e.to_string()))?;
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
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        json.zeroize();
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e.to_string())
        })
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
