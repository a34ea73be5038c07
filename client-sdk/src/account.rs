//! Accounts: an sr25519 key pair that signs transactions, upload tokens, access requests and
//! receipts. A DID is `did:fast:<ss58 of the account>`.

use fastdata_primitives::AccountId;
use sp_core::{
    crypto::{Ss58Codec, Zeroize},
    sr25519, Pair,
};

use crate::{error::Error, FastDataConfig};

/// An sr25519 account with its secret.
#[derive(Clone)]
pub struct Account {
    pair: sr25519::Pair,
}

impl core::fmt::Debug for Account {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the secret.
        f.debug_struct("Account")
            .field("address", &self.address())
            .finish()
    }
}

impl Account {
    /// From a secret URI: `//Alice`, a BIP-39 phrase with optional `//hard/soft` derivation and
    /// `///password`, or a `0x`-hex 32-byte seed.
    pub fn from_suri(suri: &str) -> Result<Self, Error> {
        let pair = sr25519::Pair::from_string(suri, None).map_err(|e| {
            Error::Account(format!(
                "not a valid secret URI ({e:?}); use //Alice, a 12/24-word phrase or a 0x seed"
            ))
        })?;
        Ok(Self { pair })
    }

    /// From a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            pair: sr25519::Pair::from_seed(seed),
        }
    }

    /// A fresh random account and its 32-byte seed (keep the seed secret).
    pub fn generate() -> Result<(Self, [u8; 32]), Error> {
        use rand_core::RngCore;
        let mut seed = [0u8; 32];
        rand_core::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| Error::Account(format!("random number generator failed: {e}")))?;
        let account = Self::from_seed(&seed);
        let out = seed;
        seed.zeroize();
        Ok((account, out))
    }

    /// The key pair (for signing tokens, requests and receipts with `fastdata-primitives`).
    pub fn pair(&self) -> &sr25519::Pair {
        &self.pair
    }

    /// The public key.
    pub fn public(&self) -> sr25519::Public {
        self.pair.public()
    }

    /// The account id.
    pub fn account_id(&self) -> AccountId {
        AccountId::from(self.pair.public())
    }

    /// The SS58 address (Substrate prefix 42).
    pub fn address(&self) -> String {
        self.account_id().to_ss58check()
    }

    /// The DID of the account: `did:fast:<ss58>`.
    pub fn did(&self) -> String {
        did_of(&self.account_id())
    }
}

/// The DID of `account`: `did:fast:<ss58>`.
pub fn did_of(account: &AccountId) -> String {
    format!("did:fast:{}", account.to_ss58check())
}

/// Parses an account given as SS58, `did:fast:<ss58>` or `0x` + 64 hex digits.
pub fn parse_account(text: &str) -> Result<AccountId, Error> {
    let text = text.trim();
    let text = text.strip_prefix("did:fast:").unwrap_or(text);
    if let Some(hex_id) = text.strip_prefix("0x") {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(hex_id, &mut raw)
            .map_err(|_| Error::Account(format!("{text:?} is not 0x followed by 64 hex digits")))?;
        return Ok(AccountId::new(raw));
    }
    AccountId::from_ss58check(text)
        .map_err(|e| Error::Account(format!("{text:?} is not an SS58 address or DID ({e:?})")))
}

impl subxt::tx::Signer<FastDataConfig> for Account {
    fn account_id(&self) -> subxt::utils::AccountId32 {
        subxt::utils::AccountId32(self.pair.public().0)
    }

    fn sign(&self, signer_payload: &[u8]) -> subxt::utils::MultiSignature {
        subxt::utils::MultiSignature::Sr25519(self.pair.sign(signer_payload).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_match_subxt_signer() {
        let alice = Account::from_suri("//Alice").unwrap();
        let expected = subxt_signer::sr25519::dev::alice().public_key().0;
        assert_eq!(alice.public().0, expected);
        assert_eq!(
            alice.address(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        assert!(alice.did().starts_with("did:fast:5Grw"));
        assert!(!format!("{alice:?}").contains("secret"));
    }

    #[test]
    fn parse_accounts_in_all_forms() {
        let alice = Account::from_suri("//Alice").unwrap();
        let id = alice.account_id();
        assert_eq!(parse_account(&alice.address()).unwrap(), id);
        assert_eq!(parse_account(&alice.did()).unwrap(), id);
        let hex_form = format!("0x{}", hex::encode(alice.public().0));
        assert_eq!(parse_account(&hex_form).unwrap(), id);
        assert!(parse_account("not-an-address").is_err());
        assert!(parse_account("0x1234").is_err());
        assert!(Account::from_suri("").is_err() || Account::from_suri("").is_ok());
        assert!(Account::from_suri("//Alice//stash").is_ok());
    }

    #[test]
    fn generated_accounts_roundtrip_through_the_seed() {
        let (a, seed) = Account::generate().unwrap();
        assert_eq!(Account::from_seed(&seed).public(), a.public());
        let suri = format!("0x{}", hex::encode(seed));
        assert_eq!(Account::from_suri(&suri).unwrap().public(), a.public());
    }
}
