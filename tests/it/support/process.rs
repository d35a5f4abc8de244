//! `phone-agent` as a process of its own, for what only a real process shows: a SIGKILL and the
//! restart after it.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{within, PUBLIC_HOST, TWILIO_AUTH_TOKEN};

/// A `phone-agent` process on its own data directory, killed (SIGKILL) when dropped.
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Process {
    /// Sends SIGTERM: the graceful shutdown.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
    }

    /// Resolves once `/ready` answers `status`.
    pub async fn ready_becomes(&self, status: u16) {
        let client = awc::Client::new();
        within(async {
            while client
                .get(format!("{}/ready", self.base))
                .send()
                .await
                .map_or(true, |r| r.status() != status)
            {
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Resolves with the process's exit status once it has exited.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().expect("the process's status") {
                return status;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment of a test server in `data` on a free port: loopback engines, the test
/// Twilio auth token and public host, no refusals for a loaded test machine's late loops.
pub fn server_env(data: &tempfile::TempDir) -> BTreeMap<&'static str, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    [
        ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
        ("DATA_DIR", data.path().display().to_string()),
        ("ENGINES", "loopback".into()),
        ("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN.into()),
        ("PUBLIC_HOST", PUBLIC_HOST.into()),
        ("ADMISSION_LAG_MS", "0".into()),
    ]
    .into_iter()
    .collect()
}

/// The `phone-agent` binary with exactly `env`.
pub fn binary(env: &BTreeMap<&str, String>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_phone-agent"));
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// A token with `scopes` (comma-separated), created by `phone-agent token create`.
pub fn create_token(env: &BTreeMap<&str, String>, scopes: &str) -> String {
    let created = binary(env)
        .args(["token", "create", "--name", "test", "--scopes", scopes])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    String::from_utf8(created.stdout).unwrap().trim().to_owned()
}

/// Starts the server with `env`, once `/ready` answers 200.
pub async fn serve(env: &BTreeMap<&str, String>) -> Process {
    let child = binary(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    let process = Process {
        child,
        base: format!("http://{}", env["LISTEN_ADDR"]),
    };
    process.ready_becomes(200).await;
    process
}
