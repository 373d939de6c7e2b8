//! A TCP fault proxy for tests: sits between an agent and a hub on
//! loopback and, on command, delays, drops, resets or freezes the traffic.
//!
//! Loopback only and bounded: it listens on 127.0.0.1, forwards only to the
//! one address it was given (which must be a loopback address), holds at
//! most [`MAX_CONNECTIONS`] connections at once (more are closed on
//! arrival), and every task it starts ends when the proxy is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Connections held at once; more are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 64;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards everything.
    Pass,
    /// Forwards everything, each chunk held back this long first.
    Delay(Duration),
    /// New connections are accepted and closed at once; open ones go on.
    Refuse,
    /// Nothing is forwarded either way and nothing is closed: each side's
    /// bytes are read and dropped, as on a link that silently lost its peer
    /// (half-open). New connections are accepted into the same void.
    Blackhole,
}

/// A running proxy. Dropping it closes every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Bumped by [`FaultProxy::reset_all`]: every open connection is then
    /// reset (RST, not FIN).
    resets: watch::Sender<u64>,
    /// Bumped by [`FaultProxy::freeze_open`]: every connection open then
    /// goes silent for good.
    freezes: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    _tasks: JoinSet<()>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (any free port) to `target`, a loopback
    /// address.
    pub async fn start(target: SocketAddr) -> Self {
        assert!(
            target.ip().is_loopback(),
            "the fault proxy forwards to loopback only, not {target}"
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (fault, fault_rx) = watch::channel(Fault::Pass);
        let (resets, resets_rx) = watch::channel(0u64);
        let (freezes, freezes_rx) = watch::channel(0u64);
        let accepted = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(
            listener,
            target,
            fault_rx,
            resets_rx,
            freezes_rx,
            accepted.clone(),
        ));
        Self {
            addr,
            fault,
            resets,
            freezes,
            accepted,
            _tasks: tasks,
        }
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Applies `fault` from now on, to open connections and new ones.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Resets every open connection (an RST to both sides, mid-stream).
    pub fn reset_all(&self) {
        self.resets.send_modify(|n| *n += 1);
    }

    /// Makes every open connection half-open: from now on it forwards
    /// nothing either way and is never closed, as when the peer vanished
    /// without a word; new connections are not affected.
    pub fn freeze_open(&self) {
        self.freezes.send_modify(|n| *n += 1);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    fault: watch::Receiver<Fault>,
    resets: watch::Receiver<u64>,
    freezes: watch::Receiver<u64>,
    accepted: Arc<AtomicU64>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Connection tasks live in this set, so they end with this task.
    let mut connections = JoinSet::new();
    loop {
        let (client, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // over the bound: dropped, so closed
        };
        if *fault.borrow() == Fault::Refuse {
            continue;
        }
        let fault = fault.clone();
        let mut resets = resets.clone();
        let mut frozen = freezes.clone();
        frozen.mark_unchanged();
        connections.spawn(async move {
            let _slot = slot;
            resets.mark_unchanged();
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            for s in [&client, &server] {
                let _ = s.set_nodelay(true);
                // Linger 0: closing the socket resets it (RST), so a reset
                // below is abortive, mid-stream, as a middlebox's would be.
                let _ = linger_zero(s);
            }
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            // Half-open once set: both sockets held, nothing forwarded.
            let silent = Arc::new(AtomicBool::new(false));
            let pumps = async {
                tokio::join!(
                    pump(cr, sw, fault.clone(), silent.clone()),
                    pump(sr, cw, fault, silent.clone())
                )
            };
            tokio::pin!(pumps);
            loop {
                tokio::select! {
                    _ = &mut pumps => break,
                    _ = resets.changed() => break,
                    Ok(()) = frozen.changed() => silent.store(true, Ordering::Relaxed),
                }
            }
        });
    }
}

/// Copies `from` to `to` under the current fault until either side ends.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: watch::Receiver<Fault>,
    silent: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if silent.load(Ordering::Relaxed) {
            continue;
        }
        let now = *fault.borrow();
        match now {
            Fault::Blackhole => continue,
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::Pass | Fault::Refuse => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[allow(deprecated)] // set_linger: zero linger never blocks on close
fn linger_zero(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_linger(Some(Duration::ZERO))
}
