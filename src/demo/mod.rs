//! `nuannan demo`: sends a short stream from all three channels to the
//! gateway over HTTP, as WeChat, the 12345 platform and the App backend do
//! (signed, sealed, keyed), and prints what became of each message; then
//! 八大峡街道's handler app and the district reviewer take each petition to its
//! result, and the demo shows the receipt and the result reaching the
//! citizen on the channel they used.

mod drive;

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use mongodb::bson::{Document, doc};
use serde_json::json;

use crate::config::Settings;
use crate::store::{CHANNEL_EVENTS, DELIVERIES, PETITIONS, REJECTIONS, Store};

/// The demo's handler app (八大峡街道, whose subtree the demo's petitions
/// fall in) and reviewer, from `docker/principals.toml`.
const HANDLER: &str = "badaxia-app";
const REVIEWER: &str = "district-review";

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
                "content":"团岛二路某小区门口占道经营，影响通行","category":"enforcement",
                "location":{{"lng":120.2945,"lat":36.0465}},"address":"团岛二路"}}"#,
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
    let store = Store::open(&settings.mongodb).await?;
    let samples = samples(&run);
    let mut answers = Vec::new();
    for s in &samples {
        answers.push(send(settings, &app_key, s).await?);
    }
    println!("sent {} requests to the gateway on {}; waiting for the pipeline…\n", samples.len(), settings.gateway.http_addr);

    let mut petitions = Vec::new();
    for (s, (status, answer)) in samples.iter().zip(&answers) {
        println!("{:<42} HTTP {status} {}", s.what, answer.trim());
        let mut outcome = wait_for_outcome(&store, s).await?;
        let mut receipt = None;
        if let Some(id) = outcome.get_str("_id").ok().filter(|_| outcome.contains_key("status")).map(str::to_owned) {
            outcome = wait_for_routing(&store, &id).await?;
            receipt = Some(wait_for_delivery(&store, &id, "receipt").await?);
            if !petitions.contains(&id) {
                petitions.push(id);
            }
        }
        println!("{:<42} → {}", "", describe(&outcome, receipt.as_ref()));
    }

    println!("\n八大峡街道's handler app ({HANDLER}) and the district reviewer ({REVIEWER}) take each petition to its result:");
    let mut handler = drive::Sender::login(settings, HANDLER).await?;
    let mut reviewer = drive::Sender::login(settings, REVIEWER).await?;
    for id in &petitions {
        let p = store.database().collection::<Document>(PETITIONS).find_one(doc! { "_id": id }).await?.context("the petition")?;
        let unit = p.get_str("unit").unwrap_or("shinan").to_owned();
        let staff = json!({ "id": "demo-staff", "role": "handler", "unit": unit });
        let steps = [
            (HANDLER, "accept", staff.clone(), json!({})),
            (HANDLER, "resolve", staff, json!({ "result": "已派人现场处理完毕，问题已解决。" })),
            (REVIEWER, "approve", json!({ "id": "demo-reviewer", "role": "reviewer", "unit": "shinan" }), json!({})),
        ];
        let mut replies = Vec::new();
        for (who, command, actor, data) in steps {
            let sender = if who == HANDLER { &mut handler } else { &mut reviewer };
            let reply = sender.send(command, id, actor, data).await?;
            replies.push(format!("{command}: {}", reply["status"].as_str().or(reply["error"].as_str()).unwrap_or("?")));
        }
        println!("  petition {id} ({unit}): {}", replies.join(", "));
        let result = wait_for_delivery(&store, id, "result").await?;
        println!("  {:<40} result via {}", "", delivered(&result));
    }
    handler.close().await;
    reviewer.close().await;
    Ok(())
}

/// The final record of a petition's message of `kind`, once the deliver role has it.
async fn wait_for_delivery(store: &Store, petition_id: &str, kind: &str) -> anyhow::Result<Document> {
    let filter = doc! { "petition_id": petition_id, "kind": kind, "status": { "$ne": "retrying" } };
    for _ in 0..150 {
        if let Some(d) = store.database().collection::<Document>(DELIVERIES).find_one(filter.clone()).await? {
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("no {kind} delivered for {petition_id} within 30 s (is the deliver role running?)")
}

/// "wechat: delivered (1 attempt)", or the reason it was not.
fn delivered(d: &Document) -> String {
    let attempts = d.get_array("attempts").map_or(0, Vec::len);
    let (channel, status) = (d.get_str("channel").unwrap_or("?"), d.get_str("status").unwrap_or("?"));
    match d.get_str("reason") {
        Ok(reason) => format!("{channel}: {status} ({reason})"),
        Err(_) => format!("{channel}: {status} after {attempts} attempt(s): {}", d.get_str("text").unwrap_or_default()),
    }
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

fn describe(outcome: &Document, receipt: Option<&Document>) -> String {
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
    let receipt = receipt.map_or_else(|| "(no receipt yet)".to_owned(), delivered);
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
