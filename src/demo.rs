//! `nuannan demo`: sends a short stream from all three channels to the
//! gateway over HTTP, as WeChat, the 12345 platform and the App backend do
//! (signed, sealed, keyed), and prints what became of each message.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use mongodb::bson::{Document, doc};

use crate::bus::{self, topology};
use crate::config::Settings;
use crate::domain::Channel;
use crate::store::{CHANNEL_EVENTS, PETITIONS, REJECTIONS, Store};

struct Sample {
    what: &'static str,
    channel: &'static str,
    /// The channel's dedup key; how the demo finds the outcome.
    key: String,
    body: String,
}

fn samples(run: &str) -> Vec<Sample> {
    let now = Utc::now().timestamp();
    let openid = format!("oDemo{run}");
    let wechat = |msg_type: &str, fields: &str, msg_id: &str| {
        format!(
            "<xml><ToUserName><![CDATA[gh_nuannan]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
             <CreateTime>{now}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{fields}<MsgId>{msg_id}</MsgId></xml>"
        )
    };
    let order = format!("QD12345-{run}");
    let hotline = format!(
        r#"{{"order_no":"{order}","created_at":"{}","caller":{{"phone":"13912345678","name":"王女士"}},
        "content":"八大峡广场附近夜间施工噪音扰民，已持续一周","classification":{{"code":"0301","name":"噪声污染"}},
        "street":"八大峡街道","community":"团岛社区","urgency":"urgent"}}"#,
        Utc::now().to_rfc3339()
    );
    vec![
        Sample {
            what: "WeChat text",
            channel: "wechat",
            key: format!("{run}01"),
            body: wechat(
                "text",
                "<Content><![CDATA[团岛二路的路灯坏了一周了，晚上出门很不安全，请尽快维修。]]></Content>",
                &format!("{run}01"),
            ),
        },
        Sample {
            what: "WeChat location (attaches to the text)",
            channel: "wechat",
            key: format!("{run}02"),
            // WeChat reports GCJ-02: the datum of a point in 团岛 grid 2 as the citizen's phone sends it.
            body: wechat("location", &gcj02_location(120.2945, 36.0465), &format!("{run}02")),
        },
        Sample {
            what: "WeChat subscribe event",
            channel: "wechat",
            key: format!("{openid}:{now}:subscribe"),
            body: format!(
                "<xml><ToUserName><![CDATA[gh_nuannan]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
                 <CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>"
            ),
        },
        Sample {
            what: "WeChat voice without speech recognition",
            channel: "wechat",
            key: format!("{run}03"),
            body: wechat("voice", "<MediaId><![CDATA[m1]]></MediaId><Format><![CDATA[amr]]></Format>", &format!("{run}03")),
        },
        Sample {
            what: "App petition",
            channel: "app",
            key: format!("app-{run}"),
            body: format!(
                r#"{{"request_id":"app-{run}","submitted_at":"{}","user":{{"id":"u-{run}","phone":"13812345678"}},
                "content":"香港中路某小区门口占道经营，影响通行","category":"enforcement",
                "location":{{"lng":120.3826,"lat":36.0671}},"address":"香港中路"}}"#,
                Utc::now().to_rfc3339()
            ),
        },
        Sample { what: "12345 hotline work order", channel: "hotline", key: order.clone(), body: hotline.clone() },
        Sample { what: "the same work order again (duplicate)", channel: "hotline", key: order, body: hotline },
        Sample {
            what: "App payload with an unknown category",
            channel: "app",
            key: format!("app-bad-{run}"),
            body: format!(r#"{{"request_id":"app-bad-{run}","user":{{"id":"u"}},"content":"x","category":"gossip"}}"#),
        },
    ]
}

