use chrono::{TimeZone, Utc};

use super::wechat::{MessageCrypto, signature};
use super::*;

const TOKEN: &str = "spamtest";
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wx2c2769f8efd9abc2";
const TS: i64 = 1_700_000_000;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(TS + 10, 0).unwrap()
}

fn account(safe: bool) -> WechatAccount {
    WechatAccount {
        token: TOKEN.into(),
        crypto: safe.then(|| MessageCrypto::new(KEY, APP_ID).unwrap()),
        account: Some("gh_nuannan".into()),
    }
}

fn query(ts: i64, nonce: &str) -> WechatQuery {
    WechatQuery {
        signature: Some(signature(&[TOKEN, &ts.to_string(), nonce])),
        timestamp: Some(ts.to_string()),
        nonce: Some(nonce.into()),
        ..Default::default()
    }
}

const PLAIN: &str = "<xml><ToUserName><![CDATA[gh_nuannan]]></ToUserName><FromUserName><![CDATA[oA]]></FromUserName>\
    <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[路灯坏了]]></Content><MsgId>42</MsgId></xml>";

fn sealed(plain: &str, to: &str) -> (WechatQuery, Vec<u8>) {
    let crypto = MessageCrypto::new(KEY, APP_ID).unwrap();
    let encrypt = crypto.encrypt(*b"0123456789abcdef", plain.as_bytes());
    let mut q = query(TS, "7");
    q.encrypt_type = Some("aes".into());
    q.msg_signature = Some(signature(&[TOKEN, &TS.to_string(), "7", &encrypt]));
    (q, format!("<xml><ToUserName><![CDATA[{to}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>").into_bytes())
}

#[test]
fn the_url_check_echoes_only_a_signed_request() {
    let mut q = query(TS, "1");
    q.echostr = Some("4375120948345356249".into());
    assert_eq!(account(true).verify_url(&q, now()).unwrap(), "4375120948345356249");
    q.signature = Some("0".repeat(40));
    assert_eq!(account(true).verify_url(&q, now()), Err(WechatRefusal::Forbidden("bad signature")));
}

#[test]
fn plaintext_mode_checks_the_signature_the_window_and_the_account() {
    let a = account(false);
    assert_eq!(a.open(&query(TS, "1"), PLAIN.as_bytes(), now()).unwrap(), PLAIN.as_bytes());
    let stale = Utc.timestamp_opt(TS + 301, 0).unwrap();
    assert!(matches!(a.open(&query(TS, "1"), PLAIN.as_bytes(), stale), Err(WechatRefusal::Forbidden(_))));
    let mut forged = query(TS, "1");
    forged.nonce = Some("2".into());
    assert!(matches!(a.open(&forged, PLAIN.as_bytes(), now()), Err(WechatRefusal::Forbidden(_))));
    let other = PLAIN.replace("gh_nuannan", "gh_other");
    assert_eq!(a.open(&query(TS, "1"), other.as_bytes(), now()), Err(WechatRefusal::Forbidden("ToUserName is another account")));
    assert!(matches!(a.open(&query(TS, "1"), b"<xml><unclosed>", now()), Err(WechatRefusal::Malformed(_))));
}

#[test]
fn safe_mode_decrypts_and_refuses_downgrades_and_forgeries() {
    let a = account(true);
    let (q, body) = sealed(PLAIN, "gh_nuannan");
    assert_eq!(a.open(&q, &body, now()).unwrap(), PLAIN.as_bytes());
    // The same body as a plaintext push: no downgrade.
    assert!(matches!(a.open(&query(TS, "7"), PLAIN.as_bytes(), now()), Err(WechatRefusal::Forbidden(_))));
    let mut bad = q.clone();
    bad.msg_signature = Some("0".repeat(40));
    assert_eq!(a.open(&bad, &body, now()), Err(WechatRefusal::Forbidden("bad msg_signature")));
    let (q, body) = sealed(PLAIN, "gh_other");
    assert_eq!(a.open(&q, &body, now()), Err(WechatRefusal::Forbidden("ToUserName is another account")));
    let other_app = WechatAccount { crypto: Some(MessageCrypto::new(KEY, "wx0000000000000000").unwrap()), ..account(true) };
    let (q, body) = sealed(PLAIN, "gh_nuannan");
    assert_eq!(other_app.open(&q, &body, now()), Err(WechatRefusal::Forbidden("another app id")));
}

#[test]
fn bodies_become_a_dedup_key_or_a_status_with_a_reason() {
    let clock = crate::domain::ReceiptClock { future_tolerance: chrono::Duration::minutes(5), max_age: chrono::Duration::days(30) };
    let policy = IntakePolicy { max_body_bytes: MAX_BODY_BYTES, clock };
    assert_eq!(accept("wechat", PLAIN.as_bytes(), now(), &policy).unwrap().message_id, "42");
    let event = "<xml><ToUserName>gh</ToUserName><FromUserName>oB</FromUserName><CreateTime>1700000000</CreateTime>\
        <MsgType>event</MsgType><Event>subscribe</Event></xml>";
    assert_eq!(accept("wechat", event.as_bytes(), now(), &policy).unwrap().message_id, "oB:1700000000:subscribe");
    let voice = "<xml><FromUserName>oC</FromUserName><CreateTime>1700000000</CreateTime><MsgType>voice</MsgType><MsgId>43</MsgId></xml>";
    assert_eq!(accept("wechat", voice.as_bytes(), now(), &policy).unwrap().message_id, "43", "unsupported, still published");
    for (body, code) in [(&b"{not json"[..], 400), (&b"{\"request_id\":\"r\"}"[..], 422), (&b"\xff\xfe"[..], 400)] {
        let r = accept("app", body, now(), &policy).unwrap_err();
        assert_eq!(status(r.reason), code, "{r:?}");
    }
}
