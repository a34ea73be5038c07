//! `fastdata-operator`: the storage operator daemon (see the library docs).

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::Parser;
use fastdata_operator::{
    attestation::{start_attestation, ATTEST_EVERY_BLOCKS},
    chain::{ChainView, Fixture, InMemoryChainView},
    claims::ChainClaimSubmitter,
    config::{BrokerKind, Config},
    daemon::Daemon,
    follower::{self, Follower},
    receipts::{ClaimSubmitter, NoChainSubmitter},
    registration::Registration,
    supervisor::{Policy, Restart},
};

/// FAST DATA storage operator daemon.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(short, long, env = "FASTDATA_OPERATOR_CONFIG")]
    config: PathBuf,
    /// Overrides `operator.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `http.listen`.
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Overrides `broker.kind`.
    #[arg(long, value_enum)]
    broker: Option<BrokerKind>,
    /// Overrides `broker.port`.
    #[arg(long)]
    broker_port: Option<u16>,
    /// Overrides `chain.fixture` (and clears `chain.url`).
    #[arg(long)]
    chain_fixture: Option<PathBuf>,
    /// Overrides `chain.url` (and clears `chain.fixture`).
    #[arg(long)]
    chain_url: Option<String>,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fastdata-operator: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("fastdata-operator: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(&cli.config)?;
    if let Some(dir) = cli.data_dir {
        config.operator.data_dir = dir;
    }
    if let Some(listen) = cli.http_listen {
        config.http.listen = listen;
    }
    if let Some(kind) = cli.broker {
        config.broker.kind = kind;
    }
    if let Some(port) = cli.broker_port {
        config.broker.port = port;
    }
    if let Some(fixture) = cli.chain_fixture {
        config.chain.fixture = Some(fixture);
        config.chain.url = None;
    }
    if let Some(url) = cli.chain_url {
        config.chain.url = Some(url);
        config.chain.fixture = None;
    }
    config.validate()?;

    let view = InMemoryChainView::shared();
    let mut follower = None;
    let submitter: Arc<dyn ClaimSubmitter> = match (&config.chain.url, &config.chain.fixture) {
        (Some(url), _) => {
            let account = fastdata_sdk::Account::from_suri(&config.operator.suri)
                .map_err(|e| anyhow::anyhow!("operator.suri: {e}"))?;
            let registration = config.chain.register.as_ref().map(|r| Registration {
                stake: r.stake.0,
                broker_url: r.broker_url.clone(),
                http_url: r.http_url.clone(),
                price_per_mb: r.price_per_mb.0,
            });
            let f = Follower::new(url.clone(), account.clone(), view.clone())
                .with_registration(registration)
                .with_heartbeats(config.chain.heartbeat);
            let chain = connect_with_retry(&f, url, config.supervision.policy()).await?;
            // Every signature is bound to the genesis hash of the chain followed.
            let genesis = chain.genesis();
            if let Some(configured) = config.chain.genesis.filter(|g| *g != genesis) {
                anyhow::bail!(
                    "chain.genesis is 0x{} but the node at {url} serves the chain 0x{}; fix or remove chain.genesis",
                    hex::encode(configured.as_bytes()),
                    hex::encode(genesis.as_bytes())
                );
            }
            config.chain.genesis = Some(genesis);
            tracing::info!(
                streams = view.streams().len(),
                block = view.finalized_block(),
                "chain view synchronised from {url}"
            );
            let claims = Arc::new(ChainClaimSubmitter::new(url.clone(), account));
            follower = Some((f, chain, claims.clone()));
            claims
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read chain fixture {}", path.display()))?;
            let fixture = Fixture::from_toml(&text)
                .with_context(|| format!("bad chain fixture {}", path.display()))?;
            view.apply_all(fixture.events()?);
            tracing::info!(
                streams = view.streams().len(),
                "chain state loaded from fixture {}",
                path.display()
            );
            Arc::new(NoChainSubmitter)
        }
        (None, None) => {
            tracing::warn!(
                "no chain source configured ([chain] url or fixture): no stream is assigned, every request will be refused"
            );
            Arc::new(NoChainSubmitter)
        }
    };

    let daemon = Daemon::start(config, view, submitter).await?;
    if let Some((f, chain, claims)) = follower {
        let f = Arc::new(f.with_metrics(daemon.node.metrics.clone()));
        daemon.supervise(follower::TASK, Restart::OnError, f.task(Some(chain)));
        // Heads attested every few blocks and before each claim round, so claims stay
        // within the chain's attested head.
        start_attestation(&daemon, &claims, ATTEST_EVERY_BLOCKS);
    }
    println!("listening on {}", daemon.http_addr);
    // A clean stop (SIGTERM, Ctrl-C) returns Ok; a task that fails for good returns its error.
    daemon
        .run_until(fastdata_operator::termination_signal())
        .await
}

/// Connects the follower at start-up, retrying with the supervision policy's back-off while
/// the node is unreachable; a refused registration fails at once.
async fn connect_with_retry(
    follower: &Follower,
    url: &str,
    policy: Policy,
) -> anyhow::Result<fastdata_sdk::FastData> {
    let mut failures = 0;
    loop {
        match follower.connect().await {
            Ok(chain) => return Ok(chain),
            Err(e @ fastdata_sdk::Error::Dispatch { .. }) => anyhow::bail!(
                "task {}: the chain refused the operator registration: {e}",
                follower::TASK
            ),
            Err(e) if failures >= policy.max_restarts => anyhow::bail!(
                "task {}: cannot use the node at {url} after {} attempts ([supervision] max_restarts = {}): {e}; is it running?",
                follower::TASK,
                failures + 1,
                policy.max_restarts
            ),
            Err(e) => {
                failures += 1;
                let backoff = policy.backoff(failures);
                tracing::info!("waiting for the node at {url}: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}
