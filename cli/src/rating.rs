//! `fastdata rate`, `fastdata dispute` and `fastdata answer-dispute`: what either side of a
//! purchase says about it afterwards.

use clap::ValueEnum;
use fastdata_primitives::escrow::DisputeReason;
use serde_json::json;

use crate::common::{hash_text, print, Ctx};

/// Why a purchase is disputed.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Reason {
    KeysMismatch,
    KeysMissing,
    DataNotDelivered,
    Other,
}

/// Runs `fastdata rate`: rates the other side of a settled purchase (`comment` goes on
/// chain as its hash).
pub(crate) async fn rate(
    ctx: &Ctx,
    purchase: u64,
    score: u8,
    comment: Option<&str>,
) -> anyhow::Result<()> {
    let chain = ctx.chain().await?;
    chain.rate(purchase, score, comment.map(hash_text)).await?;
    print(ctx, &json!({"purchase": purchase, "rated": score}), || {
        format!("rated purchase {purchase}: {score}/100")
    });
    Ok(())
}

/// Runs `fastdata dispute`: disputes a purchase (`evidence` goes on chain as its hash).
pub(crate) async fn dispute(
    ctx: &Ctx,
    purchase: u64,
    reason: Reason,
    evidence: Option<&str>,
) -> anyhow::Result<()> {
    let chain = ctx.chain().await?;
    let reason = match reason {
        Reason::KeysMismatch => DisputeReason::KeysMismatch,
        Reason::KeysMissing => DisputeReason::KeysMissing,
        Reason::DataNotDelivered => DisputeReason::DataNotDelivered,
        Reason::Other => DisputeReason::Other,
    };
    chain
        .dispute(purchase, reason, evidence.map(hash_text))
        .await?;
    print(
        ctx,
        &json!({"purchase": purchase, "disputed": format!("{reason:?}")}),
        || {
            format!("purchase {purchase} disputed ({reason:?}); its remainder is frozen until the dispute is resolved or its deadline")
        },
    );
    Ok(())
}

/// Runs `fastdata answer-dispute`: the seller answers a dispute of one of its sales with
/// evidence (on chain as its hash).
pub(crate) async fn answer_dispute(ctx: &Ctx, purchase: u64, evidence: &str) -> anyhow::Result<()> {
    let chain = ctx.chain().await?;
    let hash = hash_text(evidence);
    chain.answer_dispute(purchase, hash).await?;
    print(
        ctx,
        &json!({"purchase": purchase, "answered": format!("{hash:?}")}),
        || format!("dispute of purchase {purchase} answered with evidence {hash:?}"),
    );
    Ok(())
}
