//! Command line of `fastdata-node`: `sc-cli`'s node options plus `--dev-block-time`, and the
//! chain-spec subcommands.

use std::time::Duration;

use sc_cli::SubstrateCli;

/// `fastdata-node`: the FAST DATA dev node.
#[derive(Debug, clap::Parser)]
#[command(propagate_version = true, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A chain-spec subcommand instead of running the node.
    #[command(subcommand)]
    pub subcommand: Option<Subcommand>,

    /// Node options (`--dev`, `--base-path`, `--rpc-port`, …).
    #[command(flatten)]
    pub run: sc_cli::RunCmd,

    /// Milliseconds between sealed blocks.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub dev_block_time: u64,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// Writes the chain spec (`--chain dev|local|<file>`) as JSON; `--raw` for genesis storage.
    BuildSpec(sc_cli::BuildSpecCmd),
    /// Deletes the chain's database.
    PurgeChain(sc_cli::PurgeChainCmd),
}

impl SubstrateCli for Cli {
    fn impl_name() -> String {
        "FAST DATA dev node".into()
    }

    fn impl_version() -> String {
        env!("CARGO_PKG_VERSION").into()
    }

    fn description() -> String {
        env!("CARGO_PKG_DESCRIPTION").into()
    }

    fn author() -> String {
        env!("CARGO_PKG_AUTHORS").into()
    }

    fn support_url() -> String {
        "https://github.com/fastdata/fastdata/issues".into()
    }

    fn copyright_start_year() -> i32 {
        2026
    }

    fn load_spec(&self, id: &str) -> Result<Box<dyn sc_service::ChainSpec>, String> {
        crate::chain_spec::load(id, |relay_chain, para_id| crate::chain_spec::Extensions {
            relay_chain: relay_chain.into(),
            para_id,
        })
    }
}

/// Runs the command line.
pub fn run() -> sc_cli::Result<()> {
    let cli = <Cli as SubstrateCli>::from_args();
    match &cli.subcommand {
        Some(Subcommand::BuildSpec(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.sync_run(|config| cmd.run(config.chain_spec, config.network))
        }
        Some(Subcommand::PurgeChain(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.sync_run(|config| cmd.run(config.database))
        }
        None => {
            let runner = cli.create_runner(&cli.run)?;
            let block_time = Duration::from_millis(cli.dev_block_time);
            runner.run_node_until_exit(|config| async move {
                if config.chain_spec.chain_type() != sc_service::ChainType::Development {
                    return Err(sc_cli::Error::Input(format!(
                        "fastdata-node seals its own blocks and runs development chains only \
                         (--dev or a spec with chainType Development); `{}` is {:?}: run it \
                         with fastdata-collator under a relay chain",
                        config.chain_spec.id(),
                        config.chain_spec.chain_type()
                    )));
                }
                crate::service::new_dev(config, block_time).map_err(sc_cli::Error::Service)
            })
        }
    }
}
