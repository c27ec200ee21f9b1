//! A network link the tests can cut: a TCP relay between a leaf site's
//! server and the hub. Cutting it closes every connection through it and
//! refuses new ones, as a failed WAN link does, while both servers run on.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The relay; dropping it stops it.
pub struct Link {
    /// Where the site dials.
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Relays connections to `upstream` until cut.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (up, watching) = watch::channel(true);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !*watching.borrow() {
                    continue; // dropped: the link is down
                }
                let mut down = watching.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut a, mut b) = (inbound, outbound);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Ok(Link { addr, up, task })
    }

    /// Closes every connection through the link and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}
