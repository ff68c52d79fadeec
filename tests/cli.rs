//! The binary as an operator starts it.

use std::process::Command;

fn nuannan(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nuannan"))
        .args(args)
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
