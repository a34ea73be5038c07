//! A buyer, end to end: DID, browse offers with the sellers' trust scores, buy, wait for the
//! sealed keys, check them against the on-chain commitment, download and verify the data.
//!
//! ```sh
//! cargo run -p fastdata-sdk --example buyer [offer id]
//! # FASTDATA_WS, FASTDATA_SURI (default //Charlie), FASTDATA_KEYSTORE
//! # (default ./buyer-keystore.json) override the defaults.
//! ```

use std::time::Duration;

use fastdata_sdk::{
    keystore::Keystore,
    receive::{Receiver, Verifier},
    Account, FastData,
};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = env("FASTDATA_WS", fastdata_sdk::DEFAULT_URL);
    let buyer = FastData::connect(
        &url,
        Account::from_suri(&env("FASTDATA_SURI", "//Charlie"))?,
    )
    .await?;
    let mut keystore = Keystore::open(env("FASTDATA_KEYSTORE", "buyer-keystore.json"))?;
    let me = buyer.account().account_id();
    if buyer.did_document(&me).await?.is_none() {
        buyer.create_did(&mut keystore, Vec::new()).await?;
        println!("created {}", buyer.account().did());
    }

    // Browse: every offer with its seller's trust score.
    let offers = buyer.all_offers().await?;
    for o in &offers {
        println!(
            "offer {:>3}  trust {:.3}  {}  price {}",
            o.id,
            f64::from(o.seller_trust_score) / f64::from(fastdata_primitives::SCORE_ONE),
            String::from_utf8_lossy(&o.topic),
            o.price
        );
    }
    let chosen = match std::env::args().nth(1) {
        Some(id) => id.parse()?,
        None => offers
            .iter()
            .rev()
            .find(|o| o.stream.is_some() && o.retired_at.is_none() && o.seller != me)
            .map(|o| o.id)
            .ok_or_else(|| {
                anyhow::anyhow!("no open offer with a stream; run the seller example first")
            })?,
    };
    let offer = buyer
        .offer(chosen)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no offer {chosen}"))?;

    // Buy one period and wait for the seller's key-delivery service.
    let purchase = buyer.buy(chosen, 1, offer.price).await?;
    println!("purchase {purchase}; waiting for keys");
    let purchase = buyer
        .wait_for_keys(purchase, Duration::from_secs(120))
        .await?;
    let keys = buyer.purchase_keys(&keystore, &purchase).await?;
    println!(
        "keys of epochs {:?} opened and checked against the chain",
        keys.keys().collect::<Vec<_>>()
    );

    // Download everything stored so far from the stream's operators, verified and in order.
    let endpoints = buyer.stream_endpoints(&purchase.stream).await?;
    let expiry = buyer.finalized_number().await? + 600;
    let mut receiver = Receiver::new(
        buyer.account().clone(),
        buyer.genesis(),
        purchase.id,
        Verifier::new(purchase.stream, keys),
        endpoints,
        expiry,
        None,
    );
    let summary = receiver
        .download(None, |segment| {
            print!(
                "{:>6} {}",
                segment.header.sequence,
                String::from_utf8_lossy(&segment.payload)
            );
            Ok(())
        })
        .await?;
    println!(
        "{} verified segments, {} bytes",
        summary.segments, summary.bytes
    );
    Ok(())
}
