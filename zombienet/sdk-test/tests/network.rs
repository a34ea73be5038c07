//! FAST DATA on a zombienet network (`zombienet/network.toml`, native provider): both
//! collators produce and finalize parachain blocks, and a whole trade goes through on the
//! parachain (`fastdata-demo --no-settle`: operators register, a verified seller lists and
//! streams, a buyer purchases, receives and verifies every segment).
//!
//! Run by `scripts/zombienet`, which puts `polkadot` and `fastdata-collator` on PATH and sets
//! `FASTDATA_BIN` to the directory of `fastdata-demo`.

use std::{path::PathBuf, time::Instant};

use anyhow::{ensure, Context};
use zombienet_sdk::{subxt, NetworkConfig, NetworkConfigExt};

const BEST: &str = "block_height{status=\"best\"}";
const FINALIZED: &str = "block_height{status=\"finalized\"}";
const COLLATORS: [&str; 2] = ["collator-1", "collator-2"];

fn network_toml() -> String {
    format!("{}/../network.toml", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread")]
async fn parachain_produces_finalizes_and_trades() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let network = NetworkConfig::load_from_toml(&network_toml())?
        .spawn_native()
        .await
        .context("spawning the network (are polkadot and fastdata-collator on PATH?)")?;
    println!("network spawned in {:.0?}", t0.elapsed());
    network.wait_until_is_up(600).await?;

    for name in COLLATORS {
        let node = network.get_node(name)?;
        node.wait_metric_with_timeout(BEST, |b| b >= 3.0, 900u64)
            .await
            .with_context(|| format!("{name} produced no parachain blocks"))?;
        node.wait_metric_with_timeout(FINALIZED, |b| b >= 2.0, 900u64)
            .await
            .with_context(|| format!("{name} finalized no parachain blocks"))?;
        println!("{name}: blocks produced and finalized after {:.0?}", t0.elapsed());
    }
    let collator = network.get_node(COLLATORS[0])?;
    let client = collator.wait_client::<subxt::PolkadotConfig>().await?;
    let finalized = client.blocks().at_latest().await?.number();
    ensure!(finalized >= 2, "finalized parachain head is #{finalized}");
    let version = client.runtime_version();
    println!("parachain runtime spec version {}", version.spec_version);

    let bin = PathBuf::from(std::env::var("FASTDATA_BIN").context("set FASTDATA_BIN")?);
    let dir = std::env::temp_dir().join(format!("fastdata-zombienet-{}", std::process::id()));
    let out = tokio::process::Command::new(bin.join("fastdata-demo"))
        .args(["--url", collator.ws_uri(), "--segments", "10", "--no-settle"])
        .arg("--dir")
        .arg(&dir)
        .output()
        .await
        .context("running fastdata-demo")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    ensure!(
        out.status.success(),
        "the trade failed on the parachain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        stdout.matches("byte-for-byte equal").count() == 2,
        "the buyer did not verify both purchases"
    );
    println!("trade done after {:.0?}", t0.elapsed());
    network.destroy().await?;
    Ok(())
}
