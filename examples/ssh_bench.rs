//! Transport benchmark against the local lab (benches/transport.sh runs it):
//!
//!   ssh_bench INVENTORY sessions         connect to the undercloud, then to every node
//!                                        through it, all at once, and run `true` on each
//!   ssh_bench INVENTORY upload N FILES   upload FILES small files to each of the first N nodes
//!   ssh_bench INVENTORY batch N FILES    the same as one batch per node (one command each)
//!
//! Prints one line of figures (seconds) per phase.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use provision::evaluate::evaluate;
use provision::host::sessions::Sessions;
use provision::model::LoadOptions;
use provision::source::FsTree;
use provision::transport::{Credentials, SshOptions};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let inv = PathBuf::from(args.get(1).expect("inventory"));
    let mode = args.get(2).map(String::as_str).unwrap_or("sessions");
    let cloud = match evaluate(&inv, &FsTree, &LoadOptions::default()) {
        Ok(ev) => ev.cloud,
        Err(f) => {
            eprint!("{}", f.render());
            std::process::exit(1);
        }
    };
    let mut opts = SshOptions::from_cloud(&cloud, false);
    if let Ok(kex) = std::env::var("PROVISION_KEX") {
        opts.kex = kex.split(',').map(str::to_string).collect();
    }
    let creds = Credentials::load(&opts).expect("key");
    let mut names: Vec<String> = cloud.hosts.iter().map(|h| h.name.clone()).collect();
    if mode == "upload" || mode == "batch" {
        let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
        names.truncate(n);
    }
    let start = Instant::now();
    let fleet = Sessions::connect(&cloud, &names, &opts, &creds, 64)
        .await
        .expect("undercloud");
    let connected = start.elapsed();
    let failed: Vec<String> = fleet
        .nodes
        .iter()
        .filter_map(|(n, s)| s.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    if !failed.is_empty() {
        eprintln!("{}", failed.join("\n"));
        std::process::exit(1);
    }
    let sessions: Vec<_> = fleet
        .nodes
        .values()
        .filter_map(|s| s.as_ref().ok().cloned())
        .collect();
    match mode {
        "sessions" => {
            let t = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for s in sessions.clone() {
                tasks.spawn(async move {
                    s.exec("true", None, Duration::from_secs(30))
                        .await
                        .map(|o| o.success())
                });
            }
            while let Some(r) = tasks.join_next().await {
                assert!(matches!(r, Ok(Ok(true))), "a command failed");
            }
            println!(
                "nodes={} connect_all={:.3} run_true={:.3} total={:.3}",
                sessions.len(),
                connected.as_secs_f64(),
                t.elapsed().as_secs_f64(),
                start.elapsed().as_secs_f64()
            );
        }
        "upload" => {
            let files: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(100);
            let t = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for s in sessions.clone() {
                tasks.spawn(async move {
                    let mut inner = tokio::task::JoinSet::new();
                    for i in 0..files {
                        let s = s.clone();
                        inner.spawn(async move {
                            let content =
                                format!("[DEFAULT]\n# file {i}\noption_{i} = value\n").repeat(10);
                            s.upload(
                                &format!("/etc/overcloud/bench/file-{i}.conf"),
                                content.as_bytes(),
                                0o640,
                                "root",
                                "root",
                                Duration::from_secs(60),
                            )
                            .await
                        });
                    }
                    while let Some(r) = inner.join_next().await {
                        r.expect("join").expect("upload");
                    }
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.expect("node");
            }
            println!(
                "nodes={} files_per_node={files} connect_all={:.3} upload={:.3} total={:.3}",
                sessions.len(),
                connected.as_secs_f64(),
                t.elapsed().as_secs_f64(),
                start.elapsed().as_secs_f64()
            );
        }
        "batch" => {
            let files: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(100);
            let t = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for s in sessions.clone() {
                tasks.spawn(async move {
                    let contents: Vec<(String, String)> = (0..files)
                        .map(|i| {
                            (
                                format!("/etc/overcloud/bench/file-{i}.conf"),
                                format!("[DEFAULT]\n# file {i}\noption_{i} = value\n").repeat(10),
                            )
                        })
                        .collect();
                    let batch: Vec<provision::transport::UploadFile> = contents
                        .iter()
                        .map(|(p, c)| provision::transport::UploadFile {
                            path: p,
                            content: c.as_bytes(),
                            mode: 0o640,
                            owner: "root",
                            group: "root",
                        })
                        .collect();
                    s.upload_batch(&batch, Duration::from_secs(120))
                        .await
                        .expect("batch")
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.expect("node");
            }
            println!(
                "nodes={} files_per_node={files} connect_all={:.3} upload={:.3} total={:.3}",
                sessions.len(),
                connected.as_secs_f64(),
                t.elapsed().as_secs_f64(),
                start.elapsed().as_secs_f64()
            );
        }
        other => panic!("unknown mode {other}"),
    }
}
