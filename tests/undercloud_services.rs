//! The undercloud's services, run for real on their rendered configuration (nothing from
//! the lab: lab/lab.sh is neither needed nor touched):
//!
//! - dnsmasq 2.90 (`dnsmasq-base`) on the rendered dnsmasq.conf and hosts file, asked
//!   over UDP by a tiny DNS client written here;
//! - rsyslogd 8 on the rendered log receiver of the undercloud, fed over TCP and through
//!   an undercloud service log;
//! - rsyslogd 8 on the rendered forwarder of an overcloud host, sending to that receiver.
//!
//! Each test renders inventories/lab.toml with the real binary into its own scratch
//! directory, then rewrites what cannot run here (absolute paths, the lab's addresses
//! and ports). Every rewrite must match exactly once, so a template change that makes a
//! rewrite miss fails loudly instead of running the daemon on the real host's paths.
//! The daemons listen on the tests' own loopback addresses (127.0.21.x, never the lab's
//! 127.0.10.x) and free ports, are killed by their PID when the test ends (pass or
//! fail), and every wait is bounded.
//!
//! Needs root, `dnsmasq` and `rsyslogd` (scripts/test.sh installs them).

mod common;
use common::repo;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const POLL: Duration = Duration::from_millis(50);
const PATIENCE: Duration = Duration::from_secs(15);

/// The tests' own loopback addresses (the lab is on 127.0.10.x).
const DNS_ADDR: &str = "127.0.21.1";
const RECEIVER_ADDR: &str = "127.0.21.2";
const E2E_RECEIVER_ADDR: &str = "127.0.21.3";

// ---------------------------------------------------------------------------------------
// Scratch directories, daemons, waits
// ---------------------------------------------------------------------------------------

/// A fresh directory under the system's temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "provision-undercloud-{test}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A daemon started by a test, its stdout and stderr in a file; killed by its PID and
/// reaped on drop, so a failed assertion still stops it.
struct Daemon {
    name: &'static str,
    child: Child,
    output: PathBuf,
}

impl Daemon {
    fn start(name: &'static str, command: &mut Command, output: PathBuf) -> Daemon {
        let out = fs::File::create(&output).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} (is it installed?): {e}"));
        Daemon {
            name,
            child,
            output,
        }
    }

    /// Panics, with what the daemon printed, if it has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.printed());
        }
    }

    fn printed(&self) -> String {
        fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls `probe` every 50 ms until it returns something, for 15 s at most; while
/// waiting, every daemon of `running` must stay up.
fn wait_for<T>(what: &str, running: &mut [&mut Daemon], mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for d in running.iter_mut() {
            d.assert_running();
        }
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= deadline {
            let printed: Vec<String> = running
                .iter()
                .map(|d| format!("--- {}:\n{}", d.name, d.printed()))
                .collect();
            panic!(
                "timed out after {PATIENCE:?} waiting for {what}\n{}",
                printed.join("\n")
            );
        }
        std::thread::sleep(POLL);
    }
}

