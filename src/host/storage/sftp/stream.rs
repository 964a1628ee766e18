//! The byte stream the SFTP session runs on: reads come from russh's channel stream; each write
//! goes to the SSH session as one message.
//!
//! Why not the channel stream for writing too: russh 0.55's stream turns every SSH packet
//! (32 KiB on OpenSSH) into its own channel message, with a fresh zeroed, `mlock`ed buffer that
//! is wiped byte by byte and `munlock`ed again once sent — about a fifth of the client's CPU on
//! an upload (docs/benchmarks.md, SFTP). russh-sftp writes each SFTP packet whole, so here an
//! upload's 255 KiB write request is one buffer and one message; the SSH session cuts it into
//! packets as the window allows. Memory stays bounded by the SFTP requests in flight
//! (`WRITE_WINDOW`), as before. (russh ≥ 0.58 sends channel data as plain `Bytes`, but needs
//! ml-kem 0.3 or a rand_core pre-release that age 0.12 and rand 0.10 exclude: see Cargo.toml.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use russh::client::{Handle, Handler, Msg};
use russh::{ChannelId, ChannelStream, CryptoVec};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

type Sending = Pin<Box<dyn Future<Output = Result<(), CryptoVec>> + Send>>;

pub struct SftpStream<H: Handler> {
    channel: ChannelStream<Msg>,
    handle: Arc<Handle<H>>,
    id: ChannelId,
    /// The write being handed over, and its length (what `poll_write` reports once it is).
    sending: Option<(Sending, usize)>,
    /// Cancelled when the channel ends (EOF or an error either way). russh-sftp leaves the
    /// requests already sent waiting for their `request_timeout` then; the upload waits on this
    /// beside them, so a server that dies is noticed at once.
    closed: CancellationToken,
}

impl<H: Handler> SftpStream<H> {
    pub fn new(
        channel: ChannelStream<Msg>,
        handle: Arc<Handle<H>>,
        id: ChannelId,
        closed: CancellationToken,
    ) -> Self {
        SftpStream {
            channel,
            handle,
            id,
            sending: None,
            closed,
        }
    }
}

impl<H: Handler> AsyncRead for SftpStream<H> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let (before, room) = (buf.filled().len(), buf.remaining() > 0);
        let r = ready!(Pin::new(&mut self.channel).poll_read(cx, buf));
        // Nothing read into room for something is AsyncRead's end of stream.
        if r.is_err() || (room && buf.filled().len() == before) {
            self.closed.cancel();
        }
        Poll::Ready(r)
    }
}

impl<H: Handler + 'static> AsyncWrite for SftpStream<H> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // A write that returned Pending is polled again with the same bytes (AsyncWrite's
        // contract, which write_all keeps): the message already holds them.
        let this = &mut *self;
        let (sending, len) = this.sending.get_or_insert_with(|| {
            let data = CryptoVec::from_slice(buf);
            let handle = this.handle.clone();
            let id = this.id;
            (
                Box::pin(async move { handle.data(id, data).await }),
                buf.len(),
            )
        });
        let len = *len;
        let sent = ready!(sending.as_mut().poll(cx));
        this.sending = None;
        if sent.is_err() {
            this.closed.cancel();
            let e = io::Error::new(io::ErrorKind::BrokenPipe, "the SSH connection is closed");
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(len))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends the channel's EOF, through the same session queue as the data, so after it.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.channel).poll_shutdown(cx)
    }
}
