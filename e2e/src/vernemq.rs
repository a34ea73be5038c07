//! Runs a real VerneMQ broker (the 2.1.2 release `scripts/setup` builds into
//! `$FASTDATA_VERNEMQ`, see `../shared/VERNEMQ.md`) for the end-to-end tests: a copy of the
//! release per instance with its own MQTT, HTTP, clustering, distribution and epmd ports and
//! its own nodename, so several brokers run on one machine; every authorization is left to an
//! operator daemon's webhooks (`vmq_passwd` and `vmq_acl` off), and an API key lets the daemon
//! disconnect revoked clients through the HTTP API.
//!
//! [`VernemqCluster`] joins several such nodes into one VerneMQ cluster: they share an epmd
//! port (an Erlang node finds another's distribution port through the epmd on the port it
//! uses itself) and a cookie.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use fastdata_test_support::mosquitto::free_port;

/// The hooks the daemon answers (`storage-operator/src/gate/vernemq.rs`).
const HOOKS: &[&str] = &[
    "auth_on_register",
    "auth_on_register_m5",
    "auth_on_subscribe",
    "auth_on_subscribe_m5",
    "auth_on_publish",
    "auth_on_publish_m5",
    "on_client_offline",
    "on_client_gone",
];

/// Settings of the release's `etc/vernemq.conf` replaced per instance.
const REPLACED: &[&str] = &[
    "nodename",
    "listener.tcp.default",
    "listener.http.default",
    "listener.vmq.clustering",
    "plugins.vmq_passwd",
    "plugins.vmq_acl",
    "plugins.vmq_webhooks",
    "max_online_messages",
    "max_offline_messages",
    "allow_anonymous",
    "log.console",
];

/// A VerneMQ node, stopped (with its epmd) on drop.
pub struct Vernemq {
    /// MQTT listener port on 127.0.0.1.
    pub port: u16,
    /// HTTP listener (health, metrics, management API) port on 127.0.0.1.
    pub http_port: u16,
    /// A management API key (scope `mgmt`).
    pub api_key: String,
    /// The instance's copy of the release (its `etc/`, `data/` and `log/`).
    pub dir: PathBuf,
    /// The Erlang node name (`fd<port>@127.0.0.1`).
    pub nodename: String,
    epmd_port: u16,
    /// Whether [`Self::stop`] stops the epmd too (not a cluster's shared one).
    owns_epmd: bool,
    running: bool,
}

impl Drop for Vernemq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The release `scripts/setup` builds: `$FASTDATA_VERNEMQ`, else under `$FASTDATA_HOME`
/// (default `/var/tmp/fastdata`).
pub fn release() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("FASTDATA_VERNEMQ") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("FASTDATA_HOME").unwrap_or_else(|| "/var/tmp/fastdata".into()),
        )
        .join("vernemq/2.1.2"),
    };
    if !dir.join("bin/vernemq").exists() {
        bail!(
            "no VerneMQ release at {} (scripts/setup builds it)",
            dir.display()
        );
    }
    Ok(dir)
}

impl Vernemq {
    /// Copies the release into `dir` and starts a node whose hooks call the daemon's webhook
    /// listener at `webhooks`; waits until `/health` answers and an API key is added.
    pub fn start(dir: &Path, webhooks: SocketAddr) -> anyhow::Result<Self> {
        Self::start_with(dir, webhooks, &[])
    }

    /// [`Self::start`] with extra `vernemq.conf` settings (`key`, `value`), which replace the
    /// release's (e.g. `max_inflight_messages`).
    pub fn start_with(
        dir: &Path,
        webhooks: SocketAddr,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::start_node(dir, webhooks, settings, None)
    }

