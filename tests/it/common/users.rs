//! Real RabbitMQ users for a test, made by `nuannan principals apply` (as
//! an operator does) and removed when dropped, even if the test fails.

use std::process::Command;

use nuannan::config::Settings;

/// How to run rabbitmqctl against the test broker: `NUANNAN_RABBITMQCTL`
/// (e.g. `docker exec <container> rabbitmqctl`), else the local one.
pub fn rabbitmqctl() -> String {
    std::env::var("NUANNAN_RABBITMQCTL").unwrap_or_else(|_| super::rabbitmqctl_default())
}

pub struct BrokerUsers {
    names: Vec<String>,
    pub passwords: Vec<(String, String)>,
    /// What `principals apply` printed.
    pub stdout: String,
}

impl BrokerUsers {
    /// Applies `principals` (the body of a principals file, user names as
    /// given) with a known password for each user.
    pub fn apply(settings: &Settings, users: &[&str], principals: &str) -> BrokerUsers {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("principals.toml");
        std::fs::write(&file, principals).unwrap();
        let passwords: Vec<(String, String)> =
            users.iter().map(|u| (u.to_string(), format!("pw-{}", uuid::Uuid::new_v4().simple()))).collect();
        // Removed on drop from here on, whatever apply did.
        let mut guard = BrokerUsers { names: users.iter().map(|u| u.to_string()).collect(), passwords, stdout: String::new() };
        let out = Command::new(env!("CARGO_BIN_EXE_nuannan"))
            .args(["principals", "apply", file.to_str().unwrap(), "--rabbitmqctl", &rabbitmqctl()])
            .envs(super::settings_env(settings))
            .envs(guard.passwords.iter().map(|(u, p)| (nuannan::identity::password_var(u), p.clone())))
            .output()
            .expect("running nuannan principals apply");
        assert!(out.status.success(), "principals apply failed: {}", String::from_utf8_lossy(&out.stderr));
        guard.stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        guard
    }

    /// `settings.amqp.url` with `user`'s login instead.
    pub fn url(&self, settings: &Settings, user: &str) -> String {
        let password = &self.passwords.iter().find(|(u, _)| u == user).expect("a user of this test").1;
        let uri: lapin::uri::AMQPUri = settings.amqp.url.parse().unwrap();
        let vhost = if uri.vhost == "/" { "%2f".to_owned() } else { uri.vhost };
        format!("amqp://{user}:{password}@{}:{}/{vhost}", uri.authority.host, uri.authority.port)
    }

    pub async fn connect(&self, settings: &Settings, user: &str) -> lapin::Connection {
        nuannan::bus::connect(&self.url(settings, user), &format!("nuannan-test-{user}")).await.expect("logging in as a test user")
    }
}

impl Drop for BrokerUsers {
    fn drop(&mut self) {
        let ctl = rabbitmqctl();
        let mut words = ctl.split_whitespace();
        let program = words.next().unwrap().to_owned();
        let prefix: Vec<&str> = words.collect();
        for name in &self.names {
            let _ = Command::new(&program).args(&prefix).args(["-q", "delete_user", name]).output();
        }
    }
}
