//! `fastdata publish`: seal a file, standard input or a simulated sensor into segments and
//! publish them to the stream's operators (seller).

use std::{io::Read, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Args;
use fastdata_primitives::StreamId;
use fastdata_sdk::{
    publish::{SimulatedSensor, StreamPublisher},
    Error,
};
use serde_json::json;

use crate::common::{parse_h256, print, progress, Ctx};

/// `fastdata publish`.
#[derive(Args)]
pub(crate) struct PublishArgs {
    /// Stream id (0x…).
    stream: String,
    /// Publish this file in segments of --chunk bytes.
    #[arg(long, group = "source")]
    file: Option<PathBuf>,
    /// Publish standard input in segments of --chunk bytes.
    #[arg(long, group = "source")]
    stdin: bool,
    /// Publish readings of a simulated sensor with this name.
    #[arg(long, group = "source")]
    sensor: Option<String>,
    /// Number of sensor readings.
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// Milliseconds between sensor readings.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Segment size for files and stdin.
    #[arg(long, default_value_t = 4096)]
    chunk: usize,
}

/// Runs `fastdata publish`: seals and publishes, then flushes and saves the next sequence.
pub(crate) async fn publish(ctx: &Ctx, args: PublishArgs) -> anyhow::Result<()> {
    let chain = ctx.chain().await?;
    let stream: StreamId = parse_h256(&args.stream)?;
    let mut keystore = ctx.keystore()?;
    let view = chain.stream(&stream).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "no stream {stream:?}; register one with `fastdata stream register`"
        ))
    })?;
    let keys = keystore.epoch_keys(&stream, view.epoch).ok_or_else(|| Error::Keystore {
        path: keystore.path().display().to_string(),
        detail: format!("no keys of epoch {} of stream {stream:?}; use the keystore that registered or rotated it", view.epoch),
    })?;
    if view.epoch_commitment != Some(keys.commitment()) {
        anyhow::bail!(Error::Keystore {
            path: keystore.path().display().to_string(),
            detail: format!(
                "the keys of epoch {} in the keystore do not match the stream's on-chain commitment; buyers could not decrypt. Rotate the epoch with `fastdata stream rotate` using this keystore",
                view.epoch
            ),
        });
    }
    let endpoints = chain.stream_endpoints(&stream).await?;
    let expiry = chain.finalized_number().await?.saturating_add(14_400);
    let next = keystore
        .stream(&stream)
        .map(|s| s.next_sequence)
        .unwrap_or(0);
    keystore.record_epoch_start(&stream, view.epoch, next);
    keystore.save()?;
    let mut publisher = StreamPublisher::connect(
        chain.account(),
        chain.genesis(),
        stream,
        view.epoch,
        keys,
        &endpoints,
        expiry,
        next,
    )
    .await?;
    let chunk = args
        .chunk
        .clamp(1, fastdata_primitives::envelope::MAX_PAYLOAD_LEN);
    let mut total = 0u64;
    let mut count = 0u64;
    if let Some(name) = &args.sensor {
        let bar = progress(ctx, None, "publishing");
        let mut sensor = SimulatedSensor::new(name);
        for i in 0..args.count {
            let reading = sensor.reading();
            publisher.publish(&reading).await?;
            total += reading.len() as u64;
            count += 1;
            bar.set_position(total);
            if i + 1 < args.count {
                tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
            }
        }
        bar.finish_and_clear();
    } else {
        let (mut reader, len): (Box<dyn Read>, Option<u64>) = match (&args.file, args.stdin) {
            (Some(path), _) => {
                let f = std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let len = f.metadata().ok().map(|m| m.len());
                (Box::new(f), len)
            }
            (None, true) => (Box::new(std::io::stdin()), None),
            (None, false) => anyhow::bail!("give one of --file PATH, --stdin or --sensor NAME"),
        };
        let bar = progress(ctx, len, "publishing");
        let mut buf = vec![0u8; chunk];
        loop {
            let mut filled = 0;
            while filled < chunk {
                let n = reader.read(&mut buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            publisher.publish(&buf[..filled]).await?;
            total += filled as u64;
            count += 1;
            bar.set_position(total);
            if filled < chunk {
                break;
            }
        }
        bar.finish_and_clear();
    }
    let flushed = publisher.flush(Duration::from_secs(60)).await;
    let status = publisher.status();
    keystore.stream_mut(&stream).next_sequence = match publisher.acked_up_to() {
        Some(up_to) if flushed.is_err() => up_to + 1,
        _ => publisher.next_sequence(),
    };
    keystore.save()?;
    flushed?;
    let first = next;
    let last = publisher.next_sequence().saturating_sub(1);
    print(
        ctx,
        &json!({"stream": format!("{stream:?}"), "epoch": view.epoch, "segments": count, "bytes": total, "first_sequence": first, "last_sequence": last, "operators": status.iter().map(|s| json!({"operator": s.operator, "acked": s.acked})).collect::<Vec<_>>()}),
        || {
            format!("published {count} segments ({total} bytes), sequences {first}..={last}, acknowledged by {} operator(s)", status.len())
        },
    );
    Ok(())
}