    /// [`Self::start_with`], with the epmd of a cluster on `shared_epmd` if given (left
    /// running when the node stops), else its own.
    fn start_node(
        dir: &Path,
        webhooks: SocketAddr,
        settings: &[(&str, &str)],
        shared_epmd: Option<u16>,
    ) -> anyhow::Result<Self> {
        let release = release()?;
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir.parent().unwrap_or(Path::new("/")))?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(&release)
            .arg(dir)
            .status()
            .context("cp")?;
        if !status.success() {
            bail!("cannot copy {} to {}", release.display(), dir.display());
        }
        let port = free_port()?;
        let http_port = free_port()?;
        let cluster_port = free_port()?;
        let dist_port = free_port()?;
        let epmd_port = match shared_epmd {
            Some(port) => port,
            None => free_port()?,
        };
        let conf = dir.join("etc/vernemq.conf");
        let original = std::fs::read_to_string(&conf)
            .with_context(|| format!("cannot read {}", conf.display()))?;
        let mut text: String = original
            .lines()
            .filter(|line| {
                let key = line.split('=').next().unwrap_or_default().trim();
                !REPLACED.contains(&key) && !settings.iter().any(|(k, _)| *k == key)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        text.push_str(&format!(
            "\n## fastdata e2e instance\n\
             nodename = fd{port}@127.0.0.1\n\
             listener.tcp.default = 127.0.0.1:{port}\n\
             listener.http.default = 127.0.0.1:{http_port}\n\
             listener.vmq.clustering = 127.0.0.1:{cluster_port}\n\
             erlang.distribution.port_range.minimum = {dist_port}\n\
             erlang.distribution.port_range.maximum = {dist_port}\n\
             allow_anonymous = off\n\
             log.console = file\n\
             plugins.vmq_passwd = off\n\
             plugins.vmq_acl = off\n\
             plugins.vmq_webhooks = on\n\
             max_online_messages = -1\n\
             max_offline_messages = -1\n"
        ));
        for (key, value) in settings {
            text.push_str(&format!("{key} = {value}\n"));
        }
        for (i, hook) in HOOKS.iter().enumerate() {
            text.push_str(&format!(
                "vmq_webhooks.fd{i}.hook = {hook}\nvmq_webhooks.fd{i}.endpoint = http://{webhooks}/vernemq/{hook}\n"
            ));
        }
        std::fs::write(&conf, text)?;
        let node = Self {
            port,
            http_port,
            api_key: format!("fastdata{}", fastdata_sdk::fresh_nonce()),
            dir: dir.to_path_buf(),
            nodename: format!("fd{port}@127.0.0.1"),
            epmd_port,
            owns_epmd: shared_epmd.is_none(),
            running: true,
        };
        node.run("bin/vernemq", &["start"])?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !node.healthy() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("log/console.log")).unwrap_or_default();
                bail!(
                    "VerneMQ on port {port} not healthy within 60 s; console.log ends:\n{}",
                    tail(&log, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        // A cluster adds the keys once its nodes joined: VerneMQ refuses to join a node that
        // holds settings (`non_empty_node`), and an API key is one.
        if shared_epmd.is_none() {
            node.add_api_key(deadline + Duration::from_secs(30))?;
        }
        Ok(node)
    }

    /// Adds the node's API key. `/health` answers before the management interface's
    /// metadata is ready, and then `vmq-admin api-key add` fails (it prints its usage), so
    /// this retries until the key is listed or `deadline` passes.
    fn add_api_key(&self, deadline: Instant) -> anyhow::Result<()> {
        let key = format!("key={}", self.api_key);
        loop {
            let added = self.run("bin/vmq-admin", &["api-key", "add", &key, "scope=mgmt"]);
            let listed = self
                .run("bin/vmq-admin", &["api-key", "show"])
                .is_ok_and(|keys| keys.contains(&self.api_key));
            if listed {
                return Ok(());
            }
            if Instant::now() > deadline {
                added?;
                bail!("VerneMQ on port {} does not list the API key", self.port);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `http://127.0.0.1:<http_port>`, the daemon's `vernemq.api_url`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn healthy(&self) -> bool {
        Command::new("curl")
            .args(["-sf", "--max-time", "2"])
            .arg(format!("{}/health", self.api_url()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .map(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"))
            .unwrap_or(false)
    }

    /// Runs one of the release's scripts with this instance's epmd port.
    fn run(&self, script: &str, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(self.dir.join(script))
            .args(args)
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {script}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("{script} {args:?} failed ({}): {text}", out.status);
        }
        Ok(text)
    }

    /// `vmq-admin <args>` against this node (e.g. `session show`).
    pub fn admin(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run("bin/vmq-admin", args)
    }

    /// The cluster members this node sees running (`vmq-admin cluster show`).
    pub fn running_members(&self) -> anyhow::Result<Vec<String>> {
        let table = self.admin(&["cluster", "show"])?;
        Ok(table
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                match cells[..] {
                    ["", name, "true", ""] => Some(name.to_owned()),
                    _ => None,
                }
            })
            .collect())
    }

    /// The value of the gauge or counter `name` (e.g. `vernemq_router_subscriptions`) on this
    /// node's `/metrics`.
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5"])
            .arg(format!("{}/metrics", self.api_url()))
            .stderr(Stdio::null())
            .output()
            .context("curl")?;
        if !out.status.success() {
            bail!("no metrics from VerneMQ on port {}", self.port);
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
            .find_map(|line| line.rsplit(' ').next()?.parse().ok())
            .with_context(|| format!("VerneMQ on port {} reports no {name}", self.port))
    }

    /// Kills the node with SIGKILL (no shutdown, no leaving its cluster).
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        let out = self.run("bin/vernemq", &["getpid"])?;
        let pid = out
            .lines()
            .rev()
            .find_map(|line| line.trim().parse::<u32>().ok())
            .with_context(|| format!("no pid from `vernemq getpid`: {out}"))?;
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .context("kill")?;
        if !status.success() {
            bail!("kill -9 {pid} failed");
        }
        self.running = false;
        Ok(())
    }

    /// Stops the node, and the epmd it started (not a cluster's).
    pub fn stop(&mut self) {
        if self.running {
            self.running = false;
            let _ = self.run("bin/vernemq", &["stop"]);
        }
        if self.owns_epmd {
            self.owns_epmd = false;
            kill_epmd(&self.dir, self.epmd_port);
        }
    }
}

/// Stops the epmd on `epmd_port` with the release copy's own ERTS
/// (`<dir>/erts-<version>/bin/epmd`), else the system's.
fn kill_epmd(dir: &Path, epmd_port: u16) {
    let epmd = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin/epmd"))
        .find(|path| path.exists() && path.to_string_lossy().contains("/erts-"))
        .unwrap_or_else(|| PathBuf::from("epmd"));
    let _ = Command::new(epmd)
        .args(["-port", &epmd_port.to_string(), "-kill"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// VerneMQ nodes joined into one cluster (`vmq-admin cluster join`), each with its own MQTT
/// and HTTP listeners and hooks calling the same daemon; stopped (with their epmd) on drop.
pub struct VernemqCluster {
    /// The nodes; the first is the one the others joined.
    pub nodes: Vec<Vernemq>,
    epmd_port: u16,
}

impl Drop for VernemqCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        if let Some(node) = self.nodes.first() {
            kill_epmd(&node.dir, self.epmd_port);
        }
    }
}

impl VernemqCluster {
    /// Starts `count` nodes under `dir` (`node-<i>`), their hooks calling `webhooks`, joins
    /// them and waits until every node lists all as running (`vmq-admin cluster show`).
    pub fn start(dir: &Path, webhooks: SocketAddr, count: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(count >= 1, "a cluster has at least one node");
        let epmd_port = free_port()?;
        let cookie = format!("fastdata{}", fastdata_sdk::fresh_nonce());
        let mut cluster = Self {
            nodes: Vec::new(),
            epmd_port,
        };
        for i in 0..count {
            cluster.nodes.push(Vernemq::start_node(
                &dir.join(format!("node-{i}")),
                webhooks,
                &[("distributed_cookie", &cookie)],
                Some(epmd_port),
            )?);
        }
        let first = cluster.nodes[0].nodename.clone();
        // A node answers /health before `vmq-admin` knows its commands ("Usage information
        // not found"): the join is retried for a while.
        let join = format!("discovery-node={first}");
        for node in &cluster.nodes[1..] {
            let deadline = Instant::now() + Duration::from_secs(30);
            while let Err(e) = node.admin(&["cluster", "join", &join]) {
                if Instant::now() > deadline {
                    return Err(e.context(format!("{} cannot join {first}", node.nodename)));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        let names: Vec<&str> = cluster.nodes.iter().map(|n| n.nodename.as_str()).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        for node in &cluster.nodes {
            loop {
                let running = node.running_members().unwrap_or_default();
                if names.iter().all(|name| running.iter().any(|r| r == name)) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "VerneMQ node {} sees {running:?} running, not all of {names:?}",
                        node.nodename
                    );
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        // API keys are cluster-wide settings, added once joined.
        for node in &cluster.nodes {
            node.add_api_key(Instant::now() + Duration::from_secs(30))?;
        }
        Ok(cluster)
    }

    /// Removes the dead node `gone` from the cluster, from node `by` (`vmq-admin cluster
    /// leave`): the queues of its persistent sessions are recreated on the other nodes, which
    /// take logins and publishes again (they refuse them while a member is unreachable).
    pub fn remove_dead(&self, by: usize, gone: usize) -> anyhow::Result<()> {
        let (by, gone) = (&self.nodes[by], &self.nodes[gone]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = by.admin(&["cluster", "leave", &format!("node={}", gone.nodename)])?;
            let member = by
                .admin(&["cluster", "show"])
                .map_or(true, |table| table.contains(&gone.nodename));
            if out.contains("Done") && !member {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} cannot remove {}: {out}", by.nodename, gone.nodename);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
