//! `provision credentials`: a clouds.yaml for the cloud's admin, on stdout (the only
//! output that holds the admin password); `provision keys rotate`: a key repository
//! rotated on the undercloud.

use std::process::ExitCode;
use std::time::SystemTime;

use provision::apply::rotate;
use provision::evaluate::Evaluation;
use provision::report::events;

/// The secret of the admin's password (keystone's bootstrap sets it).
const ADMIN_PASSWORD: &str = "keystone_admin_password";

pub fn print(ev: &Evaluation) -> ExitCode {
    match clouds_yaml(ev) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The clouds.yaml of the admin: the cloud named after `[cloud] name`, keystone's
/// public endpoint on the external VIP, the admin project and user, the region.
pub fn clouds_yaml(ev: &Evaluation) -> Result<String, String> {
    let cloud = &ev.cloud;
    let vip = cloud.networks.get("external").and_then(|n| n.vip).ok_or(
        "the cloud has no external network with a `vip`: keystone's public endpoint is there",
    )?;
    let password = cloud
        .secrets
        .get(ADMIN_PASSWORD)
        .ok_or_else(|| format!("secret `{ADMIN_PASSWORD}` has no value"))?;
    let region = cloud
        .vars
        .get("keystone_region")
        .and_then(|v| v.as_str())
        .unwrap_or("RegionOne");
    // JSON strings are YAML strings: every value quoted, whatever it holds.
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    Ok(format!(
        "# clouds.yaml for the admin of cloud {name}, written by `provision credentials`.\n\
         # It holds the admin password: keep it mode 0600 (e.g. ~/.config/openstack/clouds.yaml).\n\
         clouds:\n  {key}:\n    auth:\n      auth_url: {url}\n      username: \"admin\"\n      password: {pw}\n      \
         project_name: \"admin\"\n      user_domain_name: \"Default\"\n      project_domain_name: \"Default\"\n    \
         region_name: {region}\n    interface: \"public\"\n    identity_api_version: 3\n",
        name = cloud.name,
        // quoted too: a name such as `true` or `123` is a string key
        key = q(&cloud.name),
        url = q(&format!("http://{vip}:5000/v3")),
        pw = q(password.expose()),
        region = q(region),
    ))
}

pub fn rotate(ev: &Evaluation, repository: &str, accept_new: bool) -> ExitCode {
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let fleet = match super::open_fleet(&ev.cloud, &[], accept_new, 1).await {
            Ok(f) => f,
            Err(code) => return code,
        };
        let holder = format!(
            "{}@{} pid {} (keys rotate) since {}",
            super::operator_name(),
            events::local_hostname(),
            std::process::id(),
            events::rfc3339_millis(SystemTime::now())
        );
        match rotate::rotate(ev, &fleet, repository, &holder).await {
            Ok(r) => {
                let primary = r.keys.iter().max().copied().unwrap_or(0);
                println!(
                    "Rotated {}: key {primary} is the primary, a new key 0 is staged, {} keys in all ({}). Run `provision apply` to write them to every host of the service; tokens made with a key still in the repository stay valid.",
                    r.repository,
                    r.keys.len(),
                    r.keys.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
