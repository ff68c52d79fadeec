//! What operators see of a running process: health, Prometheus metrics, and
//! the small HTTP server that exposes them (`ops.http_addr`).

mod health;
mod http;
mod metrics;

pub use health::{Health, health};
pub use http::serve;
pub use metrics::{RoleMetrics, metrics, render as render_metrics};
