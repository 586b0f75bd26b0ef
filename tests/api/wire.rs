//! On the wire, as HTTP clients other than our own see it: many clients (browsers, oha, the
//! API gateway's HTTP stack) ask for compression and keep connections alive, and acknowledge
//! late. A compressed answer must not wait for the client's delayed ACK (about 40 ms on Linux):
//! 50 sequential requests on one kept-alive connection, for every route's kind of body and
//! every encoding, each answered in a few milliseconds.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::availability::OPEN_WINDOW;
use crate::booking::OLIVIA;
use crate::helpers::{TestApp, spawn_app_with};
use crate::seed::days;

/// HTTP/1.1 by hand, so that nothing in a client library hides how the answer arrives.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(app: &TestApp) -> Connection {
        let address = app.address.trim_start_matches("http://");
        Connection {
            stream: TcpStream::connect(address).await.unwrap(),
            buffer: Vec::new(),
        }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the kept-alive connection");
        self.buffer.extend_from_slice(&chunk[..n]);
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                self.buffer.drain(..end + 2);
                return line;
            }
            self.fill().await;
        }
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buffer.len() < n {
            self.fill().await;
        }
        self.buffer.drain(..n).collect()
    }

    /// One GET; the status, the `Content-Encoding`, and the body's size as sent.
    async fn get(&mut self, path: &str, token: &str, encoding: &str) -> (u16, String, usize) {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: slotgate\r\nAuthorization: Bearer {token}\r\nAccept-Encoding: {encoding}\r\n\r\n"
        );
        self.stream.write_all(request.as_bytes()).await.unwrap();
        let status: u16 = self
            .line()
            .await
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let (mut length, mut chunked, mut coding) = (0, false, String::from("identity"));
        loop {
            let header = self.line().await;
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "transfer-encoding" => chunked = value.contains("chunked"),
                "content-encoding" => coding = value.trim().to_owned(),
                _ => {}
            }
        }
        if !chunked {
            return (status, coding, self.take(length).await.len());
        }
        let mut size = 0;
        loop {
            let chunk = usize::from_str_radix(self.line().await.trim(), 16).unwrap();
            size += self.take(chunk).await.len();
            assert_eq!(self.line().await, "", "chunk end");
            if chunk == 0 {
                return (status, coding, size);
            }
        }
    }
}

async fn fifty_in_a_row(app: &TestApp, path: &str, token: &str, encoding: &str) {
    let mut connection = Connection::open(app).await;
    let mut took = Vec::new();
    let mut seen = None;
    for _ in 0..50 {
        let started = Instant::now();
        let (status, coding, size) = connection.get(path, token, encoding).await;
        took.push(started.elapsed());
        assert_eq!(status, 200, "{path}");
        seen = Some((coding, size));
    }
    took.sort();
    let median = took[took.len() / 2];
    let (coding, size) = seen.unwrap();
    assert!(
        median < Duration::from_millis(20),
        "{path} with Accept-Encoding {encoding} ({coding}, {size} bytes): median {median:?}, slowest {:?}",
        took.last().unwrap()
    );
    if encoding.contains("gzip") {
        assert_eq!(
            coding, "gzip",
            "{path}: compression is kept for clients that ask"
        );
    }
}

#[tokio::test]
async fn kept_alive_answers_never_wait_for_a_delayed_ack_whatever_the_encoding() {
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        "[rate_limit]\nbrowse_per_minute = 1000000\nbook_per_minute = 1000000\n",
    ])
    .await;
    let token = app.staff_token();
    let (start, end) = (days(3), days(9));
    let week = format!(
        "/v1/availability?reason=FLUP&duration=30&state=CA&modality=telehealth&start={start}&end={end}"
    );
    let paths = [
        // About 2 KB, 40 KB, and the other lists: every body size that compresses.
        format!("{week}&limit=5"),
        format!("{week}&limit=100"),
        "/v1/practitioners".to_owned(),
        format!("/v1/appointments?patient_id={OLIVIA}"),
        "/v1/reasons".to_owned(),
        "/v1/locations".to_owned(),
    ];
    for path in &paths {
        for encoding in ["gzip, compress, deflate, br", "gzip", "br", "identity"] {
            fifty_in_a_row(&app, path, &token, encoding).await;
        }
    }
}
