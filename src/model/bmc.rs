//! A node's BMC: the settings its driver needs, its password secret, and an endpoint
//! no other node shares.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::build::loc;
use super::Bmc;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::inventory::spec::{BmcDriver, NodeSpec};
use crate::inventory::Secrets;

/// The BMC of `node` (named `name`), checked; `seen` holds the BMC endpoints of the
/// nodes before it, with where each is written.
pub(super) fn check_bmc(
    file: &Path,
    node: &NodeSpec,
    name: &str,
    secrets: &Secrets,
    secrets_hint: &str,
    seen: &mut BTreeMap<String, Range<usize>>,
    diags: &mut Diagnostics,
) -> Bmc {
    let Some(spec) = &node.bmc else {
        return Bmc::none();
    };
    let driver = *spec.driver.get_ref();
    let dspan = spec.driver.span();
    if driver != BmcDriver::None {
        let needs = |what: &str, present: bool, diags: &mut Diagnostics| {
            if !present {
                diags.push(
                    Diagnostic::new(
                        format!("the {driver:?} BMC of `{name}` has no `{what}`")
                            .to_lowercase()
                            .replace("redfish", "Redfish")
                            .replace("ipmi", "IPMI"),
                        loc(file, dspan.clone()),
                    )
                    .help(format!("add `{what}` to this node's `bmc` table")),
                );
            }
        };
        needs("address", spec.address.is_some(), diags);
        needs("username", spec.username.is_some(), diags);
        needs("password", spec.password.is_some(), diags);
        if driver == BmcDriver::Redfish {
            needs("system_id", spec.system_id.is_some(), diags);
        }
        if let Some(pw) = &spec.password {
            let secret = pw.name.get_ref();
            if !secrets.contains(secret) {
                diags.push(
                    Diagnostic::new(
                        format!("secret `{secret}` (BMC password of `{name}`) has no value"),
                        loc(file, pw.name.span()),
                    )
                    .help(secrets_hint.replace("NAME", secret)),
                );
            }
        }
        if let Some(addr) = &spec.address {
            let port = spec
                .port
                .unwrap_or(if driver == BmcDriver::Ipmi { 623 } else { 443 });
            let key = format!(
                "{}:{port}/{}",
                addr.get_ref(),
                spec.system_id
                    .as_ref()
                    .map(|s| s.get_ref().as_str())
                    .unwrap_or("")
            );
            let span = spec
                .system_id
                .as_ref()
                .map(|s| s.span())
                .unwrap_or(addr.span());
            if let Some(first) = seen.get(&key) {
                diags.push(
                    Diagnostic::new(
                        format!("duplicate BMC endpoint {key}: two nodes would share one BMC"),
                        loc(file, span),
                    )
                    .note("first used here", loc(file, first.clone()))
                    .help("give each node its own BMC address, port or system id"),
                );
            } else {
                seen.insert(key, span);
            }
        }
    }
    Bmc {
        driver,
        address: spec.address.as_ref().map(|a| a.get_ref().clone()),
        port: spec.port,
        system_id: spec.system_id.as_ref().map(|s| s.get_ref().clone()),
        username: spec.username.clone(),
        password_secret: spec.password.as_ref().map(|p| p.name.get_ref().clone()),
        scheme: spec.scheme.clone(),
        verify_tls: spec.verify_tls,
    }
}
