//! Membership at scale against a running etcd: N simulated workers' leases (one process),
//! watched as a router watches them. Prints the report as JSON.
//!
//! `cargo run --release -p sluice-cluster --example lease_scale -- http://127.0.0.1:2379 1000 5`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let etcd = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let n: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    let ttl: i64 = args.next().map_or(Ok(5), |s| s.parse())?;
    anyhow::ensure!(
        n > 0 && (2..=600).contains(&ttl),
        "need workers > 0 and ttl in 2..=600"
    );
    let r = sluice_cluster::scale::run(&[etcd], n, ttl).await?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}
