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

#[test]
fn without_keys_the_server_refuses_a_reachable_address_and_says_how_to_set_keys() {
    for (args, key) in [
        (vec!["--http", "0.0.0.0:0"], "http = 0.0.0.0:0"),
        (vec!["--http", "[::]:0"], "http = [::]:0"),
        (
            vec!["--http", "127.0.0.1:0", "--sip-listen", "0.0.0.0:0"],
            "sip_listen = 0.0.0.0:0",
        ),
    ] {
        let (ok, _, err) = sb(&args, &[]);
        assert!(!ok, "{args:?}: started keyless on a reachable address");
        assert!(
            err.contains(key) && err.contains("SWITCHBOARD_KEYS") && err.contains("loopback"),
            "{args:?}: {err}"
        );
    }
    // The same addresses with keys are fine (checked without starting: `config print`).
    let (ok, _, err) = sb(
        &["--http", "0.0.0.0:0", "config", "print"],
        &[("SWITCHBOARD_KEYS", "prod:0123456789abcdef")],
    );
    assert!(ok, "{err}");
}

/// The development secret a keyless server prints as it starts (then the server is stopped).
fn development_secret() -> String {
    use std::io::{BufRead, BufReader};
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    // The line comes before any socket is bound, so the port does not need to be free.
    c.args([
        "--http",
        "127.0.0.1:0",
        "--rtc-port",
        "47321",
        "--workers",
        "1",
    ]);
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") {
            c.env_remove(k);
        }
    }
    let mut child = c
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let line = stderr
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("DEVELOPMENT MODE"));
    child.kill().ok();
    child.wait().ok();
    let line = line.expect("a keyless server announces development mode");
    line.split("`devkey:")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no devkey:<secret> in {line}"))
        .to_string()
}

#[test]
fn the_development_secret_is_random_per_start() {
    let (a, b) = (development_secret(), development_secret());
    assert_ne!(a, b, "two starts, one secret");
    for s in [&a, &b] {
        assert!(
            s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()),
            "{s}"
        );
        assert_ne!(
            s.as_str(),
            "switchboard-development-secret-do-not-use-in-production"
        );
    }
}

#[test]
fn keys_generate_prints_a_pair_the_server_takes() {
    let (ok, a, err) = sb(&["keys", "generate"], &[]);
    assert!(ok, "{err}");
    let (_, b, _) = sb(&["keys", "generate"], &[]);
    assert_ne!(a, b);
    let pair = a.trim();
    let (ok, _, err) = sb(&["config", "print"], &[("SWITCHBOARD_KEYS", pair)]);
    assert!(ok, "{pair}: {err}");
    // And a token can be made with it.
    let (ok, token, err) = sb(
        &[
            "token",
            "create",
            "--room",
            "r",
            "--identity",
            "a",
            "--keys",
            pair,
        ],
        &[],
    );
    assert!(ok && token.trim().split('.').count() == 3, "{err}");
}

/// Every secret the configuration has, each with a value found nowhere else.
const SECRETS_TOML: &str = r#"
keys = "prod:KEYSECRET0123456789"
metrics_token = "METRICSTOKEN"
turn_urls = ["turn:127.0.0.1:3478"]
turn_secret = "TURNSECRET42"
redis_url = "redis://sb:REDISPASSWORD@127.0.0.1:1/0"

[[sip_trunks]]
name = "carrier"
networks = ["192.0.2.1"]
username = "carrier"
password = "TRUNKPASSWORD"
outbound_address = "192.0.2.1:5060"
outbound_number = "+15550100"
outbound_username = "out"
outbound_password = "OUTBOUNDPASSWORD"
outbound_allow = ["+1"]

[[sip_users]]
username = "alice"
password = "USERPASSWORD"
"#;

const SECRET_VALUES: [&str; 7] = [
    "KEYSECRET0123456789",
    "METRICSTOKEN",
    "TURNSECRET42",
    "REDISPASSWORD",
    "TRUNKPASSWORD",
    "OUTBOUNDPASSWORD",
    "USERPASSWORD",
];

