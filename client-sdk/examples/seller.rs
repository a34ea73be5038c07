//! A seller, end to end: DID, credential (from the dev issuer), offer, stream, sensor data
//! published to the assigned operators, and the key-delivery service.
//!
//! ```sh
//! cargo run -p fastdata-sdk --example seller
//! # FASTDATA_WS, FASTDATA_SURI (default //Bob), FASTDATA_ISSUER_SURI (default //Alice),
//! # FASTDATA_KEYSTORE (default ./seller-keystore.json) override the defaults.
//! ```
//!
//! Needs a dev node and at least one registered storage operator running its daemon.

use std::time::Duration;

use fastdata_primitives::{
    api_market::{Licence, OfferTerms},
    PaymentMode,
};
use fastdata_sdk::{
    keystore::Keystore,
    publish::{SimulatedSensor, StreamPublisher},
    Account, FastData,
};
use sp_runtime::Perbill;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = env("FASTDATA_WS", fastdata_sdk::DEFAULT_URL);
    let seller =
        FastData::connect(&url, Account::from_suri(&env("FASTDATA_SURI", "//Bob"))?).await?;
    let mut keystore = Keystore::open(env("FASTDATA_KEYSTORE", "seller-keystore.json"))?;
    let me = seller.account().account_id();

    // 1. A DID with an X25519 key, and a credential so that the seller may list.
    if seller.did_document(&me).await?.is_none() {
        seller.create_did(&mut keystore, Vec::new()).await?;
        println!("created {}", seller.account().did());
    }
    if !seller.is_verified(&me).await? {
        let issuer =
            seller.as_account(Account::from_suri(&env("FASTDATA_ISSUER_SURI", "//Alice"))?);
        let expires = issuer.finalized_number().await? + 1_000_000;
        issuer
            .attest_credential(&me, b"KYC", sp_core::H256::zero(), expires)
            .await?;
        println!("KYC credential attested by the dev issuer");
    }

    // 2. An offer for a live stream, 1 FAST per 100-block period, and its stream.
    let terms = OfferTerms {
        licence: Licence::InternalUse,
        resale_allowed: false,
        verified_only: false,
        verified_discount: Perbill::from_percent(10),
        min_trust_score: 0,
        retention: 14_400,
        replication: 1,
    };
    let offer = seller
        .create_offer(
            "plant7/press/temperature",
            PaymentMode::Stream { period: 100 },
            fastdata_sdk::primitives::UNIT,
            terms,
        )
        .await?;
    let stream = seller
        .register_stream(
            &mut keystore,
            offer,
            "press-line-1",
            fastdata_sdk::seller::Hosting::DEMO,
        )
        .await?;
    println!(
        "offer {offer}, stream {:?} on {} operator(s)",
        stream.stream,
        stream.operators.len()
    );

    // 3. Publish 20 sensor readings to every assigned operator's broker.
    let endpoints = seller.stream_endpoints(&stream.stream).await?;
    let keys = keystore
        .epoch_keys(&stream.stream, 0)
        .ok_or_else(|| anyhow::anyhow!("epoch-0 keys missing from the keystore"))?;
    let expiry = seller.finalized_number().await? + 14_400;
    // Batch buyers get the keys of the epochs whose sequences meet their window.
    keystore.record_epoch_start(&stream.stream, 0, 0);
    keystore.save()?;
    let mut publisher = StreamPublisher::connect(
        seller.account(),
        seller.genesis(),
        stream.stream,
        0,
        keys,
        &endpoints,
        expiry,
        0,
    )
    .await?;
    let mut sensor = SimulatedSensor::new("press-7");
    for _ in 0..20 {
        publisher.publish(&sensor.reading()).await?;
    }
    publisher.close(Duration::from_secs(30)).await?;
    keystore.stream_mut(&stream.stream).next_sequence = 20;
    keystore.save()?;
    println!("published 20 segments; delivering keys to buyers for 5 minutes (Ctrl-C stops)");

    // 4. Deliver sealed keys to every buyer as purchases come in.
    seller
        .run_key_delivery(
            &mut keystore,
            |d| println!("purchase {} epoch {}: {:?}", d.purchase, d.epoch, d.result),
            async {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = tokio::time::sleep(Duration::from_secs(300)) => {}
                }
            },
        )
        .await?;
    Ok(())
}
