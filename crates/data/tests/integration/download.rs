//! Finding Fashion-MNIST and downloading it from a local plain-HTTP server run by the test.

use super::common::{write_fashion_set, TempDir};
use nabla_data::{sha256_file, DataError, Dataset, FashionMnist, ReadLimits, RemoteFile, Split};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
enum Route {
    Ok(Vec<u8>),
    Chunked(Vec<u8>),
    /// Declares the full length but closes after half the body.
    Cut(Vec<u8>),
    Status(u16),
    Redirect(String),
}

/// A one-thread HTTP server on 127.0.0.1 that stops when dropped (or after 60 s by itself).
struct Server {
    base: String,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(routes: HashMap<String, Route>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        h.fetch_add(1, Ordering::Relaxed);
                        let _ = respond(stream, &routes);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Server {
            base,
            hits,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn respond(mut stream: TcpStream, routes: &HashMap<String, Route>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/');
    match routes.get(path).cloned().unwrap_or(Route::Status(404)) {
        Route::Ok(body) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)
        }
        Route::Chunked(body) => {
            write!(stream, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            for c in body.chunks(1000) {
                write!(stream, "{:x};ext=1\r\n", c.len())?;
                stream.write_all(c)?;
                stream.write_all(b"\r\n")?;
            }
            stream.write_all(b"0\r\n\r\n")
        }
        Route::Cut(body) => {
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())?;
            stream.write_all(&body[..body.len() / 2])
        }
        Route::Status(code) => write!(stream, "HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\n\r\n"),
        Route::Redirect(to) => write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"
        ),
    }
}

/// A small Fashion-MNIST-named set, its files as served routes and their digests.
fn fixture(dir: &Path) -> (HashMap<String, Vec<u8>>, Vec<RemoteFile>) {
    write_fashion_set(dir, 30, 10);
    let mut bodies = HashMap::new();
    let mut files = Vec::new();
    for f in nabla_data::fashion_mnist_files() {
        let p = dir.join(&f.name);
        bodies.insert(f.name.clone(), std::fs::read(&p).unwrap());
        files.push(RemoteFile {
            name: f.name.clone(),
            sha256: sha256_file(&p).unwrap(),
        });
    }
    (bodies, files)
}

