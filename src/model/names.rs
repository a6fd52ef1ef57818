//! The model's checks of every name and host path the inventory and the catalogue
//! give, by the rules of [`crate::names`].

use std::path::Path;

use crate::catalogue::{Catalogue, ServiceManifest};
use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::names::{check, NameRule};
use crate::state::{check_host_path, PathUse, Plane};

/// Every name the inventory gives: the cloud's name and domain, the undercloud's name,
/// each network's and role's. (Node names are checked once formatted, with the nodes.)
pub fn check_inventory(
    inv: &crate::inventory::Inventory,
    diags: &mut crate::diagnostics::Diagnostics,
) {
    let f = inv.path.as_path();
    let c = &inv.cloud;
    let u = &inv.undercloud;
    let mut found = vec![
        check(
            "cloud name",
            c.name.get_ref(),
            NameRule::Identifier,
            f,
            Some(c.name.span()),
        ),
        check(
            "domain",
            c.domain.get_ref(),
            NameRule::Domain,
            f,
            Some(c.domain.span()),
        ),
        check(
            "undercloud name",
            u.name.get_ref(),
            NameRule::HostName,
            f,
            Some(u.name.span()),
        ),
    ];
    for (name, _) in &inv.networks {
        found.push(check(
            "network name",
            name.get_ref(),
            NameRule::Identifier,
            f,
            Some(name.span()),
        ));
    }
    for (name, _) in &inv.roles {
        found.push(check(
            "role name",
            name.get_ref(),
            NameRule::Identifier,
            f,
            Some(name.span()),
        ));
    }
    for d in found.into_iter().flatten() {
        diags.push(d);
    }
}

/// Every service of the catalogue: its name (its folder's) is an identifier, and every
/// host path of its manifest stays where its plane's services may write.
pub fn check_catalogue(catalogue: &Catalogue, diags: &mut Diagnostics) {
    let planes = [
        (&catalogue.services, Plane::Overcloud),
        (&catalogue.undercloud_services, Plane::Undercloud),
    ];
    for (services, plane) in planes {
        for svc in services.values() {
            if let Some(d) = check(
                "service name",
                &svc.name,
                NameRule::Identifier,
                &svc.file,
                None,
            ) {
                diags.push(d);
            }
            check_paths(&svc.file, &svc.manifest, plane, diags);
        }
    }
}

/// Every host path of a manifest stays where its plane's services may write
/// ([`check_host_path`]): its files, the files it shares from another service, its
/// directories.
fn check_paths(file: &Path, m: &ServiceManifest, plane: Plane, diags: &mut Diagnostics) {
    let files = m.files.iter().map(|f| (&f.dest, PathUse::File, "file"));
    let shared = m
        .shared_files
        .iter()
        .map(|f| (&f.dest, PathUse::File, "shared file"));
    let dirs = m
        .directories
        .iter()
        .map(|d| (&d.path, PathUse::Directory, "directory"));
    let keys = m
        .keys
        .iter()
        .map(|k| (&k.dir, PathUse::Directory, "key folder"));
    let task_files = m
        .tasks
        .iter()
        .flat_map(|t| t.files.iter())
        .map(|f| (&f.dest, PathUse::File, "task file"));
    for (path, use_, what) in files
        .chain(shared)
        .chain(dirs)
        .chain(keys)
        .chain(task_files)
    {
        if let Err(why) = check_host_path(path.get_ref(), plane, use_) {
            diags.push(
                Diagnostic::new(
                    format!("{what} `{}` {why}", path.get_ref().escape_debug()),
                    Location::new(file, Some(path.span())),
                )
                .help(format!(
                    "write it under the service's own folder, {}/<service>/ (or a drop-in folder docs/catalogue.md lists)",
                    plane.config_root()
                )),
            );
        }
    }
}
