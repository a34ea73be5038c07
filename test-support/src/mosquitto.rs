//! Runs a Mosquitto broker with the dynamic-security plugin (and optionally a TLS listener) as
//! a child process: what the integration tests, the end-to-end tests and the demo put next to
//! each daemon.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

/// Where Debian's `mosquitto` package puts the dynamic-security plugin.
pub const DYNSEC_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
/// The broker binary.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// The dynsec admin created by [`Mosquitto::start`] (the daemon's `broker.username`).
pub const ADMIN_USER: &str = "admin";

/// A TLS listener (`mqtts://`) next to the plain one: PEM files the broker reads.
#[derive(Clone, Debug)]
pub struct BrokerTls {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Server certificate chain (`certfile`); it must name 127.0.0.1 for clients to accept it.
    pub cert: PathBuf,
    /// Its private key (`keyfile`).
    pub key: PathBuf,
    /// CA certificates (`cafile`), if any.
    pub ca: Option<PathBuf>,
}

/// A Mosquitto process, killed on drop.
pub struct Mosquitto {
    /// Listening port on 127.0.0.1.
    pub port: u16,
    /// The TLS listener's port, if started with one.
    pub tls_port: Option<u16>,
    /// Directory of its configuration, dynsec state and log.
    pub dir: PathBuf,
    /// The dynsec admin password.
    pub admin_password: String,
    child: Child,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Mosquitto {
    /// Starts a broker on `127.0.0.1:port` keeping its files in `dir`: anonymous access off,
    /// the dynsec plugin with admin [`ADMIN_USER`] / `admin_password` (kept across restarts
    /// in `dir/dynsec.json`), no queue limits (nothing is dropped for a slow subscriber).
    pub fn start(dir: &Path, port: u16, admin_password: &str) -> anyhow::Result<Self> {
        Self::start_with_tls(dir, port, admin_password, None)
    }

    /// [`start`](Self::start), plus a TLS listener if `tls` is given.
    pub fn start_with_tls(
        dir: &Path,
        port: u16,
        admin_password: &str,
        tls: Option<&BrokerTls>,
    ) -> anyhow::Result<Self> {
        if !Path::new(MOSQUITTO).exists() || !Path::new(DYNSEC_PLUGIN).exists() {
            bail!("mosquitto with its dynamic-security plugin is not installed; run scripts/setup");
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dynsec = dir.join("dynsec.json");
        if !dynsec.exists() {
            let status = Command::new("mosquitto_ctrl")
                .args(["dynsec", "init"])
                .arg(&dynsec)
                .args([ADMIN_USER, admin_password])
                .stdout(Stdio::null())
                .status()
                .context("cannot run mosquitto_ctrl")?;
            if !status.success() {
                bail!("mosquitto_ctrl dynsec init failed ({status})");
            }
        }
        let conf = dir.join("mosquitto.conf");
        let mut text = format!(
            "per_listener_settings false\nlistener {port} 127.0.0.1\nallow_anonymous false\n\
             plugin {DYNSEC_PLUGIN}\nplugin_opt_config_file {}\npersistence false\n\
             max_queued_messages 0\nmax_inflight_messages {inflight}\nlog_type error\n\
             log_type warning\nlog_type notice\nlog_type information\n",
            dynsec.display(),
            inflight = fastdata_operator::ingest::BROKER_MAX_INFLIGHT,
        );
        if let Some(tls) = tls {
            for (what, path) in [("certificate", &tls.cert), ("key", &tls.key)] {
                if !path.is_file() {
                    bail!("broker TLS {what} {} is not a file", path.display());
                }
            }
            text.push_str(&format!(
                "listener {} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
                tls.port,
                tls.cert.display(),
                tls.key.display()
            ));
            if let Some(ca) = &tls.ca {
                text.push_str(&format!("cafile {}\n", ca.display()));
            }
        }
        std::fs::write(&conf, text).with_context(|| format!("cannot write {}", conf.display()))?;
        let log = std::fs::File::create(dir.join("mosquitto.log"))?;
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start mosquitto")?;
        let mut broker = Self {
            port,
            tls_port: tls.map(|tls| tls.port),
            dir: dir.to_path_buf(),
            admin_password: admin_password.to_string(),
            child,
        };
        let start = Instant::now();
        let listening = |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        while !(listening(port) && broker.tls_port.is_none_or(listening)) {
            if let Ok(Some(status)) = broker.child.try_wait() {
                bail!(
                    "mosquitto exited ({status}); see {}",
                    dir.join("mosquitto.log").display()
                );
            }
            if start.elapsed() > Duration::from_secs(10) {
                broker.kill();
                bail!("mosquitto does not listen on port {port} (or its TLS port) after 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }

    /// Kills the broker (idempotent).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; bind soon).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
