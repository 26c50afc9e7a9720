//! `netkit run`: a link that lives exactly as long as this process. It is
//! never pinned, so the kernel detaches it when the process ends, however it
//! ends; meanwhile the program's aya-log output is printed.

use std::io::Write;

use aya_log::EbpfLogger;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use netkit::{
    hooks::{AttachError, Hooks, Position},
    mprog::Hook,
    programs::{self, LoadOptions, ProgSpec},
};

/// Writes aya-log records to stdout, one line each.
pub struct StdoutLog;

impl log::Log for StdoutLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[{}] {}", record.level(), record.args());
        let _ = out.flush();
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

/// Streams the log of `logger` until `stop` resolves; returns its output.
pub async fn stream_logs<T: log::Log, R>(
    logger: Option<EbpfLogger<T>>,
    stop: impl std::future::Future<Output = R>,
) -> std::io::Result<R> {
    tokio::pin!(stop);
    let Some(logger) = logger else {
        return Ok(stop.await);
    };
    // SAFETY: the logger owns its ring buffer fd for as long as the AsyncFd
    // owns the logger, and always reports that same fd.
    let mut fd = unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    loop {
        tokio::select! {
            r = &mut stop => {
                // Whatever was logged last is still in the buffer: drain it.
                fd.get_mut().flush();
                return Ok(r);
            }
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn interrupted() {
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Follows the aya-log output of program `prog_id` (the `log` program, or
/// any program built with aya-log) until Ctrl-C, or until `still_there`
/// says the program has left its hook.
pub async fn follow_logs(
    prog_id: u32,
    still_there: impl Fn() -> bool,
    out: &mut impl Write,
) -> Result<String, AttachError> {
    let logger = EbpfLogger::init_from_id_with_logger(prog_id, StdoutLog)
        .map_err(|source| AttachError::NoLogBuffer { prog_id, source })?;
    writeln!(out, "following the log of program {prog_id}; Ctrl-C to stop")
        .and_then(|()| out.flush())
        .map_err(AttachError::Output)?;
    let gone = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            if !still_there() {
                return false;
            }
        }
    };
    let stop = async {
        tokio::select! {
            () = interrupted() => true,
            gone = gone => gone,
        }
    };
    let interrupted = stream_logs(Some(logger), stop).await.map_err(|source| AttachError::Log { prog_id, source })?;
    Ok(if interrupted { "stopped".into() } else { format!("program {prog_id} left its hook; the log stream ended") })
}

#[allow(clippy::too_many_arguments)] // one per command-line option
pub async fn run(
    hooks: &Hooks<'_>,
    device: &str,
    hook: Hook,
    prog: &ProgSpec,
    position: Position,
    expected_revision: Option<u64>,
    load: &LoadOptions,
    out: &mut impl Write,
) -> Result<(), AttachError> {
    let dev = hooks.device(device).await?;
    let hook = dev.hook(hook);
    programs::check_hook(prog, hook)?;
    let mut loaded = programs::load(prog, load)?;
    // A program with an aya-log buffer gets its log streamed (`log`, or a
    // user object built with aya-log); others have no such map.
    let logger = match loaded.ebpf.as_mut() {
        Some(e) => EbpfLogger::init_with_logger(e, StdoutLog).ok(),
        None => EbpfLogger::init_from_id_with_logger(loaded.id(), StdoutLog).ok(),
    };
    let (link, action) = hooks.attach_link(&dev, hook, &loaded, &position, expected_revision).await?;
    let link_id = link.id();
    let logging = if logger.is_some() { "; streaming its log" } else { "" };
    writeln!(
        out,
        "{action} on {} {hook} as link {} (not pinned: it is detached when this process ends){logging}; Ctrl-C or SIGTERM to stop",
        dev.name, link_id
    )
    .and_then(|()| out.flush())
    .map_err(AttachError::Output)?;
    stream_logs(logger, interrupted()).await.map_err(|source| AttachError::Log { prog_id: loaded.id(), source })?;
    drop(link);
    writeln!(out, "detached link {link_id} from {} {hook}", dev.name).map_err(AttachError::Output)?;
    Ok(())
}
