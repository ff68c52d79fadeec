//! `nuannan principals load|apply FILE` (`docs/contract.md` §13). Both
//! validate the whole file first (a wrong file changes nothing), check each
//! unit against the registry, and replace the `principals` collection.
//! `apply` also makes the broker match: users, tags, vhost and topic
//! permissions, through `rabbitmqctl` (`export_definitions`, one
//! `import_definitions`, `clear_topic_permissions` for stale ones).
//!
//! Why `rabbitmqctl` and not the management API: it needs no management
//! plugin or HTTP admin port (least surface), it is present wherever the
//! broker is, and one definitions import sets everything at once. A command
//! prefix such as `docker exec rabbitmq rabbitmqctl` reaches a broker in a
//! container (`--rabbitmqctl` / `NUANNAN_RABBITMQCTL`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use nuannan::config::Settings;
use nuannan::identity::{self, Definitions, Principals};
use nuannan::store::Store;
use tokio::io::AsyncWriteExt;

/// Validates `file` against the registry; the warnings go to stderr.
async fn read(store: &Store, file: &Path) -> anyhow::Result<Principals> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed = Principals::parse(&text).with_context(|| format!("{} is not a valid principals file", file.display()))?;
    for warning in &parsed.warnings {
        eprintln!("nuannan: warning: {}: {warning}", file.display());
    }
    let registry = store.registry().await.context("reading the unit registry")?;
    for p in parsed.principals.iter() {
        if let Some(unit) = &p.unit
            && registry.unit(unit).is_none()
        {
            bail!("{}: `{}` names unit `{unit}`, which is not in the registry", file.display(), p.user);
        }
    }
    Ok(parsed.principals)
}

pub async fn load(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let store = Store::open(&settings.mongodb).await?;
    let principals = read(&store, file).await?;
    store.replace_principals(&principals).await.context("writing the principals")?;
    println!("{}", serde_json::json!({ "loaded": file, "principals": principals.len() }));
    Ok(())
}

/// Passwords of broker users come from `NUANNAN_PASSWORD_<USER>` (the user
/// name upper-cased, `-` as `_`) when set; a new user without one gets a
/// random password, printed once on stdout. Existing users keep theirs.
pub async fn apply(settings: &Settings, file: &Path, rabbitmqctl: &str) -> anyhow::Result<()> {
    let store = Store::open(&settings.mongodb).await?;
    let principals = read(&store, file).await?;
    let ctl = Rabbitmqctl::new(rabbitmqctl)?;
    // Every node of a cluster serves the same vhost; users are cluster-wide.
    let first = nuannan::bus::endpoints(&settings.amqp.url).first().copied().unwrap_or_default();
    let vhost = first.parse::<lapin::uri::AMQPUri>().map_err(anyhow::Error::msg).context("amqp.url")?.vhost;
    let current: Definitions =
        serde_json::from_slice(&ctl.run(&["export_definitions", "-"], None).await?).context("reading rabbitmqctl export_definitions")?;
    let mut passwords = BTreeMap::new();
    let mut generated = Vec::new();
    for p in principals.iter() {
        let user = p.user.as_str();
        if let Ok(password) = std::env::var(nuannan::identity::password_var(user)) {
            passwords.insert(user.to_owned(), password);
        } else if !current.users.iter().any(|u| u.name == user) {
            let password = random_password();
            generated.push((user.to_owned(), password.clone()));
            passwords.insert(user.to_owned(), password);
        }
    }
    let plan = identity::plan(&current, &principals, &settings.namespace, &vhost, &passwords, &mut random_salt)?;
    let import = serde_json::to_vec(&plan.import)?;
    ctl.run(&["import_definitions", "--format", "json"], Some(&import)).await?;
    for (user, exchange) in &plan.clear_topics {
        ctl.run(&["clear_topic_permissions", "-p", &vhost, user, exchange], None).await?;
    }
    // RabbitMQ calls the import asynchronous: report success only once the
    // broker shows every user with its permission.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let now: Definitions = serde_json::from_slice(&ctl.run(&["export_definitions", "-"], None).await?)?;
        let applied = plan.import.users.iter().all(|u| now.users.iter().any(|n| n.name == u.name && n.tags == u.tags))
            && plan.import.permissions.iter().all(|p| now.permissions.contains(p));
        if applied {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the broker did not show the imported users within 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    store.replace_principals(&principals).await.context("writing the principals")?;
    for (user, password) in &generated {
        println!("{}", serde_json::json!({ "user": user, "password": password }));
    }
    println!("{}", serde_json::json!({ "applied": file, "principals": principals.len(), "created": plan.created, "vhost": vhost }));
    Ok(())
}

fn random_password() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn random_salt() -> [u8; 4] {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    [bytes[0], bytes[1], bytes[2], bytes[3]]
}

struct Rabbitmqctl {
    program: String,
    prefix: Vec<String>,
}

impl Rabbitmqctl {
    fn new(command: &str) -> anyhow::Result<Self> {
        let mut words = command.split_whitespace().map(str::to_owned);
        let program = words.next().context("--rabbitmqctl is empty")?;
        Ok(Rabbitmqctl { program, prefix: words.collect() })
    }

    async fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.prefix)
            .args(args)
            .arg("--quiet")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.program))?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            let input = input.to_vec();
            // Written alongside the read below, so a full pipe cannot stall either.
            tokio::spawn(async move {
                let _ = pipe.write_all(&input).await;
            });
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!("rabbitmqctl {} failed: {}", args[0], String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(out.stdout)
    }
}
