//! `netkit metrics --listen ADDR`: the programs' numbers in the Prometheus
//! exposition format over HTTP, for a scrape (a DaemonSet on every node).
//! Each connection is its own task and each scrape reads the kernel afresh
//! (the map reads on the blocking pool), so a slow scrape holds up no other;
//! requests are bounded (header size and read time); anything but GET or
//! HEAD of /metrics gets 404 or 405.

use std::{convert::Infallible, io::Write, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context as _, Result};
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
};
use hyper_util::rt::{TokioIo, TokioTimer};

use netkit::{
    hooks::Hooks,
    maps::{prometheus, stats},
    netlink::Netlink,
    os::netns,
};

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves until SIGINT or SIGTERM.
pub async fn serve(bpffs: PathBuf, listen: SocketAddr, err: &mut impl Write) -> Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    let netns = netns::current_name();
    writeln!(err, "serving http://{}/metrics (namespace {netns}); Ctrl-C to stop", listener.local_addr()?)?;
    err.flush()?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A full fd table or an aborted handshake: the next one may work.
                Err(_) => continue,
            },
            () = super::run::interrupted() => return Ok(ExitCode::SUCCESS),
        };
        let (bpffs, netns) = (bpffs.clone(), netns.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| respond(req, bpffs.clone(), netns.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(16 * 1024)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn respond(req: Request<Incoming>, bpffs: PathBuf, netns: String) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/metrics" {
        return Ok(reply(StatusCode::NOT_FOUND, "not found: the metrics are at /metrics\n"));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    match scrape(bpffs, netns).await {
        Ok(text) => {
            let head = req.method() == Method::HEAD;
            let mut r = reply(StatusCode::OK, if head { String::new() } else { text });
            r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(CONTENT_TYPE));
            Ok(r)
        }
        Err(e) => Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n"))),
    }
}

/// Reads every hook of the namespace and its programs' numbers now.
async fn scrape(bpffs: PathBuf, netns: String) -> Result<String> {
    let nl = Netlink::connect()?;
    let hooks = Hooks { nl: &nl, bpffs };
    let views = hooks.query(None, None).await?;
    let defunct = hooks.defunct_here();
    let text =
        tokio::task::spawn_blocking(move || prometheus::exposition(&stats::hooks(&views, false), &netns, defunct))
            .await
            .context("reading the programs' maps")?;
    Ok(text)
}
