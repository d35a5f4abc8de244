//! A real browser for console tests: headless Chromium (the Debian package `chromium`, which
//! `scripts/test.sh` installs) driven over the Chrome DevTools Protocol, spoken here on the
//! WebSocket client the project already has.
//!
//! [`Browser::launch`] starts it on a throwaway profile with a DevTools port of its choosing;
//! [`Page`] navigates, evaluates script and waits in the page for a condition to hold.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use awc::ws;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};

/// How long a condition may take to hold in the page.
const PAGE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long Chromium may take to listen: its first start on a machine builds caches (fonts), and
/// tests run beside it.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(90);

/// A headless Chromium, killed when dropped.
pub struct Browser {
    child: Child,
    devtools: String,
    _profile: tempfile::TempDir,
}

/// The executable: `CHROMIUM` when set, else `chromium` on the `PATH`.
fn executable() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return path.into();
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|path| path.is_file())
    });
    found.expect(
        "the console tests need Chromium: scripts/test.sh installs the Debian package `chromium` \
         (or set CHROMIUM to a Chrome or Chromium executable)",
    )
}

/// The address of Chromium's DevTools (`127.0.0.1:port`), sent once its log says it listens
/// ("DevTools listening on ws://…"); or all it said, if it stops first. Its log is read to the
/// end meanwhile, so Chromium never blocks on a full pipe.
fn listening(stderr: ChildStderr) -> mpsc::Receiver<Result<String, String>> {
    let (send, listening) = mpsc::channel();
    std::thread::spawn(move || {
        let mut said = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ws://") {
                let address = url.split('/').next().unwrap_or_default().to_owned();
                let _ = send.send(Ok(address));
            }
            said.push_str(&line);
            said.push('\n');
        }
        let _ = send.send(Err(said));
    });
    listening
}

impl Browser {
    /// Starts the browser with `args` added to the headless defaults.
    pub fn launch(args: &[&str]) -> Self {
        let profile = tempfile::tempdir().expect("browser profile directory");
        let mut child = Command::new(executable())
            .args([
                "--headless",
                // Tests run as root in a container: no setuid sandbox there.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .args([
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-extensions",
                "--no-default-browser-check",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("Chromium starts");
        let listening = listening(child.stderr.take().expect("Chromium's stderr"));
        let devtools = match listening.recv_timeout(LAUNCH_TIMEOUT) {
            Ok(Ok(address)) => address,
            Ok(Err(said)) => panic!("Chromium stopped before it listened; it said:\n{said}"),
            Err(_) => panic!("Chromium opened no DevTools port in {LAUNCH_TIMEOUT:?}"),
        };
        Self {
            child,
            devtools,
            _profile: profile,
        }
    }

    /// The browser's first tab.
    pub async fn page(&self) -> Page {
        let mut listed = awc::Client::new()
            .get(format!("http://{}/json/list", self.devtools))
            .send()
            .await
            .expect("DevTools answers");
        let targets: Vec<Value> = listed.json().await.expect("target list");
        let url = targets
            .iter()
            .find(|target| target["type"] == "page")
            .and_then(|target| target["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (_, socket) = awc::Client::new()
            .ws(url)
            .max_frame_size(64 << 20)
            .connect()
            .await
            .expect("DevTools socket opens");
        let mut page = Page {
            socket,
            next_id: 0,
            console: Vec::new(),
        };
        page.command("Runtime.enable", json!({})).await;
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One tab, driven over its DevTools socket.
pub struct Page {
    socket: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
    next_id: u64,
    /// What the page logged and threw, for failure messages.
    console: Vec<String>,
}

impl Page {
    /// Sends a DevTools command and returns its result (events meanwhile are skipped).
    pub async fn command(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket
            .send(ws::Message::Text(message.into()))
            .await
            .expect("DevTools command sent");
        loop {
            let frame = self
                .socket
                .next()
                .await
                .expect("DevTools socket open")
                .expect("DevTools frame");
            let ws::Frame::Text(text) = frame else {
                continue;
            };
            let reply: Value = serde_json::from_slice(&text).expect("DevTools JSON");
            match reply["method"].as_str() {
                Some("Runtime.consoleAPICalled") => {
                    let args = &reply["params"]["args"];
                    self.console.push(format!("console: {args}"));
                }
                Some("Runtime.exceptionThrown") => {
                    let details = &reply["params"]["exceptionDetails"];
                    self.console.push(format!("thrown: {details}"));
                }
                _ => {}
            }
            if reply["id"] == id {
                if let Some(error) = reply.get("error") {
                    panic!("{method} failed: {error}");
                }
                return reply["result"].clone();
            }
        }
    }

    /// Opens `url` in the tab.
    pub async fn goto(&mut self, url: &str) {
        self.command("Page.navigate", json!({ "url": url })).await;
    }

    /// The value of `expression` (awaited when it is a promise); a thrown exception fails.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .command(
                "Runtime.evaluate",
                json!({
                    "expression": expression,
                    "awaitPromise": true,
                    "returnByValue": true,
                    // As if the user acted: the page may start audio.
                    "userGesture": true,
                }),
            )
            .await;
        if let Some(thrown) = result.get("exceptionDetails") {
            panic!("{expression} threw: {thrown}");
        }
        result["result"]["value"].clone()
    }

    /// The value of `expression` once it is truthy, checked in the page every 20 ms (in rounds of
    /// a second, so a navigation between rounds does not lose the wait); fails naming `what`
    /// after the page timeout.
    pub async fn until(&mut self, what: &str, expression: &str) -> Value {
        self.until_within(PAGE_TIMEOUT, what, expression).await
    }

    /// [`Page::until`] with a timeout of its own (a conversation takes longer than a click).
    pub async fn until_within(&mut self, timeout: Duration, what: &str, expression: &str) -> Value {
        let deadline = Instant::now() + timeout;
        let waiting = format!(
            "new Promise((resolve) => {{ const end = Date.now() + 1000; const check = () => {{ \
             let value; try {{ value = ({expression}); }} catch (_) {{ value = null; }} \
             if (value || Date.now() > end) {{ resolve(value || null); }} \
             else {{ setTimeout(check, 20); }} }}; check(); }})"
        );
        loop {
            let value = self.eval(&waiting).await;
            if !value.is_null() && value != Value::Bool(false) {
                return value;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body.innerText.slice(0, 2000)").await;
                panic!(
                    "the page never showed {what}; it shows {text}; its console: {:#?}",
                    self.console
                );
            }
        }
    }
}
