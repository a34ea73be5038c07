//! The chain facts an upload token is checked against.

use crate::*;
use fastdata_primitives::{
    tokens::{SignedUploadToken, TokenError, UploadTarget, UploadToken},
    OperatorProvider,
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_core::sr25519;

impl<T: Config> Pallet<T> {
    /// Checks `token` against chain state and returns the seller whose key must have signed
    /// it: the stream exists and passes [`UploadToken::check_target`] (the daemon's check).
    pub fn upload_token_facts(
        token: &UploadToken<T::AccountId, BlockNumberFor<T>>,
    ) -> Result<T::AccountId, TokenError> {
        let stream = Streams::<T>::get(token.stream).ok_or(TokenError::UnknownStream)?;
        token.check_target(&UploadTarget {
            open: stream.is_open(),
            operators: &T::Operators::assigned(&token.stream),
            epoch: stream.epoch,
            oldest_epoch: stream.oldest_epoch,
        })?;
        Ok(stream.seller)
    }

    /// Full check of an upload token presented to `operator` at the current block: the chain
    /// facts of [`Self::upload_token_facts`], then the seller's sr25519 signature, the
    /// addressee, the expiry and a nonce above `last_nonce` (the highest the operator accepted
    /// for this stream so far), all for this chain's genesis hash.
    pub fn check_upload_token(
        token: &SignedUploadToken<T::AccountId, BlockNumberFor<T>>,
        operator: &T::AccountId,
        last_nonce: Option<u64>,
    ) -> Result<(), TokenError>
    where
        T::AccountId: AsRef<[u8; 32]>,
    {
        let seller = Self::upload_token_facts(&token.payload)?;
        let key = sr25519::Public::from_raw(*seller.as_ref());
        let genesis = frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::default());
        token.check(
            &key,
            operator,
            frame_system::Pallet::<T>::block_number(),
            last_nonce,
            &fastdata_primitives::genesis_h256(genesis.as_ref()),
        )
    }
}
