//! The remotes a channel's messages go to (`docs/contract.md` §12,
//! Delivery), each answering one attempt with an [`Answer`].

use chrono::Utc;
use serde_json::Value;

use nuannan::config::{Settings, WechatTemplates};
use nuannan::deliver::wechat::{self, SendAnswer};
use nuannan::deliver::{Answer, AppNotification, HotlineCallback, Verdict, http_verdict};
use nuannan::domain::{Channel, Outbound};
use nuannan::gateway::signed;
use nuannan::store::Store;

use super::token::Tokens;

/// Sent with every webhook, so the receiver can drop a repeat (a retry after
/// a slow answer, a redelivery after a crash).
pub const MESSAGE_ID_HEADER: &str = "X-Nuannan-Message-Id";

pub enum Remote {
    Wechat {
        base: String,
        tokens: Box<Tokens>,
        templates: WechatTemplates,
    },
    Hotline {
        url: String,
        secret: String,
    },
    /// Always the feed; the webhook too when one is set.
    App {
        webhook: Option<(String, String)>,
    },
    NotConfigured,
}

impl Remote {
    pub fn of(channel: Channel, settings: &Settings, store: &Store, http: &reqwest::Client) -> Self {
        match channel {
            Channel::Wechat if settings.wechat.can_deliver() => {
                let w = &settings.wechat;
                Remote::Wechat {
                    base: w.api_base.trim_end_matches('/').to_owned(),
                    tokens: Box::new(Tokens::new(store.clone(), http.clone(), &w.api_base, &w.app_id, &w.app_secret)),
                    templates: w.templates.clone(),
                }
            }
            Channel::Hotline if !settings.hotline.callback_url.is_empty() && !settings.hotline.secret.is_empty() => {
                Remote::Hotline { url: settings.hotline.callback_url.clone(), secret: settings.hotline.secret.clone() }
            }
            Channel::App => {
                let app = &settings.app;
                Remote::App { webhook: (!app.webhook_url.is_empty()).then(|| (app.webhook_url.clone(), app.webhook_secret.clone())) }
            }
            _ => Remote::NotConfigured,
        }
    }

    /// Whether sending costs a request to a remote (and so a place in the rate limit).
    pub fn calls_out(&self) -> bool {
        matches!(self, Remote::Wechat { .. } | Remote::Hotline { .. } | Remote::App { webhook: Some(_) })
    }

    /// One attempt. `feed` is the App message as the feed holds it.
    pub async fn send(&self, http: &reqwest::Client, message_id: &str, m: &Outbound, feed: Option<&AppNotification>) -> Answer {
        match self {
            Remote::NotConfigured => Answer { code: None, verdict: Verdict::Undeliverable("not_configured".into()) },
            Remote::Wechat { base, tokens, templates } => send_wechat(http, base, tokens, templates, m).await,
            Remote::Hotline { url, secret } => match HotlineCallback::of(m) {
                Some(callback) => post_signed(http, url, secret, message_id, &callback).await,
                None => Answer { code: None, verdict: Verdict::Undeliverable("no_order_number".into()) },
            },
            Remote::App { webhook: None } => Answer { code: Some("feed".into()), verdict: Verdict::Delivered },
            Remote::App { webhook: Some((url, secret)) } => match feed {
                Some(item) => post_signed(http, url, secret, message_id, item).await,
                None => Answer { code: None, verdict: Verdict::Failed("not in the feed".into()) },
            },
        }
    }
}

/// A customer-service message; on a refused token one new token and one
/// more try at once; outside the window or over quota the kind's template,
/// if the account has one.
async fn send_wechat(http: &reqwest::Client, base: &str, tokens: &Tokens, templates: &WechatTemplates, m: &Outbound) -> Answer {
    let body = wechat::custom_send_body(m);
    let mut answer = with_token(http, tokens, |t| format!("{base}{}", wechat::custom_send_path(t)), &body).await;
    if let (Verdict::Undeliverable(_), Some(template)) = (&answer.verdict, templates.for_kind(m.kind)) {
        let body = wechat::template_send_body(m, template);
        answer = with_token(http, tokens, |t| format!("{base}{}", wechat::template_send_path(t)), &body).await;
    }
    answer
}

async fn with_token(http: &reqwest::Client, tokens: &Tokens, url: impl Fn(&str) -> String, body: &Value) -> Answer {
    let mut refreshed = false;
    loop {
        let token = match tokens.get().await {
            Ok(t) => t,
            Err(e) => return Answer::unreachable(format!("{e:#}")),
        };
        let answer = post_wechat(http, &url(&token), body).await;
        match answer.verdict {
            Verdict::Refresh(_) if !refreshed => {
                if let Err(e) = tokens.retire(&token).await {
                    return Answer::unreachable(format!("{e:#}"));
                }
                refreshed = true;
            }
            _ => return answer,
        }
    }
}

async fn post_wechat(http: &reqwest::Client, url: &str, body: &Value) -> Answer {
    let response = match http.post(url).json(body).send().await {
        Ok(r) => r,
        // Without the URL: it carries the access token.
        Err(e) => return Answer::unreachable(e.without_url()),
    };
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Answer::new(status, http_verdict(status));
    }
    match response.json::<SendAnswer>().await {
        Ok(a) => wechat::send_verdict(a.errcode, &a.errmsg),
        Err(e) => Answer::unreachable(format!("unreadable answer: {}", e.without_url())),
    }
}

/// A JSON POST signed like the 12345 orders (`X-Nuannan-Timestamp`,
/// `X-Nuannan-Signature`), with the message id to dedupe on.
async fn post_signed(http: &reqwest::Client, url: &str, secret: &str, message_id: &str, body: &impl serde::Serialize) -> Answer {
    let body = serde_json::to_vec(body).expect("delivery bodies serialize");
    let timestamp = Utc::now().timestamp();
    let signature = signed::sign(secret, timestamp, &body);
    let request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Nuannan-Timestamp", timestamp.to_string())
        .header("X-Nuannan-Signature", signature)
        .header(MESSAGE_ID_HEADER, message_id)
        .body(body);
    match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            Answer::new(status, http_verdict(status))
        }
        Err(e) => Answer::unreachable(e),
    }
}
