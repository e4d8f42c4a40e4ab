//! Configuration: file < environment < flags, errors that name the key, secrets redacted,
//! and `docs/configuration.md` matching the keys the binary knows.

use std::process::Command;

fn sb(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    c.args(args).env_remove("RUST_BACKTRACE");
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn value(printed: &str, key: &str) -> String {
    printed
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("{key} not in {printed}"))
        .to_string()
}

#[test]
fn file_then_environment_then_flags() {
    let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("switchboard.toml");
    std::fs::write(&file, "rtc_port = 9000\nempty_timeout = 60\nmax_tracks = 7\nwebhook_urls = [\"http://127.0.0.1:9/a\"]\nkeys = \"prod:0123456789abcdefSECRET\"\n").unwrap();
    let f = file.to_str().unwrap();
    // Defaults alone.
    let (ok, out, err) = sb(&["config", "print"], &[]);
    assert!(ok, "{err}");
    assert_eq!(value(&out, "rtc_port"), "7882");
    assert_eq!(value(&out, "drain_timeout"), "300");
    // The file over the defaults; the secret never printed.
    let (ok, out, _) = sb(&["--config", f, "config", "print"], &[]);
    assert!(ok);
    assert_eq!(
        (
            value(&out, "rtc_port"),
            value(&out, "empty_timeout"),
            value(&out, "max_tracks")
        ),
        ("9000".into(), "60".into(), "7".into())
    );
    assert_eq!(value(&out, "keys"), "\"prod:<redacted>\"");
    assert!(!out.contains("SECRET"));
    // The environment over the file (the file named by SWITCHBOARD_CONFIG too).
    let (ok, out, _) = sb(
        &["config", "print"],
        &[
            ("SWITCHBOARD_CONFIG", f),
            ("SWITCHBOARD_RTC_PORT", "9100"),
            (
                "SWITCHBOARD_WEBHOOK_URLS",
                "http://127.0.0.1:9/b,http://127.0.0.1:9/c",
            ),
        ],
    );
    assert!(ok);
    assert_eq!(
        (value(&out, "rtc_port"), value(&out, "empty_timeout")),
        ("9100".into(), "60".into())
    );
    assert_eq!(
        value(&out, "webhook_urls"),
        "[\"http://127.0.0.1:9/b\", \"http://127.0.0.1:9/c\"]"
    );
    // Flags over everything.
    let (ok, out, _) = sb(
        &[
            "--config",
            f,
            "--rtc-port",
            "9200",
            "--no-auto-create",
            "config",
            "print",
        ],
        &[("SWITCHBOARD_RTC_PORT", "9100")],
    );
    assert!(ok);
    assert_eq!(
        (value(&out, "rtc_port"), value(&out, "auto_create")),
        ("9200".into(), "false".into())
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn invalid_values_stop_start_up_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("sb-config-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![],
            vec![("SWITCHBOARD_RTC_PORT", "abc")],
            "rtc_port",
            "expected u16",
        ),
        (vec!["--workers", "0"], vec![], "workers", "at least 1"),
        (
            vec![],
            vec![("SWITCHBOARD_KEYS", "k:short")],
            "keys",
            "16 characters",
        ),
        (
            vec![],
            vec![("SWITCHBOARD_API_RATE", "-1")],
            "api_rate",
            "positive",
        ),
        (
            vec![],
            vec![("SWITCHBOARD_WEBHOOK_URLS", "ftp://x")],
            "webhook_urls",
            "not an http",
        ),
        (
            vec!["--rtc-port", "65535", "--workers", "2"],
            vec![],
            "rtc_port",
            "do not fit",
        ),
        (
            vec!["--rtc-advertise", "0.0.0.0"],
            vec![],
            "rtc_advertise",
            "cannot be reached",
        ),
        (vec!["--log", "foo=bar=baz"], vec![], "log", ""),
    ];
    for (args, env, key, what) in cases {
        let mut a = args.clone();
        a.extend(["config", "print"]);
        let (ok, _, err) = sb(&a, &env);
        assert!(!ok, "{args:?} {env:?} accepted");
        assert!(
            err.starts_with("error:") && err.contains(key) && err.contains(what),
            "{args:?} {env:?}: {err}"
        );
        assert!(!err.contains("Stack backtrace"), "{err}");
    }
    // A TOML file with an unknown key, a wrong type, a missing file.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "rtc_prot = 1\n").unwrap();
    let (ok, _, err) = sb(&["--config", bad.to_str().unwrap(), "config", "print"], &[]);
    assert!(
        !ok && err.contains("rtc_prot") && err.contains("unknown field"),
        "{err}"
    );
    std::fs::write(&bad, "drain_timeout = \"soon\"\n").unwrap();
    let (ok, _, err) = sb(&["--config", bad.to_str().unwrap(), "config", "print"], &[]);
    assert!(
        !ok && err.contains("drain_timeout") && err.contains("TOML"),
        "{err}"
    );
    let (ok, _, err) = sb(
        &[
            "--config",
            "/nonexistent/switchboard.toml",
            "config",
            "print",
        ],
        &[],
    );
    assert!(!ok && err.contains("does not exist"), "{err}");
    // The server itself refuses to start on a bad value.
    let (ok, _, err) = sb(&["--workers", "0"], &[]);
    assert!(!ok && err.contains("workers"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_configuration_doc_lists_every_key_with_its_default() {
    let (ok, table, _) = sb(&["config", "docs"], &[]);
    assert!(ok);
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .unwrap();
    assert!(doc.contains(&table), "docs/configuration.md is out of date; paste the output of `switchboard config docs`:\n{table}");
    // Every key the binary prints is in the table, and the printed defaults agree.
    let (_, printed, _) = sb(&["config", "print"], &[]);
    for line in printed.lines().filter(|l| l.contains(" = ")) {
        let (key, default) = line.split_once(" = ").unwrap();
        let row = table
            .lines()
            .find(|r| r.starts_with(&format!("| `{key}` ")))
            .unwrap_or_else(|| panic!("{key} undocumented"));
        let documented = row.split('|').nth(4).unwrap().trim();
        let printed = default.trim_matches('"');
        let printed = printed.strip_suffix(".0").unwrap_or(printed); // floats: 50.0 → 50
        assert_eq!(documented, printed, "default of {key}");
    }
}
