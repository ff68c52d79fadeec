//! Test harness: the real broker and store. `NUANNAN_TEST_AMQP_URL` and
//! `NUANNAN_TEST_MONGODB_URI` point at running servers; without them the
//! servers are started once per test binary with testcontainers. Every
//! test gets its own namespace and database.

pub mod commands;
pub mod schemas;
pub mod store_server;
pub mod tap;
pub mod users;

use std::future::Future;
use std::time::Duration;

use mongodb::bson::{Document, doc};
use nuannan::bus::{self, Exchange, Outgoing, Publisher};
use nuannan::config::Settings;
use nuannan::store::Store;
use nuannan_workers::{self as workers, Role};
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt, core::ExecCommand, runners::AsyncRunner};
use testcontainers_modules::{mongo::Mongo, rabbitmq::RabbitMq};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

pub use tap::Tap;

/// The repository's top level (this test binary belongs to `workers/`).
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

struct Servers {
    amqp_url: String,
    /// `docker exec <container> rabbitmqctl` when the broker is a test container.
    rabbitmqctl: String,
    mongodb_uri: String,
    _containers: Option<(ContainerAsync<RabbitMq>, ContainerAsync<Mongo>)>,
}

static SERVERS: OnceCell<Servers> = OnceCell::const_new();

async fn servers() -> &'static Servers {
    SERVERS
        .get_or_init(|| async {
            match (std::env::var("NUANNAN_TEST_AMQP_URL"), std::env::var("NUANNAN_TEST_MONGODB_URI")) {
                (Ok(amqp_url), Ok(mongodb_uri)) => Servers { amqp_url, mongodb_uri, rabbitmqctl: "rabbitmqctl".into(), _containers: None },
                _ => start_containers().await,
            }
        })
        .await
}

async fn start_containers() -> Servers {
    let rabbit = RabbitMq::default()
        .with_tag("3.13-management")
        .start()
        .await
        .expect("starting RabbitMQ (set NUANNAN_TEST_AMQP_URL to use a running one)");
    // The harness acts for many principals, as the gateway does (see commands.rs).
    let tag = ExecCommand::new(["rabbitmqctl", "set_user_tags", "guest", "administrator", "impersonator"]);
    rabbit.exec(tag).await.expect("tagging guest as an impersonator");
    let mongo =
        Mongo::repl_set().with_tag("7.0").start().await.expect("starting MongoDB (set NUANNAN_TEST_MONGODB_URI to use a running one)");
    let amqp_url =
        format!("amqp://guest:guest@{}:{}/%2f", rabbit.get_host().await.unwrap(), rabbit.get_host_port_ipv4(5672).await.unwrap());
    let mongodb_uri =
        format!("mongodb://{}:{}/?directConnection=true", mongo.get_host().await.unwrap(), mongo.get_host_port_ipv4(27017).await.unwrap());
    let rabbitmqctl = format!("docker exec {} rabbitmqctl", rabbit.id());
    Servers { amqp_url, mongodb_uri, rabbitmqctl, _containers: Some((rabbit, mongo)) }
}

/// How tests reach the broker's rabbitmqctl when `NUANNAN_RABBITMQCTL` is not set.
pub fn rabbitmqctl_default() -> String {
    SERVERS.get().map_or_else(|| "rabbitmqctl".to_owned(), |s| s.rabbitmqctl.clone())
}

/// Settings for a fresh namespace and database, as env vars would give them.
pub async fn test_settings() -> Settings {
    let servers = servers().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut settings = Settings::load(None).expect("default configuration loads");
    settings.namespace = format!("test-{}", &id[..12]);
    settings.mongodb.database = format!("test_{}", &id[..12]);
    settings.amqp.url = servers.amqp_url.clone();
    settings.mongodb.uri = servers.mongodb_uri.clone();
    settings.ops.http_addr = String::new();
    settings.gateway.http_addr = String::new();
    settings.console.http_addr = String::new();
    // Hot spots are looked for by the tests that expect them.
    settings.hotspot.scan_interval_ms = 0;
    // Tests run from workers/; the bundled calendar is at the top level.
    settings.calendar.dir = format!("{ROOT}/data/calendar").into();
    settings
}

