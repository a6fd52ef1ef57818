//! Redfish through curl run on the undercloud. The credentials are curl configuration
//! on curl's standard input (`-K -`), never on its command line. Pure functions build the
//! command and its input and read the answer; [`call`] runs them.

use std::time::Duration;

use serde_json::Value;

use super::{bracket, excerpt, BmcError, BmcTarget, BootOverride, PowerState, Runner};
use crate::transport::{shell_quote, ExecOutput};

/// How long the runner waits for curl (curl itself gives up after 20 s).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// `ComputerSystem.Reset`'s `ResetType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetType {
    On,
    ForceOff,
    ForceRestart,
    /// Power off, then on (a hard restart for BMCs that offer no `ForceRestart`).
    PowerCycle,
}

impl ResetType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetType::On => "On",
            ResetType::ForceOff => "ForceOff",
            ResetType::ForceRestart => "ForceRestart",
            ResetType::PowerCycle => "PowerCycle",
        }
    }
}

/// A Redfish call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// GET the system.
    GetSystem,
    /// PATCH the boot override to Pxe, Once.
    SetPxeOnce,
    /// POST ComputerSystem.Reset.
    Reset(ResetType),
}

/// What a system's GET says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    pub power: PowerState,
    pub boot: BootOverride,
    /// The `ResetType@Redfish.AllowableValues` of its `#ComputerSystem.Reset` action;
    /// `None` when the system does not list them.
    pub reset_types: Option<Vec<String>>,
}

/// The hard restart to send to a system that is on: `ForceRestart`, or `PowerCycle`
/// when the system lists its reset types without `ForceRestart`. A system that lists
/// neither is refused ([`BmcError::NoHardRestart`]); one that lists no reset types
/// gets `ForceRestart`.
pub fn restart_type(t: &BmcTarget, allowed: Option<&[String]>) -> Result<ResetType, BmcError> {
    let Some(allowed) = allowed else {
        return Ok(ResetType::ForceRestart);
    };
    for want in [ResetType::ForceRestart, ResetType::PowerCycle] {
        if allowed.iter().any(|a| a == want.as_str()) {
            return Ok(want);
        }
    }
    Err(BmcError::NoHardRestart {
        node: t.node.clone(),
        bmc: t.endpoint(),
        allowed: if allowed.is_empty() {
            "none".into()
        } else {
            allowed.join(", ")
        },
    })
}

/// An HTTP answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Percent-encodes a URL path segment.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `SCHEME://ADDRESS:PORT/redfish/v1/Systems/ID`.
pub fn system_url(t: &BmcTarget) -> String {
    format!(
        "{}://{}:{}/redfish/v1/Systems/{}",
        t.scheme,
        bracket(&t.address),
        t.port,
        encode_segment(t.system_id.as_deref().unwrap_or(""))
    )
}

