//! Accepting connections: TCP, then mutual TLS, each step bounded in time.
//!
//! tonic can run the TLS handshake itself, with a timeout, but then hands
//! the stream straight to HTTP/2, which waits for the client's preface with
//! no limit: a client that finished the handshake (a member's certificate)
//! and then sent nothing held its connection for ever, where HTTP/2
//! keepalive never starts. So the hub accepts TLS itself, as tonic does
//! (handshakes run concurrently; a failed or stalled one is dropped, never
//! ending the incoming stream), and then gives the client
//! `tls_handshake_timeout` again to send its first bytes.
//!
//! The stream handed to tonic is a `tokio_rustls` server stream, so
//! `Request::peer_certs()` works as it did with tonic's own TLS. Each
//! handshake takes the TLS configuration current when it starts
//! (`tls::ServerTls`), which is how a rotated certificate reaches new
//! connections without touching open ones.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// How accepted connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    /// A TLS handshake not finished in this time is dropped.
    pub handshake_timeout: Duration,
    /// After the handshake, the client must send something (its HTTP/2
    /// preface) within this time.
    pub first_data_timeout: Duration,
    pub tcp_keepalive: Duration,
}

/// The hub's connections: accepted on `listener`, TLS done, ready for
/// tonic's `serve_with_incoming_shutdown`. Accepting stops when the stream
/// is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: crate::tls::ServerTls,
    limits: AcceptLimits,
) -> ReceiverStream<io::Result<TlsStream<FirstData>>> {
    let (tx, rx) = mpsc::channel(64);
    // TCP_NODELAY: without it, a response written in more than one piece
    // waits for the client's delayed ACK (about 40 ms on Linux).
    let mut tcp = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(limits.tcp_keepalive));
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = tx.closed() => break,
                next = tcp.next() => match next {
                    None => break,
                    Some(Ok(stream)) => stream,
                    Some(Err(e)) => {
                        // Out of file descriptors and the like: wait a
                        // little rather than spin.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // The configuration current now: after a certificate
            // rotation, new handshakes use the new files (tls.rs).
            let (acceptor, tx) = (TlsAcceptor::from(tls.current()), tx.clone());
            tokio::spawn(async move {
                let peer = stream.peer_addr().ok();
                let accepted = tokio::time::timeout(
                    limits.handshake_timeout,
                    acceptor.accept(FirstData::new(stream)),
                )
                .await;
                match accepted {
                    Ok(Ok(mut tls)) => {
                        let (io, session) = tls.get_mut();
                        // Data the client sent with its last handshake
                        // flight is already inside rustls.
                        let buffered = session
                            .process_new_packets()
                            .is_ok_and(|s| s.plaintext_bytes_to_read() > 0);
                        if !buffered {
                            io.expect_data_within(limits.first_data_timeout);
                        }
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(?peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(
                        ?peer,
                        timeout_ms = limits.handshake_timeout.as_millis() as u64,
                        "TLS handshake not finished in time; connection dropped"
                    ),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A TCP stream that, once told to, fails its reads if no data arrives
/// within a deadline; the first data disarms it for good.
pub struct FirstData {
    inner: TcpStream,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl FirstData {
    fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            deadline: None,
        }
    }

    fn expect_data_within(&mut self, timeout: Duration) {
        self.deadline = Some(Box::pin(tokio::time::sleep(timeout)));
    }
}

impl Connected for FirstData {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.inner.local_addr().ok(),
            remote_addr: self.inner.peer_addr().ok(),
        }
    }
}

impl AsyncRead for FirstData {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = self
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent nothing after its TLS handshake",
                    )))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for FirstData {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
