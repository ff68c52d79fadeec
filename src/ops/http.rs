//! `GET /healthz` and `GET /metrics`: a deliberately tiny HTTP/1.1 server,
//! enough for probes and Prometheus scrapes.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::health;

/// Serves until shutdown. A bind failure is logged, not fatal: the
/// pipeline matters more than its dashboard.
pub async fn serve(addr: String, shutdown: CancellationToken) {
    let addr = addr.as_str();
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(addr, error = %e, "cannot serve /healthz and /metrics");
            return;
        }
    };
    if let Ok(local) = listener.local_addr() {
        tracing::info!(addr = %local, "serving /healthz and /metrics");
    }
    loop {
        let (mut socket, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, content_type, body) = respond(path);
            let head =
                format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

fn respond(path: &str) -> (&'static str, &'static str, String) {
    let h = health();
    let (broker, store) = (h.broker_connected(), h.store_connected());
    match path {
        "/healthz" => {
            // A calendar about to run out needs an operator, not a restart: still 200.
            let calendar = if crate::ops::health().calendar_ok() { "ok" } else { "degraded" };
            let body = serde_json::json!({ "broker": broker, "store": store, "calendar": calendar }).to_string();
            let status = if broker && store { "200 OK" } else { "503 Service Unavailable" };
            (status, "application/json", body)
        }
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", super::render_metrics(broker, store)),
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    }
}
