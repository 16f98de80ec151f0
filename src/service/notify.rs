//! The sd_notify protocol without libsystemd: one unix datagram socket,
//! connected at boot to `$NOTIFY_SOCKET` (a path, or an abstract name
//! written `@name`), carrying `READY=1`, `WATCHDOG=1`, `STATUS=...`,
//! `STOPPING=1` and `EXTEND_TIMEOUT_USEC=...` messages.
//!
//! Boot ([`Notifier::from_env`], [`Notifier::connect`]) allocates; sending
//! ([`Notifier::send`] and the helpers) never allocates and never blocks
//! (the socket is non-blocking: a message systemd has no room for is lost,
//! which the protocol tolerates). Any thread may send.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;

/// A connection to the service manager, or nothing (not run by systemd).
#[derive(Debug, Default)]
pub struct Notifier {
    sock: Option<UnixDatagram>,
    watchdog_usec: Option<u64>,
}

impl Notifier {
    /// Not run by a service manager: every send is a no-op.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// Boot: connect to `$NOTIFY_SOCKET` if it is set, and take the
    /// watchdog period from `$WATCHDOG_USEC` when `$WATCHDOG_PID` is unset
    /// or names this process. A socket that cannot be reached is an error
    /// naming it (systemd would wait for READY=1 in vain).
    pub fn from_env() -> io::Result<Notifier> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(Notifier::disabled());
        };
        let path = path.to_string_lossy().into_owned();
        let for_us = match std::env::var("WATCHDOG_PID") {
            Ok(pid) => pid.trim() == std::process::id().to_string(),
            Err(_) => true,
        };
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&v| v > 0 && for_us);
        Notifier::connect(&path, watchdog).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("NOTIFY_SOCKET {path}: cannot connect: {e}"),
            )
        })
    }

    /// Boot: connect to the notify socket at `path` (`@name` for an
    /// abstract socket); `watchdog_usec` is the manager's watchdog period.
    pub fn connect(path: &str, watchdog_usec: Option<u64>) -> io::Result<Notifier> {
        let sock = UnixDatagram::unbound()?;
        if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.connect_addr(&addr)?;
        } else {
            sock.connect(path)?;
        }
        sock.set_nonblocking(true)?;
        Ok(Notifier {
            sock: Some(sock),
            watchdog_usec,
        })
    }

    pub fn enabled(&self) -> bool {
        self.sock.is_some()
    }

    /// The manager's watchdog period, if it asked for pings.
    pub fn watchdog_usec(&self) -> Option<u64> {
        self.watchdog_usec
    }

    /// Sends one message (`KEY=VALUE` lines). True when it was sent.
    /// Never allocates, never blocks.
    pub fn send(&self, msg: &[u8]) -> bool {
        match &self.sock {
            Some(s) => s.send(msg).is_ok(),
            None => false,
        }
    }

    /// `READY=1` plus a status line. Never allocates.
    pub fn ready(&self, status: &[u8]) -> bool {
        let mut buf = [0u8; 256];
        let n = {
            let mut w = &mut buf[..];
            let _ = w.write_all(b"READY=1\n");
            let _ = w.write_all(status);
            256 - w.len()
        };
        self.send(&buf[..n])
    }

    pub fn watchdog(&self) -> bool {
        self.send(b"WATCHDOG=1")
    }

    pub fn stopping(&self) -> bool {
        self.send(b"STOPPING=1")
    }

    /// Asks for `usec` more start-up time (while boot waits for a camera).
    /// Never allocates.
    pub fn extend_timeout(&self, usec: u64, status: &str) -> bool {
        let mut buf = [0u8; 256];
        let n = {
            let mut w = &mut buf[..];
            let _ = write!(w, "EXTEND_TIMEOUT_USEC={usec}\nSTATUS={status}");
            256 - w.len()
        };
        self.send(&buf[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_bound_socket_and_abstract_names_work() {
        let dir = std::env::temp_dir().join(format!("perceptd-notify-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.to_str().unwrap(), Some(1000)).unwrap();
        assert!(n.enabled());
        assert!(n.ready(b"STATUS=hello"));
        assert!(n.extend_timeout(5_000_000, "waiting"));
        let mut buf = [0u8; 512];
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1\nSTATUS=hello");
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"EXTEND_TIMEOUT_USEC=5000000\nSTATUS=waiting");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("perceptd-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::connect(&format!("@{name}"), None).unwrap();
        assert!(n.stopping());
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"STOPPING=1");
        assert!(!Notifier::disabled().watchdog());
        let e = Notifier::connect(dir.join("nobody").to_str().unwrap(), None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
