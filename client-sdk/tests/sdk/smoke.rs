//! Smoke test against a running node (`scripts/test` starts one): a balance transfer from
//! Alice to a fresh account is finalized and its events and balances are as expected. It uses
//! the subxt client and the generated code directly, below the SDK's `FastData`.

use fastdata_sdk::chain::fastdata;
use fastdata_sdk::subxt::utils::{AccountId32, MultiAddress};
use fastdata_sdk::subxt_signer::sr25519::{dev, Keypair};
use fastdata_sdk::subxt_signer::SecretUri;
use std::str::FromStr;

fn url() -> String {
    std::env::var("FASTDATA_WS").unwrap_or_else(|_| fastdata_sdk::DEFAULT_URL.to_string())
}

async fn free_balance(api: &fastdata_sdk::Client, who: [u8; 32]) -> u128 {
    let at = api.at_current_block().await.expect("latest block");
    let addr = fastdata::storage().system().account();
    match at
        .storage()
        .try_fetch(addr, (AccountId32(who),))
        .await
        .expect("storage query")
    {
        Some(v) => v.decode().expect("AccountInfo decodes").data.free,
        None => 0,
    }
}

#[tokio::test]
#[ignore = "needs a running fastdata-node; run by scripts/test"]
async fn transfer_is_finalized_with_events() {
    let api = fastdata_sdk::connect(&url())
        .await
        .expect("connect to the node");
    let alice = dev::alice();
    // A fresh account per run, so re-runs against a persistent chain still start at zero.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let dest = Keypair::from_uri(&SecretUri::from_str(&format!("//smoke-{nonce}")).expect("uri"))
        .expect("keypair");
    let dest_id: [u8; 32] = dest.public_key().0;
    let amount: u128 = fastdata_sdk::primitives::UNIT; // one FAST

    let before_alice = free_balance(&api, alice.public_key().0).await;
    assert_eq!(free_balance(&api, dest_id).await, 0);

    let tx = fastdata::tx()
        .balances()
        .transfer_keep_alive(MultiAddress::Id(AccountId32(dest_id)), amount);
    let events = api
        .at_current_block()
        .await
        .expect("latest block")
        .transactions()
        .sign_and_submit_then_watch_default(&tx, &alice)
        .await
        .expect("submitted")
        .wait_for_finalized_success()
        .await
        .expect("finalized and successful");

    let t = events
        .find_first::<fastdata::balances::events::Transfer>()
        .expect("a Balances.Transfer event")
        .expect("Transfer fields");
    assert_eq!(t.from, AccountId32(alice.public_key().0));
    assert_eq!(t.to, AccountId32(dest_id));
    assert_eq!(t.amount, amount);

    assert_eq!(free_balance(&api, dest_id).await, amount);
    let after_alice = free_balance(&api, alice.public_key().0).await;
    assert!(
        after_alice < before_alice - amount,
        "Alice paid the amount plus a fee"
    );
    println!("transfer finalized: {amount} planck to 0x{}", hex(&dest_id));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
