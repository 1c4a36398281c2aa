//! An OTLP/HTTP collector for tests: a real HTTP/1.1 server on 127.0.0.1:0 that records every
//! request (headers and raw body) and answers from a script, then decodes what it received (traces
//! or logs) with opentelemetry-proto. One request per connection (`connection: close`), bodies by Content-Length.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use flate2::read::GzDecoder;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

/// What the collector answers to one request.
#[derive(Clone, Debug)]
pub enum Answer {
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Read the request, then say nothing until the client gives up and closes.
    Hang,
    /// Read the request, then say nothing until the test calls `Collector::release_held`, then
    /// close the connection without an answer.
    Hold,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer::Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with(status: u16, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        Answer::Reply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lowercased names.
    pub headers: BTreeMap<String, String>,
    /// The body as sent (gzipped when content-encoding says so).
    pub body: Vec<u8>,
    /// The status the collector answered with (`None`: it hung).
    pub answered: Option<u16>,
}

impl Received {
    /// The protobuf bytes, gunzipped when the request was gzipped.
    pub fn protobuf(&self) -> Vec<u8> {
        if self.headers.get("content-encoding").map(String::as_str) == Some("gzip") {
            let mut out = Vec::new();
            GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .expect("a valid gzip body");
            out
        } else {
            self.body.clone()
        }
    }

    pub fn decode(&self) -> ExportTraceServiceRequest {
        assert!(self.path.ends_with("/v1/traces"), "{}", self.path);
        ExportTraceServiceRequest::decode(&self.protobuf()[..])
            .expect("body is an ExportTraceServiceRequest")
    }

    pub fn decode_logs(&self) -> ExportLogsServiceRequest {
        assert!(self.path.ends_with("/v1/logs"), "{}", self.path);
        ExportLogsServiceRequest::decode(&self.protobuf()[..])
            .expect("body is an ExportLogsServiceRequest")
    }
}

struct Shared {
    script: Mutex<VecDeque<Answer>>,
    received: Mutex<Vec<Received>>,
    stopping: AtomicBool,
    released: (Mutex<bool>, Condvar),
}

pub struct Collector {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Starts a collector answering `script` in order, then 200 with an empty body.
    pub fn start(script: Vec<Answer>) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            received: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            released: (Mutex::new(false), Condvar::new()),
        });
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if state.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Collector {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Lets every `Answer::Hold` request end (without an answer).
    pub fn release_held(&self) {
        let (released, changed) = &self.shared.released;
        *released.lock().unwrap() = true;
        changed.notify_all();
    }

    /// Drops what is left of the script: every later request is answered 200.
    pub fn heal(&self) {
        self.shared.script.lock().unwrap().clear();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.release_held();
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return; // the wake-up connection
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = BTreeMap::new();
    // A client killed mid-request (the crash tests) leaves a truncated request: drop it.
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("a header line");
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .expect("requests carry a content-length")
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let answer = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::status(200));
    shared.received.lock().unwrap().push(Received {
        method,
        path,
        headers,
        body,
        answered: match &answer {
            Answer::Reply { status, .. } => Some(*status),
            Answer::Hang | Answer::Hold => None,
        },
    });
    let mut stream = stream;
    match answer {
        Answer::Hang => {
            // Returns when the client closes the connection (its timeout) or after 30 s.
            let _ = reader.read_to_end(&mut Vec::new());
        }
        Answer::Hold => {
            let (released, changed) = &shared.released;
            let guard = released.lock().unwrap();
            let _ = changed
                .wait_timeout_while(guard, Duration::from_secs(60), |released| !*released)
                .unwrap();
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        Answer::Reply {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} Answer\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
        }
    }
}
