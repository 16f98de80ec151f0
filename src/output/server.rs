//! The TCP side shared by the servers among the outputs (the live view,
//! [`super::http`], and the Foxglove server, [`super::foxglove`]): binding
//! `listen` at boot, one accept thread that serves at most `max` clients
//! at once (one thread each; more are refused with an HTTP 503), and at
//! the end of the run shutting every client socket down and joining every
//! thread.
//!
//! Threads: `{prefix}-accept` and `{prefix}-client` (one per client), all
//! marked side threads (they allocate: the thread, its buffers; stated by
//! each server) and, on a live source, run at nice 19
//! ([`crate::rt::background`]). Never on the frame path.

use super::http::lock;
use super::OutputError;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the accept thread sleeps when nobody is connecting.
const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// Write timeout of a refusal.
const REFUSAL_TIMEOUT: Duration = Duration::from_millis(50);

/// The clients of one server: how many, their sockets, the stop flag.
pub struct Clients {
    stop: AtomicBool,
    count: AtomicUsize,
    /// Open client sockets, shut down at the end to unblock their threads.
    sockets: Mutex<Vec<(u64, TcpStream)>>,
}

impl Clients {
    /// Boot: room for `max` sockets.
    pub fn new(max: usize) -> Clients {
        Clients {
            stop: AtomicBool::new(false),
            count: AtomicUsize::new(0),
            sockets: Mutex::new(Vec::with_capacity(max)),
        }
    }

    /// Clients connected now.
    pub fn connected(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// The run has ended: client threads return.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Ends the run for every client: sets the stop flag and shuts every
    /// socket down (a thread blocked in a read or write returns).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        for (_, s) in lock(&self.sockets).iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// What is wrong with a server's `listen`, `max_clients` and `quality`
/// fields, as (field, value, why); `example` is its default `listen`.
pub fn problem(
    listen: &str,
    max_clients: usize,
    quality: u8,
    example: &str,
) -> Option<(&'static str, String, String)> {
    if listen.parse::<SocketAddr>().is_err() {
        return Some((
            "listen",
            format!("\"{listen}\""),
            format!("expected IP:PORT (e.g. \"{example}\")"),
        ));
    }
    if !(1..=64).contains(&max_clients) {
        return Some((
            "max_clients",
            max_clients.to_string(),
            "expected 1..=64".into(),
        ));
    }
    if !(1..=100).contains(&quality) {
        return Some(("quality", quality.to_string(), "expected 1..=100".into()));
    }
    None
}

/// A bound listener, before its accept thread starts.
pub struct Server {
    listener: TcpListener,
    /// The bound address (the real port when `listen` asked for port 0).
    pub addr: SocketAddr,
    pub clients: Arc<Clients>,
    max: usize,
    /// `http listen = "..."`: how boot errors name it.
    target: String,
}

impl Server {
    /// Boot: binds `listen` (a port in use fails here, as one line naming
    /// `what` and the address), non-blocking, room for `max` clients.
    pub fn bind(listen: &str, what: &str, max: usize) -> Result<Server, OutputError> {
        let target = format!("{what} listen = \"{listen}\"");
        let open_err = |msg: String| OutputError::Open {
            target: target.clone(),
            msg,
        };
        let addr: SocketAddr = listen
            .parse()
            .map_err(|e| open_err(format!("expected IP:PORT ({e})")))?;
        let listener = TcpListener::bind(addr).map_err(|e| open_err(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| open_err(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| open_err(e.to_string()))?;
        Ok(Server {
            listener,
            addr,
            clients: Arc::new(Clients::new(max)),
            max,
            target,
        })
    }

    /// Boot: starts the `{prefix}-accept` thread. Each client beyond
    /// `max` gets `refusal` (a whole HTTP response) and is closed; the
    /// others get a `{prefix}-client` thread running `serve` (blocking
    /// socket). `lower`: run these threads at nice 19 (live sources).
    pub fn start<F>(
        self,
        prefix: &str,
        refusal: &'static [u8],
        lower: bool,
        serve: F,
    ) -> Result<JoinHandle<()>, OutputError>
    where
        F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
    {
        let Server {
            listener,
            clients,
            max,
            target,
            ..
        } = self;
        let client_name = format!("{prefix}-client");
        let accept_name = format!("{prefix}-accept");
        std::thread::Builder::new()
            .name(accept_name.clone())
            .spawn(move || {
                crate::count_alloc::mark_side_thread();
                if lower {
                    crate::rt::background(&accept_name);
                }
                accept_loop(
                    &listener,
                    &clients,
                    max,
                    &client_name,
                    refusal,
                    lower,
                    serve,
                );
            })
            .map_err(|e| OutputError::Open {
                target,
                msg: format!("cannot start the accept thread: {e}"),
            })
    }
}

fn accept_loop<F>(
    listener: &TcpListener,
    clients: &Arc<Clients>,
    max: usize,
    client_name: &str,
    refusal: &'static [u8],
    lower: bool,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
{
    let serve = Arc::new(serve);
    let mut threads: Vec<JoinHandle<()>> = Vec::with_capacity(max);
    let mut id = 0u64;
    while !clients.stopped() {
        threads.retain(|t| !t.is_finished());
        let Ok((mut s, peer)) = listener.accept() else {
            std::thread::sleep(ACCEPT_POLL);
            continue;
        };
        let _ = s.set_nonblocking(false);
        if clients.connected() >= max {
            let _ = s.set_write_timeout(Some(REFUSAL_TIMEOUT));
            let _ = s.write_all(refusal);
            continue;
        }
        id += 1;
        if let Ok(c) = s.try_clone() {
            lock(&clients.sockets).push((id, c));
        }
        clients.count.fetch_add(1, Ordering::AcqRel);
        let (cl, serve, name) = (
            Arc::clone(clients),
            Arc::clone(&serve),
            client_name.to_string(),
        );
        let spawned = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                crate::count_alloc::mark_side_thread();
                if lower {
                    crate::rt::background(&name);
                }
                serve(s, peer);
                lock(&cl.sockets).retain(|(i, _)| *i != id);
                cl.count.fetch_sub(1, Ordering::AcqRel);
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(_) => {
                lock(&clients.sockets).retain(|(i, _)| *i != id);
                clients.count.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
}
