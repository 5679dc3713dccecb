//! A minimal HTTP/1.1 GET client over `std::net`, enough to fetch data-set files.
//!
//! Plain `http://` only: the Fashion-MNIST mirror serves plain HTTP and every download is
//! checked against a SHA-256, so a TLS stack (a large share of this crate's build time)
//! buys nothing here. Redirects to `http://` URLs, `Content-Length`, chunked bodies and
//! bodies closed by the server are handled; a body cut short is an error.

use crate::{DataError, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const MAX_REDIRECTS: usize = 5;
const MAX_HEAD_BYTES: usize = 64 << 10;
const TIMEOUT: Duration = Duration::from_secs(30);

struct Url {
    host: String,
    port: u16,
    path: String,
}

fn err(url: &str, msg: impl Into<String>) -> DataError {
    DataError::Download {
        url: url.to_string(),
        msg: msg.into(),
    }
}

fn parse_url(url: &str) -> Result<Url> {
    let rest = match url.strip_prefix("http://") {
        Some(r) => r,
        None if url.starts_with("https://") => {
            return Err(err(
                url,
                "https is not supported by the built-in client; use a plain-http mirror \
                 or put the files in a data directory",
            ))
        }
        None => return Err(err(url, "not an http:// URL")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or_else(|| err(url, "unclosed '[' in host"))?;
        let port = v6[end + 1..].strip_prefix(':');
        (&v6[..end], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| err(url, format!("bad port {p:?}")))?,
        None => 80,
    };
    if host.is_empty() {
        return Err(err(url, "no host"));
    }
    Ok(Url {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

/// Fetch `url` and write its body to `sink`; `progress(done, total)` is called as bytes arrive.
/// Returns the number of body bytes.
pub fn get(url: &str, sink: &mut dyn Write, progress: &mut dyn FnMut(u64, Option<u64>)) -> Result<u64> {
    let mut current = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        match get_once(&current, sink, progress)? {
            Outcome::Done(n) => return Ok(n),
            Outcome::Redirect(loc) => {
                current = if loc.starts_with('/') {
                    let u = parse_url(&current)?;
                    format!("http://{}:{}{}", u.host, u.port, loc)
                } else {
                    loc
                };
            }
        }
    }
    Err(err(url, format!("more than {MAX_REDIRECTS} redirects")))
}

enum Outcome {
    Done(u64),
    Redirect(String),
}

fn get_once(url: &str, sink: &mut dyn Write, progress: &mut dyn FnMut(u64, Option<u64>)) -> Result<Outcome> {
    let u = parse_url(url)?;
    let addrs: Vec<_> = (u.host.as_str(), u.port)
        .to_socket_addrs()
        .map_err(|e| err(url, format!("cannot resolve {}: {e}", u.host)))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let stream = stream.ok_or_else(|| {
        err(
            url,
            format!(
                "cannot connect: {}",
                last.map_or("no address".into(), |e| e.to_string())
            ),
        )
    })?;
    let io = |e: std::io::Error| err(url, e.to_string());
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let host_header = if u.port == 80 {
        u.host.clone()
    } else {
        format!("{}:{}", u.host, u.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: nabla-data\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
        u.path
    );
    (&stream).write_all(request.as_bytes()).map_err(io)?;
    let mut r = BufReader::new(stream);

    let (status, headers) = read_head(&mut r, url)?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if matches!(status, 301 | 302 | 303 | 307 | 308) {
        let loc = header("location").ok_or_else(|| err(url, format!("HTTP {status} without Location")))?;
        return Ok(Outcome::Redirect(loc.to_string()));
    }
    if status != 200 {
        return Err(err(url, format!("HTTP status {status}")));
    }
    let chunked = header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let total = match header("content-length") {
        Some(v) if !chunked => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| err(url, format!("bad Content-Length {v:?}")))?,
        ),
        _ => None,
    };
    let mut done = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    let mut copy = |r: &mut dyn Read, want: Option<u64>, done: &mut u64| -> Result<u64> {
        let mut got = 0u64;
        loop {
            let cap = want.map_or(buf.len() as u64, |w| (w - got).min(buf.len() as u64)) as usize;
            if cap == 0 {
                return Ok(got);
            }
            let n = match r.read(&mut buf[..cap]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(err(url, format!("reading the body: {e}"))),
            };
            if n == 0 {
                return Ok(got);
            }
            sink.write_all(&buf[..n])
                .map_err(|e| err(url, format!("writing: {e}")))?;
            got += n as u64;
            *done += n as u64;
            progress(*done, total);
        }
    };
    if chunked {
        loop {
            let size = read_line(&mut r, url)?;
            let size = size.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| err(url, format!("bad chunk size {size:?}")))?;
            if size == 0 {
                break;
            }
            let got = copy(&mut r, Some(size), &mut done)?;
            if got < size {
                return Err(err(url, format!("connection closed inside a chunk after {done} bytes")));
            }
            read_line(&mut r, url)?;
        }
    } else {
        copy(&mut r, total, &mut done)?;
        if let Some(t) = total {
            if done < t {
                return Err(err(url, format!("connection closed after {done} of {t} bytes")));
            }
        }
    }
    Ok(Outcome::Done(done))
}

fn read_line(r: &mut impl BufRead, url: &str) -> Result<String> {
    let mut line = Vec::new();
    r.by_ref()
        .take(MAX_HEAD_BYTES as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| err(url, format!("reading the response: {e}")))?;
    if !line.ends_with(b"\n") {
        return Err(err(url, "response ended inside a header line"));
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_string())
}

type Head = (u16, Vec<(String, String)>);

fn read_head(r: &mut impl BufRead, url: &str) -> Result<Head> {
    let status_line = read_line(r, url)?;
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let status = match status {
        Some(s) if version.starts_with("HTTP/") => s,
        _ => return Err(err(url, format!("not an HTTP response: {status_line:?}"))),
    };
    let mut headers = Vec::new();
    let mut size = status_line.len();
    loop {
        let line = read_line(r, url)?;
        size += line.len();
        if size > MAX_HEAD_BYTES {
            return Err(err(url, "response headers too long"));
        }
        if line.is_empty() {
            return Ok((status, headers));
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_https_is_refused() {
        let u = parse_url("http://127.0.0.1:8080/a/b.gz").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/a/b.gz")
        );
        let u = parse_url("http://example.org").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = parse_url("http://[::1]:9/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        let e = parse_url("https://example.org/x").err().unwrap().to_string();
        assert!(e.contains("https is not supported"), "{e}");
        assert!(parse_url("http://h:notaport/").is_err());
    }
}
