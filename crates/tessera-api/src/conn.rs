//! Connections: at most a bounded number open at once (a connection past the bound is closed at
//! once, so that trickling clients cannot take every socket the process may hold), each with
//! TCP_NODELAY. Slow clients are cut by the TLS handshake timeout and hyper's header-read
//! timeout (set in `server.rs`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Accepts up to `limit` connections at a time.
#[derive(Debug, Clone)]
pub(crate) struct BoundedAcceptor {
    open: Arc<Semaphore>,
    /// Whether the last connection was refused: a flood is logged once, when it starts.
    full: Arc<AtomicBool>,
}

impl BoundedAcceptor {
    pub(crate) fn new(limit: usize) -> Self {
        BoundedAcceptor { open: Arc::new(Semaphore::new(limit.max(1))), full: Arc::new(AtomicBool::new(false)) }
    }
}

/// A connection holding its place among the bounded ones until it closes.
#[derive(Debug)]
pub(crate) struct Bounded {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
}

impl<S: Send + 'static> Accept<TcpStream, S> for BoundedAcceptor {
    type Stream = Bounded;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Bounded, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let placed = self.open.clone().try_acquire_owned().map_err(|_| {
            if !self.full.swap(true, Ordering::Relaxed) {
                tracing::warn!("refusing connections: the server holds its most open connections");
            }
            io::Error::other("too many open connections")
        });
        if placed.is_ok() {
            self.full.store(false, Ordering::Relaxed);
        }
        std::future::ready(placed.and_then(|place| {
            stream.set_nodelay(true)?;
            Ok((Bounded { stream, _place: place }, service))
        }))
    }
}

impl AsyncRead for Bounded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Bounded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
