//! `fastdata-operator`: the storage operator daemon (see the library docs).

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::Parser;
use fastdata_operator::{
    chain::{ChainView, Fixture, InMemoryChainView},
    config::{BrokerKind, Config},
    daemon::Daemon,
    receipts::NoChainSubmitter,
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
    /// Overrides `chain.fixture`.
    #[arg(long)]
    chain_fixture: Option<PathBuf>,
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
    }

    let view = InMemoryChainView::shared();
    match &config.chain.fixture {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read chain fixture {}", path.display()))?;
            let fixture = Fixture::from_toml(&text).with_context(|| format!("bad chain fixture {}", path.display()))?;
            view.apply_all(fixture.events()?);
            tracing::info!(streams = view.streams().len(), "chain state loaded from fixture {}", path.display());
        }
        None => tracing::warn!(
            "no chain source configured ([chain] fixture): no stream is assigned, every request will be refused"
        ),
    }

    let daemon = Daemon::start(config, view, Arc::new(NoChainSubmitter)).await?;
    println!("listening on {}", daemon.http_addr);
    wait_for_signal().await;
    tracing::info!("shutting down");
    daemon.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
