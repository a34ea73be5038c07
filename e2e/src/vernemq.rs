//! Runs a real VerneMQ broker (the 2.1.2 release `scripts/setup` builds into
//! `$FASTDATA_VERNEMQ`, see `../shared/VERNEMQ.md`) for the end-to-end tests: a copy of the
//! release per instance with its own MQTT, HTTP, clustering, distribution and epmd ports and
//! its own nodename, so several brokers run on one machine; every authorization is left to an
//! operator daemon's webhooks (`vmq_passwd` and `vmq_acl` off), and an API key lets the daemon
//! disconnect revoked clients through the HTTP API.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use fastdata_operator::mosquitto::free_port;

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
    epmd_port: u16,
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
        let epmd_port = free_port()?;
        let conf = dir.join("etc/vernemq.conf");
        let original = std::fs::read_to_string(&conf)
            .with_context(|| format!("cannot read {}", conf.display()))?;
        let mut text: String = original
            .lines()
            .filter(|line| {
                let key = line.split('=').next().unwrap_or_default().trim();
                !REPLACED.contains(&key)
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
            epmd_port,
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
        node.add_api_key(deadline + Duration::from_secs(30))?;
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

    /// Stops the node and the epmd it started.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let _ = self.run("bin/vernemq", &["stop"]);
        // The release's own ERTS (erts-<version>/bin/epmd), else the system's.
        let epmd = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin/epmd"))
            .find(|path| path.exists() && path.to_string_lossy().contains("/erts-"))
            .unwrap_or_else(|| PathBuf::from("epmd"));
        let _ = Command::new(epmd)
            .args(["-port", &self.epmd_port.to_string(), "-kill"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