/// The curl command of a call. It holds no credentials: they come on stdin
/// ([`curl_config`]). The last line of its output is the HTTP status code.
pub fn command(t: &BmcTarget, req: Request) -> String {
    let mut cmd =
        String::from("curl -sS -K - -w '\\n%{http_code}' --max-time 20 --connect-timeout 5");
    if !t.verify_tls && t.scheme == "https" {
        cmd.push_str(" --insecure");
    }
    let url = system_url(t);
    let (method, url, body) = match req {
        Request::GetSystem => ("GET", url, None),
        Request::SetPxeOnce => (
            "PATCH",
            url,
            Some(r#"{"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}"#.to_string()),
        ),
        Request::Reset(kind) => (
            "POST",
            format!("{url}/Actions/ComputerSystem.Reset"),
            Some(format!(r#"{{"ResetType": "{}"}}"#, kind.as_str())),
        ),
    };
    cmd.push_str(" -X ");
    cmd.push_str(method);
    cmd.push_str(" -H 'Accept: application/json'");
    if let Some(body) = body {
        cmd.push_str(" -H 'Content-Type: application/json' --data-binary ");
        cmd.push_str(&shell_quote(&body));
    }
    cmd.push(' ');
    cmd.push_str(&shell_quote(&url));
    cmd
}

/// Quotes a value for curl's configuration syntax: in double quotes, with `\`, `"` and
/// control characters escaped.
pub fn curl_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// curl's configuration on its stdin: `user = "NAME:PASSWORD"`.
pub fn curl_config(t: &BmcTarget) -> Result<Vec<u8>, BmcError> {
    let user = t.username.as_deref().unwrap_or("");
    let bad = |reason: &str| BmcError::BadCredentials {
        node: t.node.clone(),
        bmc: t.endpoint(),
        reason: reason.into(),
    };
    if user.contains(':') {
        return Err(bad(
            "a Redfish username cannot contain `:` (HTTP basic authentication)",
        ));
    }
    if user.contains('\0')
        || t.password
            .as_ref()
            .is_some_and(|p| p.expose().contains('\0'))
    {
        return Err(bad("the username or password contains a NUL character"));
    }
    if user.is_empty() && t.password.is_none() {
        return Ok(Vec::new());
    }
    let password = t.password.as_ref().map(|p| p.expose()).unwrap_or("");
    Ok(format!("user = {}\n", curl_quote(&format!("{user}:{password}"))).into_bytes())
}

/// Reads curl's result: its exit status (connection, TLS) and the HTTP status (auth,
/// unknown system, errors). A 2xx answer is returned.
pub fn parse_response(t: &BmcTarget, via: &str, out: &ExecOutput) -> Result<Response, BmcError> {
    let stdout = out.stdout_text();
    let stderr = out.stderr_text();
    let detail = || {
        let s = stderr.trim();
        let s = s.strip_prefix("curl: ").unwrap_or(s);
        excerpt(s)
    };
    let node = t.node.clone();
    let bmc = t.endpoint();
    match out.status {
        Some(0) => {}
        Some(6 | 7 | 28) => {
            return Err(BmcError::Unreachable {
                node,
                bmc,
                via: via.into(),
                detail: detail(),
            })
        }
        Some(35 | 51 | 53 | 54 | 58 | 59 | 60 | 64 | 66 | 77 | 80 | 82 | 83 | 90 | 91) => {
            return Err(BmcError::Tls {
                node,
                bmc,
                via: via.into(),
                detail: detail(),
            })
        }
        Some(127) => {
            return Err(BmcError::ToolMissing {
                node,
                tool: "curl".into(),
                via: via.into(),
            })
        }
        Some(code) => {
            return Err(BmcError::Protocol {
                node,
                bmc,
                message: format!("curl failed (exit status {code})"),
                excerpt: detail(),
            })
        }
        None => {
            return Err(BmcError::Protocol {
                node,
                bmc,
                message: format!(
                    "curl was killed ({})",
                    out.signal.as_deref().unwrap_or("signal")
                ),
                excerpt: detail(),
            })
        }
    }
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    let status: u16 = code.trim().parse().map_err(|_| BmcError::Protocol {
        node: node.clone(),
        bmc: bmc.clone(),
        message: "no HTTP status code at the end of curl's output".into(),
        excerpt: excerpt(&stdout),
    })?;
    let body = body.to_string();
    match status {
        200..=299 => Ok(Response { status, body }),
        401 | 403 => Err(BmcError::AuthFailed {
            node,
            bmc,
            detail: format!(
                "HTTP {status}{}",
                if status == 403 { ", the user may lack the privilege" } else { "" }
            ),
            secret_hint: t.secret_hint(),
        }),
        404 => Err(BmcError::UnknownSystem {
            node,
            bmc,
            system_id: t.system_id.clone().unwrap_or_default(),
        }),
        300..=399 => Err(BmcError::Protocol {
            node,
            bmc,
            message: format!("HTTP {status}, a redirection (an alias of the system? use its id as listed under /redfish/v1/Systems)"),
            excerpt: excerpt(&body),
        }),
        0 => Err(BmcError::Protocol {
            node,
            bmc,
            message: "no HTTP answer".into(),
            excerpt: detail(),
        }),
        _ => Err(BmcError::Protocol {
            node,
            bmc,
            message: format!("HTTP {status}{}", redfish_message(&body).map(|m| format!(" ({m})")).unwrap_or_default()),
            excerpt: excerpt(&body),
        }),
    }
}

/// The message of a Redfish error answer (`error.message` and the extended info).
pub fn redfish_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let err = v.get("error")?;
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = err.get("message").and_then(Value::as_str) {
        parts.push(m.to_string());
    }
    if let Some(infos) = err.get("@Message.ExtendedInfo").and_then(Value::as_array) {
        for i in infos {
            if let Some(m) = i.get("Message").and_then(Value::as_str) {
                if !parts.iter().any(|p| p == m) {
                    parts.push(m.to_string());
                }
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Reads a system's JSON: `PowerState`, `Boot` and the reset types of its
/// `Actions`.
pub fn parse_system(t: &BmcTarget, body: &str) -> Result<System, BmcError> {
    let protocol = |message: &str| BmcError::Protocol {
        node: t.node.clone(),
        bmc: t.endpoint(),
        message: message.into(),
        excerpt: excerpt(body),
    };
    let v: Value = serde_json::from_str(body)
        .map_err(|e| protocol(&format!("the system is not JSON ({e})")))?;
    let power = match v.get("PowerState") {
        Some(Value::String(s)) => PowerState::from_redfish(s),
        Some(Value::Null) | None => PowerState::Unknown("no PowerState".into()),
        Some(_) => return Err(protocol("PowerState is not a string")),
    };
    let boot = v.get("Boot");
    let field = |name: &str| {
        boot.and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .unwrap_or("None")
            .to_string()
    };
    let reset_types = v
        .get("Actions")
        .and_then(|a| a.get("#ComputerSystem.Reset"))
        .and_then(|r| r.get("ResetType@Redfish.AllowableValues"))
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
    Ok(System {
        power,
        boot: BootOverride {
            target: field("BootSourceOverrideTarget"),
            enabled: field("BootSourceOverrideEnabled"),
        },
        reset_types,
    })
}

/// Runs one call and returns its 2xx answer.
pub async fn call(runner: &dyn Runner, t: &BmcTarget, req: Request) -> Result<Response, BmcError> {
    let stdin = curl_config(t)?;
    let cmd = command(t, req);
    let out = runner
        .run(&cmd, &stdin, COMMAND_TIMEOUT)
        .await
        .map_err(|e| t.runner_error(runner, e))?;
    parse_response(t, runner.name(), &out)
}

/// GET the system.
pub async fn get_system(runner: &dyn Runner, t: &BmcTarget) -> Result<System, BmcError> {
    let r = call(runner, t, Request::GetSystem).await?;
    parse_system(t, &r.body)
}

/// PATCH the boot override to Pxe, Once.
pub async fn set_pxe_once(runner: &dyn Runner, t: &BmcTarget) -> Result<(), BmcError> {
    call(runner, t, Request::SetPxeOnce).await.map(drop)
}

/// POST ComputerSystem.Reset.
pub async fn reset(runner: &dyn Runner, t: &BmcTarget, kind: ResetType) -> Result<(), BmcError> {
    call(runner, t, Request::Reset(kind)).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baremetal::testutil::{out, target};
    use crate::inventory::spec::BmcDriver;

    #[test]
    fn commands() {
        let mut t = target(BmcDriver::Redfish);
        assert_eq!(
            command(&t, Request::GetSystem),
            "curl -sS -K - -w '\\n%{http_code}' --max-time 20 --connect-timeout 5 -X GET -H 'Accept: application/json' https://10.0.0.5:443/redfish/v1/Systems/sys-1"
        );
        t.verify_tls = false;
        assert_eq!(
            command(&t, Request::SetPxeOnce),
            "curl -sS -K - -w '\\n%{http_code}' --max-time 20 --connect-timeout 5 --insecure -X PATCH -H 'Accept: application/json' -H 'Content-Type: application/json' --data-binary '{\"Boot\": {\"BootSourceOverrideTarget\": \"Pxe\", \"BootSourceOverrideEnabled\": \"Once\"}}' https://10.0.0.5:443/redfish/v1/Systems/sys-1"
        );
        t.scheme = "http".into();
        t.port = 8000;
        t.system_id = Some("a b/c".into());
        let c = command(&t, Request::Reset(ResetType::ForceOff));
        assert!(!c.contains("--insecure"), "{c}");
        assert!(c.ends_with(" -X POST -H 'Accept: application/json' -H 'Content-Type: application/json' --data-binary '{\"ResetType\": \"ForceOff\"}' http://10.0.0.5:8000/redfish/v1/Systems/a%20b%2Fc/Actions/ComputerSystem.Reset"), "{c}");
        t.address = "fd00::5".into();
        assert!(command(&t, Request::GetSystem)
            .ends_with(" 'http://[fd00::5]:8000/redfish/v1/Systems/a%20b%2Fc'"));
    }

    #[test]
    fn credentials_only_on_stdin() {
        let t = target(BmcDriver::Redfish);
        let pw = t.password.as_ref().unwrap().expose().to_string();
        for req in [
            Request::GetSystem,
            Request::SetPxeOnce,
            Request::Reset(ResetType::On),
        ] {
            let c = command(&t, req);
            assert!(!c.contains(&pw) && !c.contains("s3cr"), "{c}");
            assert!(!c.contains("admin"), "{c}");
        }
        assert_eq!(
            String::from_utf8(curl_config(&t).unwrap()).unwrap(),
            "user = \"admin:s3cr\\\"et\\\\pw\"\n"
        );
        assert_eq!(curl_quote("a\tb\nc"), "\"a\\tb\\nc\"");
        let mut bad = t.clone();
        bad.username = Some("ad:min".into());
        assert!(matches!(
            curl_config(&bad),
            Err(BmcError::BadCredentials { .. })
        ));
    }

    #[test]
    fn responses() {
        let t = target(BmcDriver::Redfish);
        let r = parse_response(&t, "undercloud", &out(0, "{\"a\": 1}\n200", "")).unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                body: "{\"a\": 1}".into()
            }
        );
        let r = parse_response(&t, "undercloud", &out(0, "\n204", "")).unwrap();
        assert_eq!(r.status, 204);
        assert_eq!(r.body, "");

        let e = parse_response(&t, "undercloud", &out(0, "{}\n401", "")).unwrap_err();
        assert!(
            matches!(e, BmcError::AuthFailed { ref node, .. } if node == "overcloud-controller-0")
        );
        assert_eq!(e.to_string(), "overcloud-controller-0: the BMC redfish https://10.0.0.5:443 system sys-1 refused the credentials (HTTP 401); check the BMC `username` and the value of the password secret `bmc_password`");
        let e = parse_response(&t, "undercloud", &out(0, "nope\n404", "")).unwrap_err();
        assert!(
            matches!(e, BmcError::UnknownSystem { ref system_id, .. } if system_id == "sys-1"),
            "{e}"
        );
        let e = parse_response(
            &t,
            "undercloud",
            &out(
                7,
                "\n000",
                "curl: (7) Failed to connect to 10.0.0.5 port 443: Connection refused",
            ),
        )
        .unwrap_err();
        assert!(
            matches!(e, BmcError::Unreachable { ref via, .. } if via == "undercloud"),
            "{e}"
        );
        assert!(e.to_string().contains("(7) Failed to connect"), "{e}");
        let e = parse_response(
            &t,
            "undercloud",
            &out(28, "\n000", "curl: (28) Connection timed out"),
        )
        .unwrap_err();
        assert!(matches!(e, BmcError::Unreachable { .. }), "{e}");
        let e = parse_response(
            &t,
            "undercloud",
            &out(60, "\n000", "curl: (60) SSL certificate problem"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("verify_tls = false"), "{e}");
        let e = parse_response(&t, "undercloud", &out(127, "", "sh: curl: not found")).unwrap_err();
        assert!(matches!(e, BmcError::ToolMissing { .. }), "{e}");
        let body = r#"{"error": {"code": "Base.1.0.GeneralError", "message": "Power state X is not supported", "@Message.ExtendedInfo": [{"Message": "Power state X is not supported"}]}}"#;
        let e = parse_response(&t, "undercloud", &out(0, &format!("{body}\n400"), "")).unwrap_err();
        assert!(
            e.to_string()
                .contains("HTTP 400 (Power state X is not supported)"),
            "{e}"
        );
        let long = "x".repeat(500);
        let e = parse_response(&t, "u", &out(0, &format!("{long}\n500"), "")).unwrap_err();
        match e {
            BmcError::Protocol { excerpt, .. } => assert_eq!(excerpt.len(), 200),
            other => panic!("{other}"),
        }
        let e = parse_response(&t, "u", &out(0, "garbage", "")).unwrap_err();
        assert!(matches!(e, BmcError::Protocol { .. }), "{e}");
    }

    #[test]
    fn system() {
        let t = target(BmcDriver::Redfish);
        let s = parse_system(
            &t,
            r#"{"Id": "sys-1", "PowerState": "Off", "Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}}"#,
        )
        .unwrap();
        assert_eq!(s.power, PowerState::Off);
        assert_eq!(
            s.boot,
            BootOverride {
                target: "Pxe".into(),
                enabled: "Once".into()
            }
        );
        assert_eq!(s.reset_types, None);
        let s = parse_system(&t, r#"{"PowerState": "PoweringOn"}"#).unwrap();
        assert_eq!(s.power, PowerState::PoweringOn);
        assert_eq!(s.boot.target, "None");
        let s = parse_system(
            &t,
            r##"{"PowerState": "On", "Actions": {"#ComputerSystem.Reset": {"target": "/x", "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "PowerCycle"]}}}"##,
        )
        .unwrap();
        assert_eq!(
            s.reset_types,
            Some(vec!["On".into(), "ForceOff".into(), "PowerCycle".into()])
        );
        assert!(matches!(
            parse_system(&t, "<html>"),
            Err(BmcError::Protocol { .. })
        ));
    }

    #[test]
    fn restart_types() {
        let t = target(BmcDriver::Redfish);
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(restart_type(&t, None).unwrap(), ResetType::ForceRestart);
        let both = list(&["On", "PowerCycle", "ForceRestart"]);
        assert_eq!(
            restart_type(&t, Some(&both)).unwrap(),
            ResetType::ForceRestart
        );
        let cycle = list(&["On", "ForceOff", "PowerCycle"]);
        assert_eq!(
            restart_type(&t, Some(&cycle)).unwrap(),
            ResetType::PowerCycle
        );
        let soft = list(&["On", "ForceOff", "GracefulRestart"]);
        let e = restart_type(&t, Some(&soft)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "overcloud-controller-0: the BMC redfish https://10.0.0.5:443 system sys-1 offers no hard restart: its ComputerSystem.Reset allows On, ForceOff, GracefulRestart (neither ForceRestart nor PowerCycle); nothing was pressed: restart the machine from the BMC's own interface, or run `power off`, then `power on`"
        );
        let e = restart_type(&t, Some(&[])).unwrap_err();
        assert!(e.to_string().contains("allows none ("), "{e}");
        assert!(command(&t, Request::Reset(ResetType::PowerCycle))
            .contains("--data-binary '{\"ResetType\": \"PowerCycle\"}'"));
    }
}
