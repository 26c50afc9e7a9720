//! The one place the library starts a Tokio runtime of its own, for the few
//! plain functions that drive netlink themselves (see the crate docs: the
//! concurrency rule).

use std::{io, panic, thread};

use tokio::runtime::{Builder, Handle, Runtime};

/// A current-thread runtime with I/O and timers, for a thread the library owns.
pub(crate) fn new() -> io::Result<Runtime> {
    Builder::new_current_thread().enable_all().build()
}

/// Runs `f` where a runtime of its own may be started: on the calling
/// thread when that thread is outside any runtime, else on a thread of its
/// own (which starts in the caller's network namespace), the caller's
/// thread waiting for it. Starting or blocking on a runtime inside another
/// panics; this never does.
pub(crate) fn outside<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if Handle::try_current().is_err() {
        return f();
    }
    thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|p| panic::resume_unwind(p))
}

/// Runs `f` on a runtime of its own, [`outside`] the caller's.
pub(crate) fn own<T: Send>(f: impl FnOnce(&Runtime) -> T + Send) -> io::Result<T> {
    outside(|| new().map(|rt| f(&rt)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inside a runtime, where building and blocking on another would
    /// panic, the work still runs, in the namespace of the calling thread:
    /// one of its own, which the process's other threads are not in.
    #[test]
    fn a_runtime_of_its_own_works_inside_another() {
        let ns = || std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let process = std::fs::read_link("/proc/self/ns/net").unwrap();
        std::thread::spawn(move || {
            // SAFETY: affects only this test's own thread.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare: {}", io::Error::last_os_error());
            let here = ns();
            assert_ne!(here, process);
            let outer = new().unwrap();
            let (value, there) = outer.block_on(async { own(|rt| (rt.block_on(async { 7 }), ns())).unwrap() });
            assert_eq!(value, 7);
            assert_eq!(there, here, "the thread of its own starts in the caller's namespace");
            assert_eq!(own(|rt| rt.block_on(async { 8 })).unwrap(), 8, "outside a runtime, on the calling thread");
        })
        .join()
        .unwrap();
    }

    /// A connection opened where nothing could drive it is refused, with
    /// what to do, before any socket is opened.
    #[test]
    fn netlink_outside_a_runtime_is_an_error_not_a_panic() {
        let e = crate::netlink::Netlink::connect().err().expect("no runtime, no connection");
        assert!(matches!(e, crate::netlink::NetlinkError::NoRuntime), "{e}");
        assert!(e.to_string().contains("inside one"), "{e}");
    }
}
