//! `provision ping`: connects to the undercloud and every node (through it), runs
//! `true` on each, and reports each host's round trip.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use provision::model::Cloud;
use provision::transport::Session;

pub fn ping(cloud: &Cloud, accept_new: bool, parallel: usize) -> ExitCode {
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let names: Vec<String> = cloud.hosts.iter().map(|h| h.name.clone()).collect();
        let start = Instant::now();
        let fleet = match super::open_fleet(cloud, &names, accept_new, parallel).await {
            Ok(f) => f.sessions,
            Err(code) => return code,
        };
        let mut failed = 0;
        let mut report = |name: &str, role: &str, r: Result<Duration, String>| match r {
            Ok(d) => println!(
                "ok    {name:<28} {role:<12} {:>7.1} ms",
                d.as_secs_f64() * 1000.0
            ),
            Err(e) => {
                failed += 1;
                println!("FAIL  {name:<28} {role:<12} {e}");
            }
        };
        report(
            &cloud.undercloud.name,
            "undercloud",
            round_trip(&fleet.undercloud).await,
        );
        for h in &cloud.hosts {
            let r = match fleet.nodes.get(&h.name) {
                Some(Ok(s)) => round_trip(s).await,
                Some(Err(e)) => Err(e.to_string()),
                None => Err("not attempted".into()),
            };
            report(&h.name, &h.role, r);
        }
        println!(
            "\n{} of {} answered in {:.2} s.",
            cloud.hosts.len() + 1 - failed,
            provision::change::plural(cloud.hosts.len() + 1, "host"),
            start.elapsed().as_secs_f64()
        );
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

/// How long `true` takes over an open connection.
async fn round_trip(s: &Session) -> Result<Duration, String> {
    let t = Instant::now();
    s.exec("true", None, Duration::from_secs(30))
        .await
        .map(|_| t.elapsed())
        .map_err(|e| e.to_string())
}
