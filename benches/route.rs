//! One routing decision (locate + classify + deadlines) over the full
//! Shinan registry: `cargo bench --bench route`.

use std::hint::black_box;
use std::sync::Arc;

use chrono::{NaiveTime, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use nuannan::clock::{Calendar, DeadlinePolicy, SharedCalendar};
use nuannan::domain::{Category, GeoPoint};
use nuannan::routing::{Classifier, Registry, RouteInput, Router};

fn router() -> Router {
    Router {
        registry: Arc::new(Registry::bundled()),
        classifier: Classifier::bundled(),
        deadlines: DeadlinePolicy {
            respond_within: chrono::Duration::hours(4),
            office_close: NaiveTime::from_hms_opt(17, 30, 0).unwrap(),
            calendar: SharedCalendar::new(Calendar::bundled()),
        },
    }
}

fn bench(c: &mut Criterion) {
    let router = router();
    let received = Some(Utc.with_ymd_and_hms(2026, 9, 30, 8, 0, 0).unwrap());
    let text = "团岛二路小区门口的路灯坏了一个多星期，晚上出行很不安全，物业说不归他们管，希望尽快维修。";
    let inputs = [
        (
            "point+keywords",
            RouteInput { received_at: received, content: text, point: Some(GeoPoint::new(120.30, 36.06).unwrap()), ..Default::default() },
        ),
        (
            "address+app category",
            RouteInput {
                received_at: received,
                content: text,
                address: Some("山东路6号华润万象城"),
                category: Some(Category::Livelihood),
                ..Default::default()
            },
        ),
        (
            "hotline names+taxonomy",
            RouteInput {
                received_at: received,
                content: text,
                street: Some("八大峡街道"),
                community: Some("团岛社区"),
                hotline_class: Some("环境卫生"),
                ..Default::default()
            },
        ),
        ("text only", RouteInput { received_at: received, content: text, ..Default::default() }),
    ];
    for (name, input) in &inputs {
        c.bench_function(&format!("route decision: {name}"), |b| b.iter(|| router.decide(black_box(input))));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
