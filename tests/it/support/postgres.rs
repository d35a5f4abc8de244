//! A throwaway PostgreSQL server on 127.0.0.1 for one test: `initdb` into a temporary directory,
//! `pg_ctl start` on a free port, `pg_ctl stop` on drop. As root it runs as the `postgres` user
//! (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A throwaway server, or `None` after saying why the test is skipped.
pub fn available() -> Option<Postgres> {
    skipped_unless(Postgres::start(None))
}

/// A throwaway server that takes TLS connections only (`hostssl`; cleartext is rejected), with
/// `cert` and `key` (PEM), or `None` after saying why the test is skipped.
pub fn available_with_tls(cert: &str, key: &str) -> Option<Postgres> {
    skipped_unless(Postgres::start(Some((cert, key))))
}

fn skipped_unless(started: Result<Postgres, String>) -> Option<Postgres> {
    started
        .inspect_err(|why| eprintln!("SKIPPED: PostgreSQL unavailable: {why}"))
        .ok()
}

/// A running throwaway server.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    /// Starts one, with TLS only when given a certificate and key; the error says why it cannot
    /// (binaries missing, start failed).
    pub fn start(tls: Option<(&str, &str)>) -> Result<Self, String> {
        let bin = binaries()
            .ok_or("no PostgreSQL binaries (initdb) on PATH or under /usr/lib/postgresql")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        if is_root() {
            run(Command::new("chown").arg("postgres").arg(dir.path()))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let data = dir.path().join("data");
        let postgres = Self { dir, bin, port };
        postgres.pg(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            postgres.dir.path().display()
        );
        if let Some((cert, key)) = tls {
            postgres.write(&data.join("server.crt"), cert)?;
            postgres.write(&data.join("server.key"), key)?;
            let hba = "local all all trust\n\
                       hostssl all all 127.0.0.1/32 trust\n\
                       hostnossl all all 127.0.0.1/32 reject\n";
            postgres.write(&data.join("pg_hba.conf"), hba)?;
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let log = postgres.dir.path().join("log");
        postgres.pg(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-o",
                &options,
                "-l",
                path(&log),
                "-w",
                "start",
            ],
        )?;
        Ok(postgres)
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Writes a file the server reads: mode 0600, owned by the server's user.
    fn write(&self, path: &Path, contents: &str) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(path, contents).map_err(|e| e.to_string())?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        if is_root() {
            run(Command::new("chown").arg("postgres").arg(path))?;
        }
        Ok(())
    }

    fn pg(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(program);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        run(command.args(args).current_dir(self.dir.path()))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.pg("pg_ctl", &["-D", path(&data), "-m", "immediate", "stop"]);
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|version| version.path().join("bin"));
    on_path
        .chain(debian)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