fn source(cache: &Path, mirror: &str, files: Vec<RemoteFile>) -> FashionMnist {
    FashionMnist {
        data_dir: None,
        env_dir: None,
        system_dir: None,
        cache_dir: Some(cache.to_path_buf()),
        mirror: mirror.to_string(),
        files,
        download: true,
        progress: false,
        limits: ReadLimits::default(),
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn downloads_into_the_cache_once_and_verifies() {
    let src = TempDir::new("dl-src");
    let (bodies, files) = fixture(src.path());
    let mut routes: HashMap<String, Route> = HashMap::new();
    for (name, body) in &bodies {
        let route = if name.starts_with("train-images") {
            Route::Chunked(body.clone())
        } else {
            Route::Ok(body.clone())
        };
        routes.insert(format!("new/{name}"), route);
        routes.insert(format!("old/{name}"), Route::Redirect(format!("/new/{name}")));
    }
    let server = Server::start(routes);
    let cache = TempDir::new("dl-cache");
    let cache_dir = cache.path().join("nested/fashion-mnist");
    let fm = source(&cache_dir, &format!("{}old", server.base), files);
    let train = fm.load(Split::Train).unwrap();
    assert_eq!((train.len(), train.image_shape()), (30, [1, 28, 28]));
    assert_eq!(train.classes()[0], "T-shirt/top");
    assert_eq!(fm.load(Split::Test).unwrap().len(), 10);
    // Four files, each fetched through a redirect: eight requests, and no temporary left.
    assert_eq!(server.hits.load(Ordering::Relaxed), 8);
    let mut want: Vec<String> = bodies.keys().cloned().collect();
    want.sort();
    assert_eq!(listing(&cache_dir), want);
    for name in &want {
        assert_eq!(&std::fs::read(cache_dir.join(name)).unwrap(), &bodies[name]);
    }
    assert_eq!(fm.locate().unwrap(), cache_dir);
    assert_eq!(
        server.hits.load(Ordering::Relaxed),
        8,
        "a cached set is not fetched again"
    );
}

fn failed_download(route: impl Fn(&str, &[u8]) -> Route, files: Option<Vec<RemoteFile>>) -> (DataError, Vec<String>) {
    let src = TempDir::new("dl-src");
    let (bodies, real) = fixture(src.path());
    let routes = bodies.iter().map(|(n, b)| (n.clone(), route(n, b))).collect();
    let server = Server::start(routes);
    let cache = TempDir::new("dl-cache");
    let fm = source(cache.path(), &server.base, files.unwrap_or(real));
    let e = fm.locate().unwrap_err();
    (e, listing(cache.path()))
}

#[test]
fn a_wrong_digest_leaves_no_file() {
    let src = TempDir::new("dl-src");
    let (_, mut files) = fixture(src.path());
    files[1].sha256 = "00".repeat(32);
    let (e, left) = failed_download(|_, b| Route::Ok(b.to_vec()), Some(files));
    match e {
        DataError::Checksum { path, expected, .. } => {
            assert!(path.ends_with("train-labels-idx1-ubyte.gz"), "{path:?}");
            assert_eq!(expected, "00".repeat(32));
        }
        other => panic!("{other:?}"),
    }
    // The first file was complete and verified; the failing one left nothing behind.
    assert_eq!(left, ["train-images-idx3-ubyte.gz"]);
}

#[test]
fn a_cut_download_leaves_no_file() {
    let (e, left) = failed_download(|_, b| Route::Cut(b.to_vec()), None);
    match e {
        DataError::Download { url, msg } => {
            assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/train-images-idx3-ubyte.gz"));
            assert!(msg.contains("connection closed after"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn http_errors_are_reported() {
    let (e, left) = failed_download(|_, _| Route::Status(404), None);
    assert!(e.to_string().contains("HTTP status 404"), "{e}");
    assert!(left.is_empty());
    let (e, _) = failed_download(|n, _| Route::Redirect(format!("/{n}")), None);
    assert!(e.to_string().contains("redirects"), "{e}");
}

#[test]
fn search_order_explicit_env_system_cache() {
    let root = TempDir::new("dl-order");
    let dir = |n: &str| -> PathBuf { root.path().join(n) };
    write_fashion_set(&dir("explicit"), 11, 1);
    write_fashion_set(&dir("env/fashion-mnist"), 12, 1);
    write_fashion_set(&dir("system"), 13, 1);
    write_fashion_set(&dir("cache"), 14, 1);
    let mut fm = FashionMnist {
        data_dir: Some(dir("explicit")),
        env_dir: Some(dir("env")),
        system_dir: Some(dir("system")),
        download: false,
        ..source(&dir("cache"), "http://127.0.0.1:9/", vec![])
    };
    let n = |fm: &FashionMnist| fm.load(Split::Train).unwrap().len();
    assert_eq!(n(&fm), 11);
    fm.data_dir = Some(dir("nothing-here"));
    assert_eq!(n(&fm), 12);
    fm.env_dir = None;
    assert_eq!(n(&fm), 13);
    fm.system_dir = None;
    assert_eq!(n(&fm), 14);
    fm.cache_dir = Some(dir("empty-cache"));
    match fm.locate() {
        Err(e @ DataError::NotFound { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("nothing-here") && m.contains("empty-cache") && m.contains("downloading is off"),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Raw (un-gzipped) files count too.
    let raw = dir("raw");
    std::fs::create_dir_all(&raw).unwrap();
    for f in nabla_data::fashion_mnist_files() {
        let gz = std::fs::read(dir("explicit").join(&f.name)).unwrap();
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut plain).unwrap();
        std::fs::write(raw.join(f.name.trim_end_matches(".gz")), plain).unwrap();
    }
    fm.data_dir = Some(raw);
    assert_eq!(n(&fm), 11);
}