/// The same settings as environment variables, for spawning the binary.
pub fn settings_env(settings: &Settings) -> Vec<(&'static str, String)> {
    vec![
        ("NUANNAN__NAMESPACE", settings.namespace.clone()),
        ("NUANNAN__AMQP__URL", settings.amqp.url.clone()),
        ("NUANNAN__MONGODB__URI", settings.mongodb.uri.clone()),
        ("NUANNAN__MONGODB__DATABASE", settings.mongodb.database.clone()),
        ("NUANNAN__OPS__HTTP_ADDR", settings.ops.http_addr.clone()),
        ("NUANNAN__GATEWAY__HTTP_ADDR", settings.gateway.http_addr.clone()),
        ("NUANNAN__CONSOLE__HTTP_ADDR", settings.console.http_addr.clone()),
        ("NUANNAN__HOTSPOT__SCAN_INTERVAL_MS", settings.hotspot.scan_interval_ms.to_string()),
        ("NUANNAN__CALENDAR__DIR", settings.calendar.dir.display().to_string()),
    ]
}

pub struct TestApp {
    pub settings: Settings,
    pub store: Store,
    pub publisher: Publisher,
    pub conn: lapin::Connection,
    shutdown: CancellationToken,
    workers: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Queues the test declared itself, removed with the namespace.
    own_queues: Vec<String>,
    cleaned: bool,
}

/// A test that panicked never reached `cleanup`: remove its namespace and
/// database anyway, so failed runs do not pile quorum queues on the broker.
impl Drop for TestApp {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        self.shutdown.cancel();
        let (settings, queues) = (self.settings.clone(), self.own_queues.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(teardown(&settings, &queues));
        })
        .join();
    }
}

impl TestApp {
    /// Topology declared, workers not started: for tests that arrange
    /// state first or run the binary themselves.
    pub async fn without_workers() -> TestApp {
        Self::with_settings(test_settings().await).await
    }

    pub async fn with_settings(settings: Settings) -> TestApp {
        workers::declare_topology(&settings).await.expect("declaring topology");
        let store = Store::connect(&settings.mongodb.uri, &settings.mongodb.database).await.unwrap();
        store.ensure_indexes().await.unwrap();
        let conn = bus::connect(&settings.amqp.url, "nuannan-test").await.unwrap();
        let publisher = Publisher::open(&conn, workers::topology(&settings)).await.unwrap();
        TestApp {
            settings,
            store,
            publisher,
            conn,
            shutdown: CancellationToken::new(),
            workers: Vec::new(),
            own_queues: Vec::new(),
            cleaned: false,
        }
    }

    /// Every role running in-process, as `nuannan run` does.
    pub async fn spawn() -> TestApp {
        Self::spawn_roles(&Role::ALL).await
    }

    pub async fn spawn_roles(roles: &[Role]) -> TestApp {
        let mut app = Self::without_workers().await;
        app.start_workers(roles);
        app
    }

    pub fn start_workers(&mut self, roles: &[Role]) {
        self.start_workers_as(&self.settings.amqp.url.clone(), roles);
    }

