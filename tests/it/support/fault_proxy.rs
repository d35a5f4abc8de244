//! A TCP proxy that injects network faults on command, put between the server and a fake provider
//! (or between the sim and the server): cut every connection with a reset, stall (hold every byte,
//! connections open), drip the answers a byte at a time, truncate them, or corrupt them.
//!
//! Faults on the answers (drip, truncate, corrupt) apply to what the upstream sends back; a stall
//! holds both directions; a cut resets the connections open and those that arrive while it lasts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every byte passes as it came.
    Pass,
    /// Every connection is reset (RST, no close handshake of any protocol above), and so is each
    /// new one while the cut lasts.
    Cut,
    /// No byte passes either way; connections stay open (a black hole). Held bytes pass once the
    /// stall ends.
    Stall,
    /// The answers pass one byte at a time, this long apart.
    Drip(Duration),
    /// A connection passes this many bytes of answers, then is reset.
    Truncate(usize),
    /// Every byte of the answers is flipped (XOR 0xA5).
    Corrupt,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
    connections: Arc<AtomicUsize>,
    accept: actix_rt::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy in front of the server at `url` (`ws://`, `http://`, with any path), passing
    /// everything; with the same URL pointed at the proxy.
    pub async fn in_front_of(url: &str) -> (Self, String) {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let upstream: SocketAddr = host.parse().expect("a 127.0.0.1:PORT URL");
        let proxy = Self::start(upstream).await;
        let url = format!("{scheme}://{}{path}", proxy.addr);
        (proxy, url)
    }

    /// A proxy to `upstream`, passing everything.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let (fault, faults) = watch::channel(Fault::Pass);
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let accept = actix_rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let _ = client.set_zero_linger();
                if *faults.borrow() == Fault::Cut {
                    continue; // dropped with linger 0: a reset
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let _ = server.set_zero_linger();
                counted.fetch_add(1, Ordering::SeqCst);
                actix_rt::spawn(relay(client, server, faults.clone()));
            }
        });
        Self {
            addr,
            fault,
            connections,
            accept,
        }
    }

    /// From now on, `fault`.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Connections relayed so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.set(Fault::Cut);
    }
}

/// How one direction of a connection ended.
enum Ended {
    /// Its reader reached the end: the other direction may go on.
    Eof,
    /// A cut, a truncation or an error: the whole connection goes (reset).
    Reset,
}

/// Relays one connection until both directions end or a fault resets it.
async fn relay(client: TcpStream, server: TcpStream, faults: watch::Receiver<Fault>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let requests = pump(client_read, server_write, faults.clone(), false);
    let answers = pump(server_read, client_write, faults, true);
    tokio::pin!(requests, answers);
    let rest = tokio::select! {
        ended = &mut requests => matches!(ended, Ended::Eof).then_some(answers.as_mut()),
        ended = &mut answers => matches!(ended, Ended::Eof).then_some(requests.as_mut()),
    };
    if let Some(rest) = rest {
        rest.await;
    }
    // Dropping the halves (linger 0) resets whatever is still open.
}

/// Copies `from` to `to` under the current fault; `answers` is the direction back from upstream,
/// the one drip, truncate and corrupt apply to.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut faults: watch::Receiver<Fault>,
    answers: bool,
) -> Ended {
    let mut buffer = vec![0; 16 * 1024];
    let mut passed = 0;
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = faults.wait_for(|fault| *fault == Fault::Cut) => return Ended::Reset,
        };
        let bytes = match read {
            Ok(0) => {
                let _ = to.shutdown().await;
                return Ended::Eof;
            }
            Ok(n) => &mut buffer[..n],
            Err(_) => return Ended::Reset,
        };
        let fault = match faults.wait_for(|fault| *fault != Fault::Stall).await {
            Ok(fault) => fault.clone(),
            Err(_) => return Ended::Reset,
        };
        let written = match (fault, answers) {
            (Fault::Cut, _) => return Ended::Reset,
            (Fault::Drip(every), true) => drip(&mut to, bytes, every).await,
            (Fault::Truncate(limit), true) => {
                let room = limit.saturating_sub(passed).min(bytes.len());
                passed += room;
                if to.write_all(&bytes[..room]).await.is_err() || passed >= limit {
                    return Ended::Reset;
                }
                Ok(())
            }
            (Fault::Corrupt, true) => {
                bytes.iter_mut().for_each(|byte| *byte ^= 0xA5);
                to.write_all(bytes).await
            }
            _ => to.write_all(bytes).await,
        };
        if written.is_err() {
            return Ended::Reset;
        }
    }
}

/// Writes `bytes` one at a time, `every` apart.
async fn drip(to: &mut OwnedWriteHalf, bytes: &[u8], every: Duration) -> std::io::Result<()> {
    for byte in bytes {
        to.write_all(std::slice::from_ref(byte)).await?;
        actix_rt::time::sleep(every).await;
    }
    Ok(())
}