fn free_tcp_port(addr: &str) -> u16 {
    TcpListener::bind((addr, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port(addr: &str) -> u16 {
    UdpSocket::bind((addr, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------
// The render and its test-only rewrites
// ---------------------------------------------------------------------------------------

/// `provision render inventories/lab.toml --out <scratch>/render`; returns the folder.
fn render_lab(scratch: &Scratch) -> PathBuf {
    let out = scratch.path().join("render");
    let o = Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(["render", "inventories/lab.toml", "--out"])
        .arg(&out)
        .current_dir(repo())
        .output()
        .expect("run provision");
    assert!(
        o.status.success(),
        "provision render failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Replaces the one occurrence of `from` in a rendered file's text.
fn rewrite(text: &str, what: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the rendered {what} must hold `{from}` exactly once (the test rewrites it): \
         did the template change?\n{text}"
    );
    text.replacen(from, to, 1)
}

/// Replaces the one line that is exactly `from`.
fn rewrite_line(text: &str, what: &str, from: &str, to: &str) -> String {
    let n = text.lines().filter(|l| *l == from).count();
    assert_eq!(
        n, 1,
        "the rendered {what} must have the line `{from}` exactly once (the test rewrites \
         it): did the template change?\n{text}"
    );
    text.lines()
        .map(|l| if l == from { to } else { l })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Asserts no absolute path of the real host is left in a rewritten configuration
/// (comments aside): the daemon must only touch the test's scratch directory.
fn assert_only_scratch_paths(text: &str, what: &str, scratch: &Path) {
    let scratch = scratch.display().to_string();
    let tops = [
        "var", "etc", "run", "tmp", "srv", "home", "usr", "opt", "root", "dev", "lib",
    ];
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for (i, _) in line.match_indices('/') {
            let path = &line[i..];
            let starts_path = i == 0 || line[..i].ends_with(['"', '=', '^', ' ', '\t']);
            let top = path[1..].split(['/', '"']).next().unwrap_or("");
            assert!(
                !starts_path || !tops.contains(&top) || path.starts_with(&scratch),
                "the rewritten {what} still names a path of the host: `{line}`; add a \
                 rewrite for it"
            );
        }
    }
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

fn append(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

// ---------------------------------------------------------------------------------------
// A tiny DNS client (RFC 1035): one A question, the answer's rcode and A records
// ---------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct Answer {
    rcode: u8,
    a: Vec<Ipv4Addr>,
}

fn dns_query_bytes(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // standard query, recursion desired
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // 1 question, no other records
    for label in name.trim_end_matches('.').split('.') {
        assert!(!label.is_empty() && label.len() < 64, "bad name {name}");
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 1, 0, 1]); // QTYPE A, QCLASS IN
    q
}

/// The offset after the (possibly compressed) name at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            return Some(pos + 1);
        }
        if len & 0xC0 == 0xC0 {
            msg.get(pos + 1)?;
            return Some(pos + 2);
        }
        pos += 1 + len;
    }
}

fn be16(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

fn parse_dns_answer(id: u16, msg: &[u8]) -> Option<Answer> {
    if be16(msg, 0)? != id {
        return None;
    }
    let flags = be16(msg, 2)?;
    assert!(flags & 0x8000 != 0, "not a response: {msg:?}");
    assert!(flags & 0x0200 == 0, "truncated response: {msg:?}");
    let rcode = (flags & 0x000F) as u8;
    let questions = be16(msg, 4)?;
    let answers = be16(msg, 6)?;
    let mut pos = 12;
    for _ in 0..questions {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut a = Vec::new();
    for _ in 0..answers {
        pos = skip_name(msg, pos)?;
        let rtype = be16(msg, pos)?;
        let class = be16(msg, pos + 2)?;
        let len = be16(msg, pos + 8)? as usize;
        let data = msg.get(pos + 10..pos + 10 + len)?;
        if rtype == 1 && class == 1 && len == 4 {
            a.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        pos += 10 + len;
    }
    Some(Answer { rcode, a })
}

/// Asks `server` for the A records of `name`, retrying until it answers (bounded).
fn resolve(server: SocketAddr, name: &str, dnsmasq: &mut Daemon) -> Answer {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let mut id: u16 = 0x5a00;
    wait_for(&format!("dnsmasq to answer {name}"), &mut [dnsmasq], || {
        id = id.wrapping_add(1);
        // Not yet listening: ICMP "port unreachable" makes send or recv fail; retried.
        sock.send(&dns_query_bytes(id, name)).ok()?;
        let mut buf = [0u8; 1500];
        let deadline = Instant::now() + Duration::from_millis(250);
        while Instant::now() < deadline {
            let n = sock.recv(&mut buf).ok()?;
            if let Some(answer) = parse_dns_answer(id, &buf[..n]) {
                return Some(answer);
            }
        }
        None
    })
}

// ---------------------------------------------------------------------------------------
// rsyslog: the receiver and the forwarder with their paths under a fake root
// ---------------------------------------------------------------------------------------

/// The rendered log receiver of lab-undercloud with every path under `root` (a fake
/// `/`) and listening on `addr:port`.
struct Receiver {
    conf: PathBuf,
    /// /var/log/received: the records, by host and service
    received: PathBuf,
    /// /var/log/undercloud: the undercloud's own service logs
    ulogs: PathBuf,
    /// /var/lib/rsyslog
    work: PathBuf,
    /// /var/log/rsyslog/rsyslog.log: rsyslog's own messages
    own_log: PathBuf,
    pid_file: PathBuf,
}

impl Receiver {
    fn prepare(render: &Path, scratch: &Path, root: &Path, addr: &str, port: u16) -> Receiver {
        let what = "receiver rsyslog.conf";
        let text = fs::read_to_string(
            render.join("lab-undercloud/etc/undercloud/log_receiver/rsyslog.conf"),
        )
        .unwrap();
        let r = Receiver {
            conf: scratch.join("receiver-rsyslog.conf"),
            received: root.join("var/log/received"),
            ulogs: root.join("var/log/undercloud"),
            work: root.join("var/lib/rsyslog"),
            own_log: root.join("var/log/rsyslog/rsyslog.log"),
            pid_file: scratch.join("receiver-rsyslogd.pid"),
        };
        let text = rewrite(
            &text,
            what,
            "workDirectory=\"/var/lib/rsyslog\"",
            &format!("workDirectory=\"{}\"", r.work.display()),
        );
        let text = rewrite(
            &text,
            what,
            "constant(value=\"/var/log/received/\")",
            &format!("constant(value=\"{}/\")", r.received.display()),
        );
        let text = rewrite(
            &text,
            what,
            "File=\"/var/log/undercloud/*/*.log\"",
            &format!("File=\"{}/*/*.log\"", r.ulogs.display()),
        );
        let text = rewrite(
            &text,
            what,
            "\"^/var/log/undercloud/([^/]+)/\"",
            &format!("\"^{}/([^/]+)/\"", r.ulogs.display()),
        );
        let text = rewrite(
            &text,
            what,
            "address=\"127.0.10.1\"",
            &format!("address=\"{addr}\""),
        );
        let text = rewrite(&text, what, "port=\"5140\"", &format!("port=\"{port}\""));
        let text = rewrite(
            &text,
            what,
            "file=\"/var/log/rsyslog/rsyslog.log\"",
            &format!("file=\"{}\"", r.own_log.display()),
        );
        assert_only_scratch_paths(&text, what, scratch);
        fs::write(&r.conf, text).unwrap();
        for d in [&r.received, &r.ulogs, &r.work, r.own_log.parent().unwrap()] {
            fs::create_dir_all(d).unwrap();
        }
        r
    }

    fn start(&self, scratch: &Path) -> Daemon {
        Daemon::start(
            "rsyslogd (receiver)",
            Command::new("rsyslogd")
                .arg("-n")
                .arg("-f")
                .arg(&self.conf)
                .arg("-i")
                .arg(&self.pid_file),
            scratch.join("receiver-rsyslogd.out"),
        )
    }
}

/// Connects to the receiver once it listens.
fn connect(addr: SocketAddr, running: &mut [&mut Daemon]) -> TcpStream {
    wait_for(
        &format!("the receiver to listen on {addr}"),
        running,
        || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok(),
    )
}

/// The records of a received file: one JSON object per line.
fn records(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {l}", path.display()))
        })
        .collect()
}

/// Waits until `path` holds `n` complete lines.
fn wait_lines(path: &Path, n: usize, running: &mut [&mut Daemon]) {
    wait_for(
        &format!("{n} record(s) in {}", path.display()),
        running,
        || {
            let text = fs::read_to_string(path).ok()?;
            (text.ends_with('\n') && text.lines().count() >= n).then_some(())
        },
    );
}

/// A record whose time was set when rsyslog read it: RFC 3339 (2026-11-25T02:12:13.625772+00:00).
fn assert_read_time(record: &Value) {
    let t = record["time"].as_str().unwrap_or("");
    let b = t.as_bytes();
    assert!(
        t.len() >= 20
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[10] == b'T'
            && (t.ends_with('Z') || t[19..].contains(['+', '-'])),
        "not an RFC 3339 time: {record}"
    );
}

/// `record` without its `time`.
fn without_time(record: &Value) -> Value {
    let mut r = record.clone();
    r.as_object_mut().unwrap().remove("time");
    r
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[test]
fn dnsmasq_answers_the_clouds_names() {
    let scratch = Scratch::new("dnsmasq");
    let render = render_lab(&scratch);
    let dir = render.join("lab-undercloud/etc/undercloud/dnsmasq");
    let hosts = dir.join("hosts");
    let what = "dnsmasq.conf";
    let rendered = fs::read_to_string(dir.join("dnsmasq.conf")).unwrap();

    // DHCP and TFTP need the real provisioning interface (raw sockets, a DHCP server on
    // a network of machines): dropped here. Their syntax is checked by `dnsmasq --test`
    // on the whole rendered file in tests/config-check/check_native.sh.
    let is_dhcp_or_tftp =
        |l: &str| l.starts_with("dhcp-") || l == "enable-tftp" || l.starts_with("tftp-");
    let dropped: Vec<&str> = rendered.lines().filter(|l| is_dhcp_or_tftp(l)).collect();
    assert!(dropped.iter().any(|l| l.starts_with("dhcp-range=")));
    assert!(dropped.iter().any(|l| l.starts_with("dhcp-host=")));
    assert!(dropped.contains(&"enable-tftp"));
    assert!(dropped.iter().any(|l| l.starts_with("tftp-root=")));
    let text: String = rendered
        .lines()
        .filter(|l| !is_dhcp_or_tftp(l))
        .map(|l| format!("{l}\n"))
        .collect();

    let port = free_udp_port(DNS_ADDR);
    // In the container, the hosts file is mounted at /etc/dnsmasq-cloud-hosts.
    let text = rewrite_line(
        &text,
        what,
        "addn-hosts=/etc/dnsmasq-cloud-hosts",
        &format!("addn-hosts={}", hosts.display()),
    );
    let text = rewrite_line(
        &text,
        what,
        "listen-address=127.0.10.1",
        &format!("listen-address={DNS_ADDR}"),
    );
    let text = rewrite_line(&text, what, "port=53", &format!("port={port}"));
    let log = scratch.path().join("dnsmasq.log");
    let text = rewrite_line(
        &text,
        what,
        "log-facility=/var/log/dnsmasq/dnsmasq.log",
        &format!("log-facility={}", log.display()),
    );
    assert_only_scratch_paths(&text, what, scratch.path());
    let conf = scratch.path().join("dnsmasq.conf");
    fs::write(&conf, &text).unwrap();

    let mut dnsmasq = Daemon::start(
        "dnsmasq",
        Command::new("dnsmasq")
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", conf.display()))
            .arg(format!(
                "--pid-file={}",
                scratch.path().join("dnsmasq.pid").display()
            ))
            // Hermetic: only the rendered hosts file answers (not this machine's
            // /etc/hosts), and nothing is ever sent to this machine's resolvers. A name
            // the cloud's domain does not have still gets NXDOMAIN from `local=` only
            // (without it, dnsmasq would answer REFUSED: no upstream server).
            .arg("--no-hosts")
            .arg("--no-resolv"),
        scratch.path().join("dnsmasq.out"),
    );
    let server: SocketAddr = format!("{DNS_ADDR}:{port}").parse().unwrap();

    // inventories/lab.toml: the undercloud at 127.0.10.1; the nodes in order
    // (Controller .11, Compute .12 .13 .14, ...) take their role's next name; each
    // network address has the host number of the ctlplane one; internal_api's VIP .5.
    let expected = [
        ("lab-novacompute-1.lab.test", "127.0.10.13"),
        ("lab-controller-0.lab.test", "127.0.10.11"),
        ("lab-controller-0.internalapi.lab.test", "127.0.11.11"),
        ("lab.internalapi.lab.test", "127.0.11.5"),
        ("lab-undercloud.lab.test", "127.0.10.1"),
    ];
    for (name, addr) in expected {
        let answer = resolve(server, name, &mut dnsmasq);
        assert_eq!(
            answer,
            Answer {
                rcode: 0,
                a: vec![addr.parse().unwrap()]
            },
            "{name}\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
    // A name of the cloud's domain that no host has: NXDOMAIN from dnsmasq itself
    // (local=/lab.test/), never forwarded.
    let answer = resolve(server, "nope.lab.test", &mut dnsmasq);
    assert_eq!(
        answer,
        Answer {
            rcode: 3,
            a: vec![]
        },
        "nope.lab.test"
    );
    dnsmasq.assert_running();
}

#[test]
fn the_log_receiver_files_each_record_by_host_and_service() {
    let scratch = Scratch::new("receiver");
    let render = render_lab(&scratch);
    let root = scratch.path().join("root");
    let port = free_tcp_port(RECEIVER_ADDR);
    let r = Receiver::prepare(&render, scratch.path(), &root, RECEIVER_ADDR, port);
    // The undercloud's own dnsmasq log, there before rsyslog starts (as in the container).
    let dnsmasq_log = r.ulogs.join("dnsmasq/dnsmasq.log");
    fs::create_dir_all(dnsmasq_log.parent().unwrap()).unwrap();
    fs::write(&dnsmasq_log, "").unwrap();
    let mut rsyslogd = r.start(scratch.path());

    let addr: SocketAddr = format!("{RECEIVER_ADDR}:{port}").parse().unwrap();
    let mut conn = connect(addr, &mut [&mut rsyslogd]);
    let sender = conn.local_addr().unwrap().ip().to_string();
    let nova = json!({
        "time": "2026-11-25T01:00:00+0000",
        "host": "lab-novacompute-0",
        "service": "nova_compute",
        "level": "WARNING",
        "request_id": "req-abc",
        "message": "Instance \"vm-1\" at C:\\lab took 3 s",
    });
    let escape = json!({
        "time": "2026-11-25T01:00:01+0000",
        "host": "../../etc",
        "service": "a/../b",
        "level": "ERROR",
        "request_id": "",
        "message": "escape via host and service",
    });
    let dots = json!({
        "time": "2026-11-25T01:00:02+0000",
        "host": "..",
        "service": "..",
        "level": "ERROR",
        "request_id": "",
        "message": "escape via dot-dot",
    });
    let plain = "Nov 25 01:00:03 something that is not JSON, {half a brace";
    let mut batch = String::new();
    for r in [&nova, &escape, &dots] {
        batch.push_str(&serde_json::to_string(r).unwrap());
        batch.push('\n');
    }
    batch.push_str(plain);
    batch.push('\n');
    conn.write_all(batch.as_bytes()).unwrap();
    drop(conn);
    let own = "dnsmasq-dhcp[7]: DHCPDISCOVER(ens3) 52:54:00:0a:00:0c no address available";
    append(&dnsmasq_log, &format!("{own}\n"));

    // Five records: wait for all of them, wherever they land.
    wait_for("5 records under received/", &mut [&mut rsyslogd], || {
        let n: usize = files_under(&r.received)
            .iter()
            .map(|f| {
                fs::read_to_string(r.received.join(f))
                    .unwrap_or_default()
                    .matches('\n')
                    .count()
            })
            .sum();
        (n >= 5).then_some(())
    });
    // Let a duplicate, if any, arrive before counting.
    std::thread::sleep(Duration::from_millis(300));

    let nova_file = PathBuf::from("lab-novacompute-0/nova_compute.log");
    let plain_file = PathBuf::from(format!("{sender}/unknown.log"));
    let own_file = PathBuf::from("lab-undercloud/dnsmasq.log");
    let files = files_under(&r.received);

    assert_eq!(records(&r.received.join(&nova_file)), vec![nova]);

    // Not JSON: kept whole, from the sender's address, service "unknown".
    assert_eq!(sender, "127.0.0.1");
    let got = records(&r.received.join(&plain_file));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_read_time(&got[0]);
    assert_eq!(
        without_time(&got[0]),
        json!({"host": sender, "service": "unknown", "level": "INFO", "request_id": "",
               "message": plain})
    );

    // The undercloud's own service log: host lab-undercloud, service = its directory.
    let got = records(&r.received.join(&own_file));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_read_time(&got[0]);
    assert_eq!(
        without_time(&got[0]),
        json!({"host": "lab-undercloud", "service": "dnsmasq", "level": "INFO",
               "request_id": "", "message": own})
    );

    // Host and service from the network never make a path out of received/: each
    // lands in a file two plain components below it, the record itself unchanged.
    let mut hostile = Vec::new();
    for (record, label) in [(&escape, "../../etc, a/../b"), (&dots, ".., ..")] {
        let landed: Vec<&PathBuf> = files
            .iter()
            .filter(|f| records(&r.received.join(f)).contains(record))
            .collect();
        assert_eq!(landed.len(), 1, "{label}: {files:?}");
        let f = landed[0];
        let parts: Vec<Component> = f.components().collect();
        assert!(
            parts.len() == 2
                && parts.iter().all(|c| matches!(c, Component::Normal(_)))
                && f.extension().is_some_and(|e| e == "log"),
            "{label} landed at received/{}",
            f.display()
        );
        assert_eq!(
            records(&r.received.join(f)),
            vec![record.clone()],
            "{label}"
        );
        hostile.push(f.clone());
    }
    assert_ne!(hostile[0], hostile[1]);

    let expected: BTreeSet<PathBuf> = [nova_file, plain_file, own_file]
        .into_iter()
        .chain(hostile)
        .collect();
    assert_eq!(files, expected, "exactly one file per host and service");
    // Nothing was written outside received/ (an escape from /var/log/received/../../etc
    // would be root/etc): under the fake root, only rsyslog's work directory, its own
    // log and the service log the test wrote.
    for f in files_under(&root) {
        let p = root.join(&f);
        assert!(
            p.starts_with(&r.received)
                || p.starts_with(&r.work)
                || p == r.own_log
                || p == dnsmasq_log,
            "written outside received/: {}",
            p.display()
        );
    }
    assert!(!root.join("etc").exists() && !root.join("var/etc").exists());
    rsyslogd.assert_running();
}

#[test]
fn an_overcloud_log_line_reaches_the_undercloud_in_the_common_format() {
    let scratch = Scratch::new("forward");
    let render = render_lab(&scratch);

    // The undercloud's receiver.
    let port = free_tcp_port(E2E_RECEIVER_ADDR);
    let r = Receiver::prepare(
        &render,
        scratch.path(),
        &scratch.path().join("undercloud"),
        E2E_RECEIVER_ADDR,
        port,
    );
    let mut receiver = r.start(scratch.path());
    let addr: SocketAddr = format!("{E2E_RECEIVER_ADDR}:{port}").parse().unwrap();
    // Listening before the forwarder starts (omfwd would retry only after 10 s).
    drop(connect(addr, &mut [&mut receiver]));

    // The forwarder of lab-novacompute-0, every path under its own fake root.
    let what = "forwarder rsyslog.conf";
    let node = scratch.path().join("novacompute-0");
    let oclogs = node.join("var/log/overcloud");
    let work = node.join("var/lib/rsyslog");
    let own_log = node.join("var/log/rsyslog/rsyslog.log");
    let text =
        fs::read_to_string(render.join("lab-novacompute-0/etc/overcloud/rsyslog/rsyslog.conf"))
            .unwrap();
    // The disk queue of records not yet sent (queue.filename) is in the work directory.
    let text = rewrite(
        &text,
        what,
        "workDirectory=\"/var/lib/rsyslog\"",
        &format!("workDirectory=\"{}\"", work.display()),
    );
    let text = rewrite(
        &text,
        what,
        "File=\"/var/log/overcloud/*/*.log\"",
        &format!("File=\"{}/*/*.log\"", oclogs.display()),
    );
    let text = rewrite(
        &text,
        what,
        "\"^/var/log/overcloud/([^/]+)/\"",
        &format!("\"^{}/([^/]+)/\"", oclogs.display()),
    );
    let text = rewrite(
        &text,
        what,
        "target=\"127.0.10.1\"",
        &format!("target=\"{E2E_RECEIVER_ADDR}\""),
    );
    let text = rewrite(&text, what, "port=\"5140\"", &format!("port=\"{port}\""));
    let text = rewrite(
        &text,
        what,
        "file=\"/var/log/rsyslog/rsyslog.log\"",
        &format!("file=\"{}\"", own_log.display()),
    );
    assert_only_scratch_paths(&text, what, scratch.path());
    let conf = scratch.path().join("forwarder-rsyslog.conf");
    fs::write(&conf, text).unwrap();
    let nova_log = oclogs.join("nova_compute/nova-compute.log");
    for d in [nova_log.parent().unwrap(), &work, own_log.parent().unwrap()] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(&nova_log, "").unwrap();
    let mut forwarder = Daemon::start(
        "rsyslogd (forwarder)",
        Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(scratch.path().join("forwarder-rsyslogd.pid")),
        scratch.path().join("forwarder-rsyslogd.out"),
    );

    // As oslo.log's JSONFormatter writes a record (one line).
    let oslo = json!({
        "message": "boom",
        "asctime": "2026-11-25T02:00:00+0000",
        "name": "nova.compute.manager",
        "msg": "boom",
        "args": [],
        "levelname": "ERROR",
        "levelno": 40,
        "pathname": "/usr/lib/python3.9/site-packages/nova/compute/manager.py",
        "filename": "manager.py",
        "module": "manager",
        "lineno": 9946,
        "funcname": "_sync_power_states",
        "created": 1795572000.0,
        "msecs": 0.0,
        "relative_created": 1234.5,
        "thread": 140245018404672_u64,
        "thread_name": "MainThread",
        "process_name": "MainProcess",
        "process": 7,
        "traceback": null,
        "hostname": "lab-novacompute-0",
        "error_summary": "",
        "context": {
            "user": "admin", "project": "admin", "request_id": "req-123",
            "global_request_id": null, "resource_uuid": null,
        },
        "extra": {"project": "nova", "version": "unknown"},
    });
    let plain = "2026-11-25 02:00:01.123 7 plain text from nova-compute, not JSON";
    append(
        &nova_log,
        &format!("{}\n{plain}\n", serde_json::to_string(&oslo).unwrap()),
    );

    let received = r.received.join("lab-novacompute-0/nova_compute.log");
    wait_lines(&received, 2, &mut [&mut receiver, &mut forwarder]);
    std::thread::sleep(Duration::from_millis(300));
    let got = records(&received);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0],
        json!({"time": "2026-11-25T02:00:00+0000", "host": "lab-novacompute-0",
               "service": "nova_compute", "level": "ERROR", "request_id": "req-123",
               "message": "boom"})
    );
    assert_read_time(&got[1]);
    assert_eq!(
        without_time(&got[1]),
        json!({"host": "lab-novacompute-0", "service": "nova_compute", "level": "INFO",
               "request_id": "", "message": plain})
    );
    assert_eq!(
        files_under(&r.received),
        BTreeSet::from([PathBuf::from("lab-novacompute-0/nova_compute.log")])
    );
    receiver.assert_running();
    forwarder.assert_running();
}
