mod support;
use serde_json::json;
use support::*;

#[tokio::test]
async fn smoke() {
    for iso in ALL {
        let Some((l, _t)) = launcher(iso) else { continue };
        let mut sb = start(&l, spec(&[])).await;
        let env = call(&sb, json!({"op": "env"})).await.expect("env");
        eprintln!("{iso}: {env}");
        let t = call(&sb, json!({"op": "probe", "port": 1, "tmp_mb": 32, "pids": 64})).await.expect("probe");
        eprintln!("{iso}: {t}");
        sb.kill().await;
    }
}
