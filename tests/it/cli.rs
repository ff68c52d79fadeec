//! The binary as an operator starts it.

use std::process::Command;

fn nuannan(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nuannan"))
        .args(args)
        .env("NUANNAN__CALENDAR__DIR", format!("{}/data/calendar", crate::common::ROOT))
        .envs(env.iter().copied())
        .output()
        .expect("running nuannan")
}

#[test]
fn invalid_configuration_fails_at_start_naming_the_key() {
    let cases = [
        ("NUANNAN__AMQP__PREFETCH", "lots", "amqp.prefetch"),
        ("NUANNAN__AMQP__DELIVERY_LIMIT", "0", "amqp.delivery_limit"),
        ("NUANNAN__NAMESPACE", "bad ns!", "namespace"),
        ("NUANNAN__MONGODB__URI", "http://db", "mongodb.uri"),
        ("NUANNAN__MONGODB__DATABASE", "a/b", "mongodb.database"),
        ("NUANNAN__DEADLINE__OFFICE_CLOSE", "25:99", "deadline.office_close"),
        ("NUANNAN__DEADLINE__SCAN_INTERVAL_MS", "-5", "deadline.scan_interval_ms"),
        ("NUANNAN__LIFECYCLE__RATING_DAYS", "0", "lifecycle.rating_days"),
        ("NUANNAN__NOTIFY__RESULT", "办结：{reslut}", "notify.result"),
    ];
    for (key, value, named) in cases {
        let out = nuannan(&[(key, value)], &["topology"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}={value}: {stderr}");
        assert!(stderr.contains(named), "{key}={value} should name `{named}`: {stderr}");
    }
}

#[test]
fn a_config_file_overrides_defaults_and_env_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[amqp]\nprefetch = 0\n").unwrap();
    let path = file.to_str().unwrap();
    let out = nuannan(&[], &["--config", path, "topology"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("amqp.prefetch"));
    // The environment wins over the file: prefetch fixed, the next bad key surfaces.
    let out = nuannan(&[("NUANNAN__AMQP__PREFETCH", "8"), ("NUANNAN__AMQP__URL", "http://broker")], &["--config", path, "topology"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("amqp.url"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn missing_config_file_is_an_error() {
    let out = nuannan(&[], &["--config", "/nonexistent/nuannan.toml", "topology"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/nuannan.toml"));
}

/// Working days straight from the published calendar data (the shared
/// reference file when present, else the bundled copy).
fn workdays_from_data() -> std::collections::HashMap<chrono::NaiveDate, bool> {
    let shared = &format!("{}/../shared/data/calendar/cn_workdays_2024_2026.csv", crate::common::ROOT);
    let text = std::fs::read_to_string(shared).unwrap_or_else(|_| {
        ["2024", "2025", "2026"]
            .map(|y| std::fs::read_to_string(format!("{}/data/calendar/cn_workdays_{y}.csv", crate::common::ROOT)).unwrap())
            .join("\n")
    });
    let mut days = std::collections::HashMap::new();
    let mut column = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        if fields[0] == "date" {
            column = fields.iter().position(|f| *f == "is_workday").expect("is_workday column");
        } else if let Ok(date) = fields[0].parse() {
            days.insert(date, fields[column] == "true");
        }
    }
    days
}

#[test]
fn deadline_command_matches_the_calendar_data() {
    use chrono::{DateTime, Duration, TimeZone};
    use chrono_tz::Asia::Shanghai;
    let workdays = workdays_from_data();
    let cases = [
        ("2026-02-13T10:00:00+08:00", 1), // Friday before Spring Festival; Saturday 02-14 is a make-up day
        ("2026-02-13T10:00:00+08:00", 2),
        ("2026-02-17T10:00:00+08:00", 5), // inside the Spring Festival holiday
        ("2026-09-30T18:00:00+08:00", 1), // after office close, before National Day
        ("2026-10-03T09:00:00+08:00", 2), // on a National Day holiday
        ("2026-10-09T12:00:00+08:00", 1), // Friday before the make-up Saturday 10-10
        ("2025-01-25T23:59:00+08:00", 5), // 2025 Spring Festival make-up Sunday 01-26
        ("2024-04-30T16:00:00Z", 1),      // UTC instant already on 05-01 (Labour Day) in Shanghai
        ("2026-11-27T17:00:00Z", 2),      // UTC Friday evening = Saturday in Shanghai
    ];
    for (from, n) in cases {
        let out = nuannan(&[], &["deadline", "--from", from, "--working-days", &n.to_string()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let printed = String::from_utf8(out.stdout).unwrap().trim().to_owned();

        let mut day = DateTime::parse_from_rfc3339(from).unwrap().with_timezone(&Shanghai).date_naive();
        let mut left = n;
        while left > 0 {
            day += Duration::days(1);
            if workdays[&day] {
                left -= 1;
            }
        }
        let expected = Shanghai.from_local_datetime(&day.and_hms_opt(17, 30, 0).unwrap()).unwrap().to_rfc3339();
        assert_eq!(printed, expected, "{from} + {n} working days");
    }
}

#[test]
fn locate_prints_the_unit_as_json() {
    let run = |args: &[&str]| -> serde_json::Value {
        let out = nuannan(&[], args);
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let by_point = run(&["locate", "--lng", "120.30", "--lat", "36.06"]);
    assert_eq!(by_point["grid"], "shinan.badaxia.badaxia.g006");
    assert_eq!(by_point["community"], "shinan.badaxia.badaxia");
    let by_address = run(&["locate", "--address", "香港西路青岛海天中心"]);
    assert_eq!(by_address["unit"], "shinan.zhanshan.xiuzhanlu.s01");
    assert_eq!(by_address["name"], "青岛海天中心");
    let nowhere = run(&["locate", "--lng", "116.39", "--lat", "39.91"]);
    assert!(nowhere["unit"].is_null());
}
