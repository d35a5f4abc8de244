//! The load balancer the project ships, in front of test instances: Debian's nginx
//! (`scripts/test.sh` installs it when missing) running the `server` block of `compose.yaml`'s
//! `balancer` config as written there, with only its upstreams and listening port replaced.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The shipped balancer on a free loopback port, or `None` after saying why the test is skipped.
pub async fn available(upstreams: &[&str]) -> Option<Balancer> {
    let Some(nginx) = binary() else {
        eprintln!("SKIPPED: no nginx (the Debian package nginx-light) on PATH or in /usr/sbin");
        return None;
    };
    let server = shipped_server_block();
    // A port is chosen, then bound by nginx: another test may take it in between; try again then.
    let mut failures = Vec::new();
    for _ in 0..5 {
        match Balancer::start(&nginx, &server, upstreams).await {
            Ok(balancer) => return Some(balancer),
            Err(why) => failures.push(why),
        }
    }
    panic!("nginx did not start: {failures:#?}");
}

/// A running nginx, stopped (SIGTERM, then waited for) when dropped; its error log is printed then
/// if the test failed.
pub struct Balancer {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Balancer {
    async fn start(nginx: &Path, server: &str, upstreams: &[&str]) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, configuration(dir.path(), server, upstreams, port))
            .map_err(|e| e.to_string())?;
        let error_log = dir.path().join("error.log");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(&error_log)
            .arg("-c")
            .arg(&config)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut balancer = Self {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..250 {
            if let Some(status) = balancer.child.try_wait().map_err(|e| e.to_string())? {
                let log = std::fs::read_to_string(&error_log).unwrap_or_default();
                return Err(format!("nginx exited ({status}): {log}"));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(balancer);
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        balancer.stop();
        Err("nginx did not listen within 5 s".into())
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("error.log"));
            eprintln!("nginx's error log:\n{}", log.unwrap_or_default());
        }
    }
}

fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>());
    on_path
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// The `content` of `compose.yaml`'s `balancer` config, with Compose's `$$` escapes undone.
fn shipped_server_block() -> String {
    let compose = include_str!("../../../compose.yaml");
    let (_, after) = compose
        .split_once("configs:\n  balancer:\n    content: |\n")
        .expect("compose.yaml has the balancer's config inline");
    after
        .lines()
        .take_while(|line| line.is_empty() || line.starts_with("      "))
        .map(|line| line.get(6..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("$$", "$")
}

/// A whole `nginx.conf` around the shipped `server` block: its state in `dir`, the compose
/// upstreams replaced by `upstreams` (with the same parameters), listening on `port` of the
/// loopback interface.
fn configuration(dir: &Path, server: &str, upstreams: &[&str], port: u16) -> String {
    let mut parameters = Vec::new();
    let mut listens = 0;
    let mut block = String::new();
    for line in server.lines() {
        if let Some(upstream) = line.trim_start().strip_prefix("server agent-") {
            let (_, rest) = upstream.split_once(' ').unwrap_or(("", ";"));
            if parameters.is_empty() {
                for address in upstreams {
                    block.push_str(&format!("  server {address} {rest}\n"));
                }
            }
            parameters.push(rest.to_owned());
        } else if line.trim() == "listen 8080;" {
            listens += 1;
            block.push_str(&format!("  listen 127.0.0.1:{port};\n"));
        } else {
            block.push_str(line);
            block.push('\n');
        }
    }
    assert_eq!(
        parameters.len(),
        2,
        "compose.yaml's balancer: two upstreams"
    );
    assert_eq!(parameters[0], parameters[1], "both upstreams alike");
    assert_eq!(listens, 1, "compose.yaml's balancer listens on 8080");
    let dir = dir.display();
    format!(
        "worker_processes 1;\npid {dir}/nginx.pid;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  \
         proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  \
         uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n{block}}}\n"
    )
}