/// Sends `s` to the gateway as its channel would; the HTTP status and body.
async fn send(settings: &Settings, app_key: &str, s: &Sample) -> anyhow::Result<(u16, String)> {
    let addr = settings.gateway.http_addr.as_str();
    let now = Utc::now().timestamp();
    let body = s.body.as_bytes();
    let (path, headers) = match s.channel {
        "wechat" => {
            let signature = crate::gateway::wechat::signature(&[&settings.wechat.token, &now.to_string(), "demo"]);
            (format!("/wechat/callback?signature={signature}&timestamp={now}&nonce=demo"), vec![("content-type", "text/xml".to_owned())])
        }
        "hotline" => (
            "/hotline/orders".to_owned(),
            vec![
                ("x-nuannan-timestamp", now.to_string()),
                ("x-nuannan-signature", crate::gateway::signed::sign(&settings.hotline.secret, now, body)),
                ("content-type", "application/json".to_owned()),
            ],
        ),
        _ => (
            "/app/petitions".to_owned(),
            vec![("authorization", format!("Bearer {app_key}")), ("content-type", "application/json".to_owned())],
        ),
    };
    let (status, answer) = crate::gateway::client::request(addr, "POST", &path, &headers, body)
        .await
        .with_context(|| format!("no gateway answers on {addr}"))?;
    Ok((status, String::from_utf8_lossy(&answer).into_owned()))
}

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(!settings.gateway.http_addr.is_empty(), "the demo talks to the gateway: set gateway.http_addr");
    let app_key = std::env::var("NUANNAN_DEMO_APP_KEY").context("NUANNAN_DEMO_APP_KEY: the App adapter's key")?;
    let run = Utc::now().format("%H%M%S%3f").to_string();
    let topology = topology(settings);
    let conn = bus::connect(&settings.amqp.url, "nuannan-demo").await?;
    let store = Store::open(&settings.mongodb).await?;
    let samples = samples(&run);
    let mut answers = Vec::new();
    for s in &samples {
        answers.push(send(settings, &app_key, s).await?);
    }
    println!("sent {} requests to the gateway on {}; waiting for the pipeline…\n", samples.len(), settings.gateway.http_addr);

    let mut receipts = HashMap::new();
    for (s, (status, answer)) in samples.iter().zip(&answers) {
        println!("{:<42} HTTP {status} {}", s.what, answer.trim());
        let mut outcome = wait_for_outcome(&store, s).await?;
        if let Some(id) = outcome.get_str("_id").ok().filter(|_| outcome.contains_key("status")).map(str::to_owned) {
            outcome = wait_for_routing(&store, &id).await?;
            let id = id.as_str();
            while !receipts.contains_key(id) {
                collect_receipts(&conn, &topology, &mut receipts).await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        println!("{:<42} → {}", "", describe(&outcome, &receipts));
    }
    conn.close(200, "demo done".into()).await?;
    Ok(())
}

async fn wait_for_outcome(store: &Store, s: &Sample) -> anyhow::Result<Document> {
    let db = store.database();
    for _ in 0..150 {
        let found = match s.channel {
            "wechat" if s.key.contains(':') => {
                db.collection::<Document>(CHANNEL_EVENTS).find_one(doc! { "_id": format!("wechat:{}", s.key) }).await?
            }
            "wechat" => {
                let attached = db.collection::<Document>(PETITIONS).find_one(doc! { "attachments.message_id": &s.key }).await?;
                match attached {
                    Some(p) => Some(doc! { "attached_to": p.get_str("_id")? }),
                    None => petition_or_rejection(store, s).await?,
                }
            }
            _ => petition_or_rejection(store, s).await?,
        };
        if let Some(doc) = found {
            return Ok(doc);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("no outcome for {} after 30 s: is `nuannan run` running?", s.what)
}

/// The route role sets the unit right after intake.
async fn wait_for_routing(store: &Store, id: &str) -> anyhow::Result<Document> {
    let petitions = store.database().collection::<Document>(PETITIONS);
    for _ in 0..150 {
        let p = petitions.find_one(doc! { "_id": id }).await?.context("petition vanished")?;
        if p.get_str("status").is_ok_and(|s| s != "received") {
            return Ok(p);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("petition {id} was not routed after 30 s")
}

async fn petition_or_rejection(store: &Store, s: &Sample) -> anyhow::Result<Option<Document>> {
    let db = store.database();
    let petition = db.collection::<Document>(PETITIONS).find_one(doc! { "source.channel": s.channel, "source.message_id": &s.key }).await?;
    if petition.is_some() {
        return Ok(petition);
    }
    Ok(db.collection::<Document>(REJECTIONS).find_one(doc! { "message_id": &s.key }).await?)
}

async fn collect_receipts(
    conn: &lapin::Connection,
    topology: &bus::Topology,
    receipts: &mut HashMap<String, String>,
) -> anyhow::Result<()> {
    let channel = conn.create_channel().await?;
    for c in Channel::ALL {
        let queue = topology.outbound_queue(c);
        while let Some(msg) = channel.basic_get(queue.as_str().into(), BasicGetOptions::default()).await? {
            let body: serde_json::Value = serde_json::from_slice(&msg.delivery.data)?;
            if let (Some(id), Some(text)) = (body["petition_id"].as_str(), body["text"].as_str()) {
                receipts.insert(id.to_owned(), format!("{c} to {}: {text}", body["recipient"]["id"]));
            }
            msg.delivery.ack(BasicAckOptions::default()).await?;
        }
    }
    let _ = channel.close(200, "ok".into()).await;
    Ok(())
}

fn describe(outcome: &Document, receipts: &HashMap<String, String>) -> String {
    if let Ok(id) = outcome.get_str("attached_to") {
        return format!("attached to petition {id}");
    }
    if let Ok(reason) = outcome.get_str("reason") {
        return format!("rejected: {reason} ({})", outcome.get_str("detail").unwrap_or_default());
    }
    if let Ok(event) = outcome.get_str("event") {
        return format!("recorded as channel event `{event}` (not a petition)");
    }
    let id = outcome.get_str("_id").unwrap_or_default();
    let status = outcome.get_str("status").unwrap_or_default();
    let unit = outcome.get_str("unit").unwrap_or("-");
    let category = outcome.get_str("category").unwrap_or("unclassified");
    let receipt = receipts.get(id).map(String::as_str).unwrap_or("(no receipt yet)");
    format!("petition {id}: {status} → {unit} ({category})\n{:<45}receipt via {receipt}", "")
}

/// A WeChat location element for a WGS-84 point, in the GCJ-02 datum WeChat sends.
fn gcj02_location(lng: f64, lat: f64) -> String {
    let gcj = crate::domain::wgs84_to_gcj02(crate::domain::GeoPoint::new(lng, lat).expect("a valid point"));
    format!(
        "<Location_X>{:.6}</Location_X><Location_Y>{:.6}</Location_Y><Scale>16</Scale><Label><![CDATA[团岛二路]]></Label>",
        gcj.lat(),
        gcj.lng()
    )
}