    /// The roles logged in to the broker with `amqp_url` (another user).
    pub fn start_workers_as(&mut self, amqp_url: &str, roles: &[Role]) {
        let (mut settings, token, roles) = (self.settings.clone(), self.shutdown.clone(), roles.to_vec());
        settings.amqp.url = amqp_url.to_owned();
        self.workers.push(tokio::spawn(async move { workers::run(&settings, &roles, token).await }));
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop_workers(&mut self) {
        self.shutdown.cancel();
        for handle in self.workers.drain(..) {
            handle.await.expect("workers task").expect("workers stop cleanly");
        }
        self.shutdown = CancellationToken::new();
    }

    pub async fn publish_intake(&self, channel: &str, body: impl Into<Vec<u8>>, message_id: Option<&str>) {
        let mut msg = Outgoing::json(Exchange::Intake, channel, body.into(), message_id.unwrap_or_default());
        if message_id.is_none() {
            msg.message_id = None;
        }
        if channel == "wechat" {
            msg.content_type = "application/xml";
        }
        self.publisher.publish(&msg).await.expect("intake publish confirmed");
    }

    pub fn collection(&self, name: &str) -> mongodb::Collection<Document> {
        self.store.database().collection(name)
    }

    pub async fn count(&self, collection: &str, filter: Document) -> u64 {
        self.collection(collection).count_documents(filter).await.unwrap()
    }

    pub async fn find_one(&self, collection: &str, filter: Document) -> Option<Document> {
        self.collection(collection).find_one(filter).await.unwrap()
    }

    /// Waits for the petition stored from `channel` + `message_id`, with an
    /// empty outbox (its event and receipt published).
    pub async fn wait_for_petition(&self, channel: &str, message_id: &str) -> Document {
        let filter = doc! { "source.channel": channel, "source.message_id": message_id, "outbox": { "$size": 0 } };
        wait_for(&format!("petition {channel}/{message_id}"), || self.find_one("petitions", filter.clone())).await
    }

    pub async fn wait_for_rejection(&self, filter: Document) -> Document {
        wait_for(&format!("rejection {filter}"), || self.find_one("rejections", filter.clone())).await
    }

    /// A tap on `exchange` (all routing keys) that sees everything published
    /// from now on.
    pub async fn tap(&self, exchange: Exchange) -> Tap {
        Tap::open(&self.conn, &workers::topology(&self.settings).exchange(exchange)).await
    }

    /// A queue the test declares itself: removed at teardown, even if the test fails.
    pub fn own_queue(&mut self, name: &str) {
        self.own_queues.push(name.to_owned());
    }

    /// Stops the workers and removes the test's namespace and database:
    /// quorum queues are heavy, and a shared broker must not fill up.
    pub async fn cleanup(mut self) {
        self.stop_workers().await;
        teardown(&self.settings, &self.own_queues).await;
        self.cleaned = true;
    }
}

pub async fn teardown(settings: &Settings, own_queues: &[String]) {
    let conn = bus::connect(&settings.amqp.url, "nuannan-test-teardown").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    workers::topology(settings).delete(&ch).await.expect("deleting the test namespace");
    for q in own_queues {
        ch.queue_delete(q.as_str().into(), Default::default()).await.expect("deleting a test queue");
    }
    let _ = conn.close(200, "bye".into()).await;
    let store = Store::connect(&settings.mongodb.uri, &settings.mongodb.database).await.unwrap();
    let _ = store.database().drop().await;
}

const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Polls `probe` until it yields a value. A condition, not a sleep: it
/// returns as soon as the state is there, and fails the test after 30 s.
pub async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_up_to(what, WAIT_LIMIT, probe).await
}

/// `wait_for` with a limit of its own, for bulk work (hundreds of petitions).
pub async fn wait_up_to<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A WeChat text message as the WeChat server pushes it.
pub fn wechat_text(openid: &str, msg_id: &str, content: &str, create_time: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}

pub fn wechat_location(openid: &str, msg_id: &str, lat: f64, lng: f64, create_time: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[location]]></MsgType>\
         <Location_X>{lat}</Location_X><Location_Y>{lng}</Location_Y><Scale>15</Scale>\
         <Label><![CDATA[团岛二路]]></Label><MsgId>{msg_id}</MsgId></xml>"
    )
}

pub fn app_petition(request_id: &str, content: &str) -> String {
    serde_json::json!({
        "request_id": request_id,
        "submitted_at": chrono::Utc::now().to_rfc3339(),
        "user": { "id": format!("user-{request_id}"), "phone": "13812345678" },
        "content": content,
        "category": "livelihood",
        "location": { "lng": 120.3826, "lat": 36.0671 },
    })
    .to_string()
}

pub fn hotline_order(order_no: &str, content: &str) -> String {
    serde_json::json!({
        "order_no": order_no,
        "created_at": chrono::Utc::now().to_rfc3339(),
        "caller": { "phone": "13912345678", "name": "王女士" },
        "content": content,
        "street": "八大峡街道",
        "community": "团岛社区",
        "urgency": "normal",
    })
    .to_string()
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/wechat/{name}", crate::common::ROOT)).unwrap()
}
