//! The `nuannan` command line (`docs/contract.md` §10).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use anyhow::Context;

use crate::{self as workers, Role};
use nuannan::config::Settings;
use nuannan::domain::{GeoPoint, Level};
use nuannan::routing::{LocateQuery, Registry};

#[derive(Debug, Parser)]
#[command(name = "nuannan", version, about = "Dispatch pipeline for citizen petitions (暖南诉办)")]
pub struct Cli {
    /// Configuration file layered over config/default.toml (env vars override both).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start every worker role in this process.
    Run,
    /// Start one worker role; run as many processes of it as load needs.
    Worker {
        #[arg(value_enum)]
        role: Role,
    },
    /// Declare the broker topology and exit.
    Topology,
    /// The supervisors' web console on `console.http_addr` (the same as
    /// `worker console`).
    Console,
    /// Feed a short demo stream from all three channels into a running
    /// pipeline, take each petition to its result, and print what became of
    /// each message and what reached the citizen.
    Demo {
        /// Also serve a local stand-in of WeChat's API, the 12345 callback and
        /// the App webhook on this address (point `wechat.api_base`,
        /// `hotline.callback_url` and `app.webhook_url` at it), and print what
        /// it received.
        #[arg(long, value_name = "IP:PORT")]
        standin: Option<String>,
    },
    /// Print the unit a point or an address falls in, as JSON.
    Locate {
        #[arg(long, requires = "lat", conflicts_with = "address", allow_negative_numbers = true)]
        lng: Option<f64>,
        #[arg(long, requires = "lng", allow_negative_numbers = true)]
        lat: Option<f64>,
        #[arg(long, required_unless_present = "lng")]
        address: Option<String>,
        /// Registry file to use instead of the bundled one.
        #[arg(long)]
        registry: Option<PathBuf>,
    },
    /// Print the resolution deadline (RFC 3339, +08:00) for a receipt at `--from`.
    Deadline {
        #[arg(long)]
        from: String,
        #[arg(long)]
        working_days: u8,
    },
    /// Benchmark the pipeline end to end against the raw broker and store
    /// (a fresh namespace and database, removed afterwards).
    Bench(nuannan::bench::BenchArgs),
    /// Print the KPIs of petitions received in a period.
    Report {
        /// First day (YYYY-MM-DD, Asia/Shanghai) or RFC 3339 instant; default: everything.
        #[arg(long)]
        from: Option<String>,
        /// Last day, inclusive (YYYY-MM-DD) or RFC 3339 instant, exclusive; default: now.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum)]
        by: Option<nuannan::report::GroupBy>,
        #[arg(long, value_enum, default_value = "table")]
        format: nuannan::report::Format,
    },
    /// Manage the unit registry in MongoDB.
    Registry {
        #[command(subcommand)]
        action: RegistryAction,
    },
    /// Manage the working-day calendar.
    Calendar {
        #[command(subcommand)]
        action: CalendarAction,
    },
    /// Manage who may do what: broker users and HTTP keys mapped to principals.
    Principals {
        #[command(subcommand)]
        action: PrincipalsAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrincipalsAction {
    /// Validate FILE and make it the principals set (running roles apply it
    /// within 5 s). Changes nothing on the broker.
    Load { file: PathBuf },
    /// As `load`, and also create or update the RabbitMQ users with their
    /// least-privilege permissions and topic permissions.
    Apply {
        file: PathBuf,
        /// How to run rabbitmqctl against the broker, e.g. `docker exec rabbitmq rabbitmqctl`.
        #[arg(long, env = "NUANNAN_RABBITMQCTL", default_value = "rabbitmqctl")]
        rabbitmqctl: String,
    },
    /// Read a console password from stdin and print its argon2id hash, the
    /// `password_hash` of a principal.
    HashPassword,
}

#[derive(Debug, Subcommand)]
pub enum CalendarAction {
    /// Validate a year file (`date,is_workday,day_type,holiday_name_zh`, every
    /// date of one year once), store it for every worker, and recompute the
    /// provisional deadlines of open petitions. Exits non-zero and changes
    /// nothing when the file is wrong.
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum RegistryAction {
    /// Validate FILE and make it the registry routing uses (route workers
    /// pick it up when they start).
    Load { file: PathBuf },
}

pub async fn execute(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Run => workers::run(&settings, &Role::ALL, shutdown_on_signal()).await,
        Command::Worker { role } => workers::run(&settings, &[role], shutdown_on_signal()).await,
        Command::Topology => workers::declare_topology(&settings).await,
        Command::Console => workers::run(&settings, &[Role::Console], shutdown_on_signal()).await,
        Command::Demo { standin } => demo(&settings, standin.as_deref()).await,
        Command::Locate { lng, lat, address, registry } => locate(lng.zip(lat), address, registry),
        Command::Deadline { from, working_days } => deadline(&settings, &from, working_days).await,
        Command::Bench(args) => nuannan::bench::run(&settings, &args).await,
        Command::Report { from, to, by, format } => report(&settings, from, to, by, format).await,
        Command::Registry { action: RegistryAction::Load { file } } => load_registry(&settings, &file).await,
        Command::Calendar { action: CalendarAction::Import { file } } => import_calendar(&settings, &file).await,
        Command::Principals { action: PrincipalsAction::Load { file } } => workers::principals::load(&settings, &file).await,
        Command::Principals { action: PrincipalsAction::Apply { file, rabbitmqctl } } => {
            workers::principals::apply(&settings, &file, &rabbitmqctl).await
        }
        Command::Principals { action: PrincipalsAction::HashPassword } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(!password.is_empty(), "an empty password");
            println!("{}", nuannan::console::hash_password(password));
            Ok(())
        }
    }
}

fn locate(point: Option<(f64, f64)>, address: Option<String>, file: Option<PathBuf>) -> anyhow::Result<()> {
    let registry = match file {
        Some(path) => Registry::from_json(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)?,
        None => Registry::bundled(),
    };
    let point = point.map(|(lng, lat)| GeoPoint::new(lng, lat)).transpose()?;
    let query = LocateQuery { point, address: address.as_deref(), ..Default::default() };
    let out = match registry.locate(&query) {
        Some(l) => {
            let unit = registry.unit(&l.unit);
            serde_json::json!({
                "grid": l.grid,
                "unit": l.unit,
                "level": l.level,
                "name": unit.map(|u| &u.name),
                "located_by": l.by,
                "community": l.unit.at_level(Level::Community),
                "street": l.unit.at_level(Level::Street),
            })
        }
        None => serde_json::json!({ "grid": null, "unit": null, "error": "not_located" }),
    };
    println!("{out}");
    Ok(())
}

/// The deadline as the workers compute it: the same calendar (files and
/// imported years) and the same policy. Warnings go to stderr, so stdout is
/// only ever the instant.
async fn deadline(settings: &Settings, from: &str, working_days: u8) -> anyhow::Result<()> {
    anyhow::ensure!(working_days >= 1, "--working-days must be at least 1");
    let from = chrono::DateTime::parse_from_rfc3339(from).context("--from must be an RFC 3339 instant")?;
    let store = nuannan::store::Store::open(&settings.mongodb).await?;
    let calendar = match store.calendar(&settings.calendar.dir).await {
        Ok(calendar) => calendar,
        Err(e) => {
            eprintln!("nuannan: warning: imported calendar years unavailable ({e:#}); using {} only", settings.calendar.dir.display());
            nuannan::clock::Calendar::from_dir(&settings.calendar.dir)?
        }
    };
    let policy = settings.deadline_policy(nuannan::clock::SharedCalendar::new(calendar));
    let due = policy.resolve_by(from.with_timezone(&chrono::Utc), working_days);
    if policy.provisional(due) {
        eprintln!(
            "nuannan: warning: no official working-day calendar for {}: this deadline is provisional (weekends only); import the year with `nuannan calendar import`",
            due.with_timezone(&chrono_tz::Asia::Shanghai).format("%Y")
        );
    }
    println!("{}", due.with_timezone(&chrono_tz::Asia::Shanghai).to_rfc3339());
    Ok(())
}

async fn import_calendar(settings: &Settings, file: &std::path::Path) -> anyhow::Result<()> {
    let csv = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    // Validate before touching anything: a wrong file changes nothing.
    nuannan::clock::YearFile::parse(&csv).with_context(|| format!("{} is not a valid year file", file.display()))?;
    let store = nuannan::store::Store::open(&settings.mongodb).await?;
    let conn = nuannan::bus::connect(&settings.amqp.url, "nuannan-calendar-import").await?;
    workers::declare_topology(settings).await?;
    let publisher = nuannan::bus::Publisher::open(&conn, workers::topology(settings)).await?;
    let imported = crate::calendar::import(settings, &store, &publisher, &csv).await?;
    let _ = conn.close(200, "done".into()).await;
    println!("{}", serde_json::json!({ "year": imported.year, "recomputed": imported.recomputed, "deadline_changed": imported.changed }));
    Ok(())
}

async fn demo(settings: &Settings, standin: Option<&str>) -> anyhow::Result<()> {
    use workers::standin::{Credentials, StandIn};
    let Some(addr) = standin else { return nuannan::demo::run(settings).await };
    let credentials = Credentials {
        app_id: settings.wechat.app_id.clone(),
        app_secret: settings.wechat.app_secret.clone(),
        hotline_secret: settings.hotline.secret.clone(),
        webhook_secret: settings.app.webhook_secret.clone(),
    };
    let standin = StandIn::start(addr, credentials).await.with_context(|| format!("the stand-in on {addr}"))?;
    nuannan::demo::run(settings).await?;
    println!("\nwhat reached the citizens, as the channels' stand-ins received it ({}):", standin.base_url());
    for r in standin.received() {
        let b = &r.body;
        let (to, text) = match r.remote {
            "wechat" => (b["touser"].clone(), b["text"]["content"].clone()),
            "wechat_template" => (b["touser"].clone(), b["data"]["content"]["value"].clone()),
            "hotline" => (b["order_no"].clone(), b["text"].clone()),
            _ => (b["user_id"].clone(), b["text"].clone()),
        };
        let to = nuannan::telemetry::mask_id(to.as_str().unwrap_or_default());
        println!("  {:<16} to {to:<14} {}", r.remote, text.as_str().unwrap_or_default());
    }
    Ok(())
}

async fn report(
    settings: &Settings,
    from: Option<String>,
    to: Option<String>,
    by: Option<nuannan::report::GroupBy>,
    format: nuannan::report::Format,
) -> anyhow::Result<()> {
    let from = from.map(|s| nuannan::report::instant(&s, false)).transpose().context("--from")?.unwrap_or_default();
    let to = to.map(|s| nuannan::report::instant(&s, true)).transpose().context("--to")?.unwrap_or_else(chrono::Utc::now);
    let store = nuannan::store::Store::open(&settings.mongodb).await?;
    let rows = store.report_rows(from, to, by, None).await?;
    println!("{}", nuannan::report::render(&rows, by, format));
    Ok(())
}

async fn load_registry(settings: &Settings, file: &std::path::Path) -> anyhow::Result<()> {
    let source = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let registry = Registry::from_json(&source)?;
    let store = nuannan::store::Store::open(&settings.mongodb).await?;
    let digest = store.load_registry(&source, &registry).await?;
    println!("{}", serde_json::json!({ "loaded": file, "units": registry.units().count(), "sha256": digest }));
    Ok(())
}

/// Cancelled on SIGTERM or Ctrl-C: consumers stop taking work, finish and
/// ack what is in flight, and close.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing the SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}
