//! Opening input files so that `open(2)` never blocks: a FIFO without a
//! writer (or a device) given where a file is expected would otherwise hang
//! boot in `open` before any "not a regular file" check could run.
//!
//! * [`open_regular`]: inputs that must be files (model, tensor files,
//!   external weights); anything else is refused after a non-blocking open.
//! * [`open_stream`]: inputs where reading a pipe is the point (`replay
//!   FIFO`, `replay -`): a [`StreamReader`] whose reads on a pipe wait in
//!   [`crate::stop::wait_readable`], so a stop request ends a read that no
//!   writer will ever complete.
//!
//! Boot only, except [`StreamReader::read`] (capture thread; never
//! allocates).

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Open `path` for reading with O_NONBLOCK (so a FIFO without a writer
/// opens at once), then make it blocking again.
fn open_nonblocking(path: &Path) -> io::Result<(File, Metadata)> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    set_blocking(&f)?;
    let meta = f.metadata()?;
    Ok((f, meta))
}

fn set_blocking(f: &File) -> io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor `f` owns; no pointers involved.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Open a file that must be a regular file; a FIFO, device or folder is an
/// `InvalidInput` error ("not a regular file") instead of a hang.
pub fn open_regular(path: &Path) -> io::Result<(File, Metadata)> {
    let (f, meta) = open_nonblocking(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((f, meta))
}

/// A byte stream from a file, a FIFO, a pipe or a terminal. On anything but
/// a regular file each read first waits, in slices, for data, and gives up
/// with [`crate::stop::stopped_error`] once a stop is requested.
pub struct StreamReader {
    file: File,
    poll: bool,
}

/// Open `path` as a stream (`-`: a copy of stdin). Regular files, FIFOs,
/// character devices and sockets are accepted; folders are not.
pub fn open_stream(path: &Path) -> io::Result<StreamReader> {
    let (file, meta) = if path.as_os_str() == "-" {
        // SAFETY: dup of fd 0; the new descriptor is owned by the File.
        let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let f = unsafe { File::from_raw_fd(fd) };
        let meta = f.metadata()?;
        (f, meta)
    } else {
        open_nonblocking(path)?
    };
    if meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "is a folder"));
    }
    Ok(StreamReader {
        poll: !meta.is_file(),
        file,
    })
}

impl StreamReader {
    /// A stream over a descriptor already open (a child's stdout pipe);
    /// anything but a regular file is polled as in [`open_stream`].
    pub fn from_file(file: File) -> io::Result<StreamReader> {
        let meta = file.metadata()?;
        Ok(StreamReader {
            poll: !meta.is_file(),
            file,
        })
    }

    /// Whether this is a pipe, FIFO, device or socket (not a regular file).
    pub fn is_pipe(&self) -> bool {
        self.poll
    }
}

impl Read for StreamReader {
    /// Frame path (replay): never allocates.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.poll && !crate::stop::wait_readable(self.file.as_raw_fd())? {
            return Err(crate::stop::stopped_error());
        }
        self.file.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("perceptd-fsio-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        p
    }

    #[test]
    fn a_fifo_without_a_writer_is_refused_not_waited_for() {
        let p = fifo("regular");
        let e = open_regular(&p).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("not a regular file"));
        assert!(open_stream(&p).is_ok());
        let _ = std::fs::remove_file(&p);
        let d = std::env::temp_dir();
        assert!(open_regular(&d).is_err() && open_stream(&d).is_err());
    }
}