#[test]
fn no_secret_is_printed_by_config_print_or_a_start_up_error() {
    let dir = std::env::temp_dir().join(format!("sb-config-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("switchboard.toml");
    std::fs::write(&file, SECRETS_TOML).unwrap();
    let f = file.to_str().unwrap();
    let (ok, out, err) = sb(&["--config", f, "config", "print"], &[]);
    assert!(ok, "{err}");
    for s in SECRET_VALUES {
        assert!(!out.contains(s), "config print shows {s}:\n{out}");
    }
    assert_eq!(value(&out, "keys"), "\"prod:<redacted>\"");
    assert_eq!(
        value(&out, "redis_url"),
        "\"redis://sb:<redacted>@127.0.0.1:1/0\""
    );
    assert!(out.contains("password = \"<redacted>\""), "{out}");
    // The server cannot reach that Redis (port 1): its start-up error names the URL
    // without the password.
    let (ok, out, err) = sb(
        &[
            "--config",
            f,
            "--http",
            "127.0.0.1:0",
            "--rtc-port",
            "47331",
            "--workers",
            "1",
        ],
        &[],
    );
    assert!(!ok, "started with an unreachable Redis");
    assert!(err.contains("redis_url"), "{err}");
    for s in SECRET_VALUES {
        assert!(
            !err.contains(s) && !out.contains(s),
            "{s} printed:\n{out}{err}"
        );
    }
    // A malformed URL is refused naming the key, still without its password.
    let (ok, _, err) = sb(
        &["config", "print"],
        &[("SWITCHBOARD_REDIS_URL", "http://u:REDISPASSWORD@h")],
    );
    assert!(
        !ok && err.contains("redis_url") && !err.contains("REDISPASSWORD"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Several files merge in order: the second (a Kubernetes Secret, say) adds SIP trunks to
/// what the first sets, and a key in both takes the later value.
#[test]
fn config_files_merge_in_order() {
    let dir = std::env::temp_dir().join(format!("sb-config-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (main, sip) = (dir.join("switchboard.toml"), dir.join("sip.toml"));
    std::fs::write(&main, "workers = 3\nmax_tracks = 7\n").unwrap();
    std::fs::write(
        &sip,
        "max_tracks = 9\n[[sip_trunks]]\nname = \"carrier\"\nnetworks = [\"192.0.2.0/24\"]\nusername = \"u\"\npassword = \"TRUNKSECRET\"\n",
    )
    .unwrap();
    let both = format!("{},{}", main.display(), sip.display());
    for args in [
        vec![
            "--config",
            main.to_str().unwrap(),
            "--config",
            sip.to_str().unwrap(),
        ],
        vec!["--config", &both],
    ] {
        let (ok, out, err) = sb(&[&args[..], &["config", "print"]].concat(), &[]);
        assert!(ok, "{err}");
        assert_eq!(value(&out, "workers"), "3");
        assert_eq!(value(&out, "max_tracks"), "9");
        assert!(
            out.contains("carrier") && !out.contains("TRUNKSECRET"),
            "{out}"
        );
    }
    let (ok, out, _) = sb(&["config", "print"], &[("SWITCHBOARD_CONFIG", &both)]);
    assert!(ok && out.contains("carrier"));
    let (ok, _, err) = sb(
        &[
            "--config",
            &format!("{both},/nonexistent.toml"),
            "config",
            "print",
        ],
        &[],
    );
    assert!(!ok && err.contains("/nonexistent.toml"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every flag of every command says what it does (`--help`); a `serve` flag's text is
/// its key's row of the docs table, so the two cannot drift.
#[test]
fn every_flag_has_help_text() {
    for cmd in [
        vec![],
        vec!["serve"],
        vec!["token", "create"],
        vec!["config", "print"],
        vec!["config", "docs"],
        vec!["keys", "generate"],
    ] {
        let (ok, out, err) = sb(&[&cmd[..], &["--help"]].concat(), &[]);
        assert!(ok, "{cmd:?}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        let mut flags = 0;
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if l.starts_with("  ")
                && (t.starts_with("--") || t.starts_with("-h") || t.starts_with("-V"))
            {
                flags += 1;
                // Short layout: `--flag  text` on one line; long: the text on the next.
                let same_line = t.split_once("  ").map_or("", |(_, h)| h.trim());
                let next_line = lines.get(i + 1).map_or("", |h| h.trim());
                assert!(
                    !same_line.is_empty() || !next_line.is_empty(),
                    "{cmd:?}: `{t}` has no help text:\n{out}"
                );
            }
        }
        assert!(flags > 0, "{cmd:?}: no flags found in\n{out}");
    }
    let (_, out, _) = sb(&["--help"], &[]);
    assert!(
        out.contains("[key: rtc_port; env: SWITCHBOARD_RTC_PORT; default: 7882]"),
        "{out}"
    );
}
