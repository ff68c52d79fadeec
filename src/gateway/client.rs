//! A minimal HTTP/1.1 client over a TCP stream (`Connection: close`), enough
//! to drive the gateway byte for byte, bad bodies included: what the demo
//! (as the channels) and the tests use. Not for production traffic.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Status, header block and body of one request; `None` if nothing listens.
pub async fn exchange(addr: &str, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.ok()?;
    // A server may answer (413) before reading a large body: a failed write is not an error.
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let header = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = header.split_whitespace().nth(1)?.parse().ok()?;
    let mut rest = out[split + 4..].to_vec();
    if header.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        rest = dechunk(&rest);
    }
    Some((status, header, rest))
}

pub async fn request(addr: &str, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Option<(u16, Vec<u8>)> {
    exchange(addr, method, path, headers, body).await.map(|(status, _, body)| (status, body))
}

pub async fn request_headers(addr: &str, method: &str, path: &str) -> Option<(u16, String)> {
    exchange(addr, method, path, &[], b"").await.map(|(status, headers, _)| (status, headers))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}
