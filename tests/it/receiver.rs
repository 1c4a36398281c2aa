//! A real HTTP receiver on 127.0.0.1:0 for webhook tests: records every request (headers, exact
//! body bytes, arrival time) and answers as the test's `Behaviour` says, including hanging.
//! Plus signature checks written from the specs, independently of opslog's signer.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::support::eventually;

#[derive(Clone, Debug)]
pub struct Captured {
    pub path: String,
    /// Lowercase names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Captured {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("the body is UTF-8")
    }
}

/// How to answer a request.
#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16, &'static str),
    WithHeaders(u16, Vec<(&'static str, String)>),
    /// Accept the request, then answer nothing until the receiver is dropped.
    Hang,
    /// A slow receiver: answer with this status after this long.
    Slow(Duration, u16),
}

type Behaviour = Box<dyn FnMut(&Captured, usize) -> Answer + Send>;

struct Shared {
    requests: Mutex<Vec<Captured>>,
    behaviour: Mutex<Behaviour>,
    released: Mutex<bool>,
    release: Condvar,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Always answers 200.
    pub fn ok() -> Receiver {
        Receiver::start(|_, _| Answer::Status(200, "ok"))
    }

    /// `behaviour(request, index)` decides each answer; `index` counts requests from 0.
    pub fn start(behaviour: impl FnMut(&Captured, usize) -> Answer + Send + 'static) -> Receiver {
        Receiver::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), behaviour)
    }

    pub fn start_on(
        listener: TcpListener,
        behaviour: impl FnMut(&Captured, usize) -> Answer + Send + 'static,
    ) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            behaviour: Mutex::new(Box::new(behaviour)),
            released: Mutex::new(false),
            release: Condvar::new(),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if *accepting.released.lock().unwrap() {
                    return; // dropped
                }
                let shared = accepting.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Receiver { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Changes how later requests are answered.
    pub fn set_behaviour(
        &self,
        behaviour: impl FnMut(&Captured, usize) -> Answer + Send + 'static,
    ) {
        *self.shared.behaviour.lock().unwrap() = Box::new(behaviour);
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits (polling, up to `limit`) until at least `n` requests arrived; returns them all.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Captured> {
        eventually(limit, || {
            let requests = self.requests();
            (requests.len() >= n).then_some(requests)
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        *self.shared.released.lock().unwrap() = true;
        self.shared.release.notify_all();
        let _ = TcpStream::connect(self.addr); // wakes the accept loop so it sees the flag
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let captured = Captured {
        path,
        headers,
        body,
        at: Instant::now(),
    };
    let answer = {
        let mut requests = shared.requests.lock().unwrap();
        let index = requests.len();
        requests.push(captured.clone());
        (shared.behaviour.lock().unwrap())(&captured, index)
    };
    let answer = match answer {
        Answer::Slow(after, status) => {
            let released = shared.released.lock().unwrap();
            drop(shared.release.wait_timeout(released, after).unwrap());
            Answer::Status(status, "slow")
        }
        other => other,
    };
    let (status, extra, text) = match answer {
        Answer::Status(status, text) => (status, Vec::new(), text.to_owned()),
        Answer::WithHeaders(status, extra) => (status, extra, String::new()),
        Answer::Slow(..) => unreachable!("answered above"),
        Answer::Hang => {
            let mut released = shared.released.lock().unwrap();
            while !*released {
                released = shared.release.wait(released).unwrap();
            }
            return;
        }
    };
    let mut response = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        text.len()
    );
    for (name, value) in extra {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&text);
    let mut stream = stream;
    let _ = stream.write_all(response.as_bytes());
}

/// Standard Webhooks verification, from the spec: HMAC-SHA256 keyed with the base64-decoded
/// part of `whsec_...` over `{webhook-id}.{webhook-timestamp}.{body}`; the header lists
/// space-separated `v1,<base64>` signatures, any of which may match.
pub fn verify_standard(secret: &str, request: &Captured) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    let signed = [
        request.header("webhook-id").as_bytes(),
        b".",
        request.header("webhook-timestamp").as_bytes(),
        b".",
        &request.body,
    ]
    .concat();
    mac.update(&signed);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    request
        .header("webhook-signature")
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

/// `X-Nango-Signature` verification: lowercase hex HMAC-SHA256 of the raw body keyed with the
/// whole secret string.
pub fn verify_nango(secret: &str, request: &Captured) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&request.body);
    let expected = hex::encode(mac.finalize().into_bytes());
    request.header("x-nango-signature") == expected
        && request.header("x-nango-hmac-sha256") == expected
}

/// A port nothing listens on (yet): bound, then released.
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
