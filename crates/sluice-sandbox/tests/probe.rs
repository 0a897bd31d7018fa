//! The isolation probe (`fixtures/probe.py`) under every isolation this host has: beside a
//! worker-like data directory (a store file, a 0600 secret beside a config file), a live
//! sandbox to attack and a TCP port on 127.0.0.1, it attempts every escape; in bubblewrap and
//! unshare mode, with the network off and on, each attempt must fail. A plain process is run
//! only to show that its table differs. With `PROBE_MARKDOWN=1` the tables are printed as
//! markdown (`scripts/probe-isolation.sh`).

mod support;

use serde_json::{json, Value};
use sluice_sandbox::{Isolation, Sandbox};
use std::os::unix::fs::PermissionsExt;
use support::*;

struct Host {
    _t: tempfile::TempDir,
    secret: std::path::PathBuf,
    store: std::path::PathBuf,
    port: u16,
    _listener: std::net::TcpListener,
}

fn host() -> Host {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = t.path().join("config");
    std::fs::create_dir(&config).expect("mkdir");
    std::fs::write(config.join("worker.toml"), "auth_token = \"s3cret\"\n").expect("config");
    let secret = config.join("secret");
    std::fs::write(&secret, "s3cret").expect("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let store = t.path().join("data/sluice.redb");
    std::fs::create_dir_all(store.parent().expect("data")).expect("mkdir");
    std::fs::write(&store, "another tenant's input").expect("store");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    Host {
        _t: t,
        secret,
        store,
        port,
        _listener: listener,
    }
}

fn targets(h: &Host, other: &Sandbox, limits: &sluice_sandbox::Limits) -> Value {
    let dir = other.dir().expect("dir");
    json!({
        "op": "probe",
        "secret": h.secret.display().to_string(),
        "store": h.store.display().to_string(),
        "other_tmp": dir.join("tmp").display().to_string(),
        "other_pid": other.pid(),
        "other_socket_dir": other.socket_dir().display().to_string(),
        "other_socket": other.socket_dir().join("sluice.sock").display().to_string(),
        "port": h.port,
        "tmp_mb": limits.tmp_bytes >> 20,
        "pids": limits.pids,
    })
}

fn markdown(title: &str, table: &Value) {
    if std::env::var_os("PROBE_MARKDOWN").is_none() {
        return;
    }
    println!("\n#### {title}\n\n| attempt | result | detail |\n|---|---|---|");
    if let Some(rows) = table.as_object() {
        for (name, r) in rows {
            let verdict = if r["escaped"] == true {
                "**escaped**"
            } else {
                "blocked"
            };
            let detail = r["detail"]
                .as_str()
                .unwrap_or("")
                .replace('|', "/")
                .replace('\n', " ");
            println!("| {name} | {verdict} | {detail} |");
        }
    }
}

#[tokio::test]
async fn every_escape_fails_in_isolated_sandboxes_and_a_plain_process_differs() {
    let h = host();
    for iso in ALL {
        let Some((l, _t)) = launcher_in(iso, &h.store.with_file_name("sandboxes")).map(|l| (l, ()))
        else {
            continue;
        };
        let other = start(&l, spec(&[])).await;
        let networks: &[bool] = if iso == Isolation::Plain {
            &[false]
        } else {
            &[false, true]
        };
        for &network in networks {
            if network && !network_usable() {
                continue;
            }
            let mut s = spec(&[]);
            s.network = network;
            let limits = s.limits.clone();
            let sb = start(&l, s).await;
            let table = call(&sb, targets(&h, &other, &limits))
                .await
                .expect("probe");
            let title = format!("{iso}, network {}", if network { "on" } else { "off" });
            markdown(&title, &table);
            let rows = table.as_object().expect("a table");
            assert!(rows.len() >= 30, "{title}: {table}");
            let limits = l.cgroups() != sluice_sandbox::CgroupMode::None;
            if !limits {
                eprintln!("NOT CHECKED under {title}: the pids limit (no usable cgroups here)");
            }
            let escaped: Vec<&String> = rows
                .iter()
                .filter(|(k, r)| {
                    r["escaped"] == true && (limits || !k.starts_with("start more than"))
                })
                .map(|(k, _)| k)
                .collect();
            if iso == Isolation::Plain {
                assert!(
                    !escaped.is_empty(),
                    "{title}: a plain process should escape somewhere"
                );
            } else {
                assert!(escaped.is_empty(), "{title}: escaped: {escaped:?}\n{table}");
            }
        }
        drop(other);
    }
}
