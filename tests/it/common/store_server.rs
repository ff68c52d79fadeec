//! A MongoDB server of the test's own, on a free port, that the test can
//! stop and start: for store outages without touching the shared server.
//! It runs `NUANNAN_FAULT_MONGOD`, default `.venv/bin/secantusd-py` as
//! `./scripts/test` installs it (`mongod` works too).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::wait_up_to;

pub fn mongod_command() -> Option<String> {
    if let Ok(cmd) = std::env::var("NUANNAN_FAULT_MONGOD") {
        return Some(cmd);
    }
    let venv = Path::new(super::ROOT).join(".venv/bin/secantusd-py");
    venv.is_file().then(|| venv.display().to_string())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct StoreServer {
    command: String,
    pub port: u16,
    data: PathBuf,
    logs: PathBuf,
    process: Option<Child>,
}

impl StoreServer {
    /// A server (not started yet) keeping its data and log under `dir`.
    pub fn new(command: String, dir: &Path) -> StoreServer {
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        StoreServer { command, port: free_port(), data: dir.join("db"), logs: dir.join("logs"), process: None }
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    pub async fn start(&mut self) {
        std::fs::create_dir_all(&self.data).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.logs.join("store.log")).unwrap();
        let data = self.data.display().to_string();
        let port = self.port.to_string();
        let args: Vec<&str> = if self.command.ends_with("mongod") {
            vec!["--port", &port, "--dbpath", &data, "--bind_ip", "127.0.0.1"]
        } else {
            vec!["--port", &port, "--storage-path", &data]
        };
        let child = Command::new(&self.command).args(args).stdout(log.try_clone().unwrap()).stderr(log).kill_on_drop(true).spawn().unwrap();
        self.process = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        wait_up_to("the store to accept connections", Duration::from_secs(60), || async {
            tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ())
        })
        .await;
    }

    /// A clean stop (SIGTERM), as an operator's restart does.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let pid = child.id().unwrap().to_string();
            let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
            if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }

    pub async fn stop_and_restart(&mut self, down: Duration) -> String {
        self.stop().await;
        tokio::time::sleep(down).await;
        self.start().await;
        format!("MongoDB stopped for {down:?} and restarted")
    }
}
