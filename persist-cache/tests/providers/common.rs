//! Helpers: the shared Redis, unique prefixes, own `redis-server`s, timeouts.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use persist_core::cache::{CacheKey, ChangeSet};

pub const SHARED_URL: &str = "redis://127.0.0.1:6379";

/// Runs a test body with a deadline.
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test timed out")
}

pub fn key(region: &str, key: impl ToString) -> CacheKey {
    CacheKey {
        region: region.into(),
        key: key.to_string(),
    }
}

pub fn keys_changed(keys: &[CacheKey]) -> ChangeSet {
    ChangeSet {
        keys: keys.to_vec(),
        regions: vec![],
        tables: keys.iter().map(|k| k.region.clone()).collect(),
    }
}

fn ping(url: &str) -> bool {
    let Ok(client) = ::redis::Client::open(url) else {
        return false;
    };
    let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    ::redis::cmd("PING").query::<String>(&mut c).is_ok()
}

/// A unique key prefix on the shared Redis, its keys deleted on drop; `None`
/// (after saying so loudly) when Redis is unreachable outside CI.
pub struct Prefix {
    pub name: String,
}

impl Prefix {
    pub fn new(test: &str) -> Option<Prefix> {
        if !ping(SHARED_URL) {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("Redis at {SHARED_URL} is unreachable, and CI=true");
            }
            eprintln!(
                "SKIPPED {test}: Redis at {SHARED_URL} is unreachable (set CI=true to fail instead)"
            );
            return None;
        }
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let n = N.fetch_add(1, Ordering::SeqCst);
        Some(Prefix {
            name: format!(
                "persist-cache-test-{test}-{}-{nanos}-{n}",
                std::process::id()
            ),
        })
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(client) = ::redis::Client::open(SHARED_URL) else {
            return;
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return;
        };
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.name))
                .arg("COUNT")
                .arg(1000)
                .query::<(u64, Vec<String>)>(&mut c)
            else {
                return;
            };
            if !keys.is_empty() {
                let _ = ::redis::cmd("DEL").arg(&keys).query::<i64>(&mut c);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

/// A `redis-server` of the test's own on a spare port (no persistence),
/// killed on drop.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> OwnRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = OwnRedis { port, child: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(&self.url()) {
            assert!(Instant::now() < deadline, "own redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: an outage without
    /// data loss.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        assert!(
            Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Percentile of sorted durations.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// A TCP proxy in front of a Redis that the test can cut (a network
/// partition: this client cannot reach Redis, others can) and restore.
pub struct Proxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: u16) -> Proxy {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accept = {
            let (cut, conns) = (cut.clone(), conns.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is closed at once
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) =
                            tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                        {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    conns.lock().unwrap().push(task.abort_handle());
                }
            })
        };
        Proxy {
            port,
            cut,
            conns,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Closes every proxied connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
