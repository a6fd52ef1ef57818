//! Containers: each service's container definition (image, command, environment,
//! volumes, labels with a config hash over everything it uses), its definition file,
//! and the systemd unit that starts it at boot.

use std::collections::BTreeMap;

use minijinja::Value;
use sha2::{Digest, Sha256};

use super::services::Pending;
use super::skip::SkippedContainer;
use super::Renderer;
use crate::catalogue::Service;
use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::model::Host;
use crate::state::{
    hex, unit_name, ContainerDef, DesiredFile, FileKind, HostState, Plane, UNIT_DIR,
};

impl Renderer<'_> {
    /// The containers of the services in `pending` (those with an image, with their
    /// template context), after every file of the host is rendered: a container's config
    /// hash covers the files of other services it shares.
    pub(super) fn render_containers(
        &self,
        hs: &mut HostState,
        host: &Host,
        plane: Plane,
        pending: Vec<Pending>,
        diags: &mut Diagnostics,
    ) {
        for Pending {
            svc,
            ctx,
            mounts,
            output,
        } in pending
        {
            // Its environment is rendered from the manifest: where a secret would come from.
            let at = Location::file(&svc.file);
            // A container whose files are all its service's: in the cache's key.
            let output = output.filter(|_| svc.manifest.shared_files.is_empty());
            if let Some((container, def_file)) = output.as_ref().and_then(|o| o.container.get()) {
                let mut def_file = def_file.clone();
                if output.as_ref().map(|o| o.secrets_id) != Some(self.secrets_id()) {
                    self.check_secrets(host, svc, &mut def_file, &at, &at, diags);
                }
                self.insert_file(hs, svc, host, def_file, diags);
                hs.containers
                    .insert(container.name.clone(), container.clone());
                continue;
            }
            let before = self.findings(diags);
            let (used, shared_mounts) = container_files(hs, svc, host, diags);
            let container = self.container(svc, plane, &used, &mounts, shared_mounts, &ctx, diags);
            let mut def_file = self.definition_file(&container, svc, plane);
            self.check_secrets(host, svc, &mut def_file, &at, &at, diags);
            if let Some(o) = output
                .filter(|o| o.secrets_id == self.secrets_id() && self.findings(diags) == before)
            {
                let _ = o.container.set((container.clone(), def_file.clone()));
            }
            self.insert_file(hs, svc, host, def_file, diags);
            hs.containers.insert(container.name.clone(), container);
        }
    }

    /// The file `provision apply` creates the container from: its definition, as JSON.
    fn definition_file(
        &self,
        container: &ContainerDef,
        svc: &Service,
        plane: Plane,
    ) -> DesiredFile {
        let def_json = serde_json::to_string_pretty(container).unwrap_or_default() + "\n";
        DesiredFile {
            path: format!("{}/{}.json", plane.container_defs(), svc.name),
            secret: false, // check_secrets knows
            content: def_json,
            mode: 0o600,
            owner: "root".into(),
            group: "root".into(),
            service: svc.name.clone(),
            kind: FileKind::Container {
                container: svc.name.clone(),
            },
        }
    }

    /// The container of service `svc`: its image, command, environment (rendered with
    /// `ctx`), volumes (its files' `mounts`, `shared_mounts`, its log directory, its own)
    /// and labels, the lab's stand-in if any, and a config hash over `files`.
    #[allow(clippy::too_many_arguments)]
    fn container(
        &self,
        svc: &Service,
        plane: Plane,
        files: &[&DesiredFile],
        mounts: &[(String, String)],
        shared_mounts: Vec<String>,
        ctx: &Value,
        diags: &mut Diagnostics,
    ) -> ContainerDef {
        let cloud = self.cloud;
        let m = &svc.manifest;
        let mut environment = BTreeMap::new();
        for (k, v) in &m.environment {
            let name = format!("{}#environment:{v}", svc.file.display());
            match self.render_str(&name, v, ctx) {
                Ok(r) => {
                    environment.insert(k.clone(), r);
                }
                Err(d) => diags.push(d),
            }
        }
        let mut volumes: Vec<String> = Vec::new();
        let mut mounted: Vec<&(String, String)> = mounts.iter().collect();
        mounted.sort();
        for (dest, cpath) in mounted {
            volumes.push(format!("{dest}:{cpath}:ro"));
        }
        volumes.extend(shared_mounts);
        volumes.push(format!(
            "{}/{}:{}:rw",
            plane.log_root(),
            svc.name,
            m.log_dir
        ));
        volumes.extend(m.volumes.iter().cloned());
        let mut def = ContainerDef {
            name: svc.name.clone(),
            service: svc.name.clone(),
            step: *m.step.get_ref(),
            image: cloud.image_ref(
                m.image
                    .as_ref()
                    .map(|i| i.get_ref().as_str())
                    .unwrap_or_default(),
            ),
            command: m.command.clone(),
            user: m.user.clone(),
            network: m.network,
            privileged: m.privileged,
            pid: m.pid.clone(),
            cgroupns: m.cgroupns.clone(),
            restart: m.restart.clone(),
            environment,
            volumes,
            healthcheck: m.healthcheck.clone(),
            hosts: if m.resolve_peers {
                peers(cloud, &svc.name)
            } else {
                BTreeMap::new()
            },
            labels: BTreeMap::new(),
        };
        // The lab runs a stand-in in every container whose image does not hold the real
        // service (lab/README.md).
        let image_name = m
            .image
            .as_ref()
            .map(|i| i.get_ref().as_str())
            .unwrap_or_default();
        if let Some(lab) = cloud
            .inventory
            .lab
            .as_ref()
            .filter(|_| cloud.stand_in(image_name))
        {
            if !lab.stand_in_command.is_empty() {
                def.command = lab.stand_in_command.clone();
            }
            if let Some(hc) = def.healthcheck.as_mut() {
                if let Some(test) = lab
                    .healthchecks
                    .get(&svc.name)
                    .or(lab.stand_in_healthcheck.as_ref())
                {
                    hc.test = test.clone();
                }
                if let Some(secs) = lab.stand_in_health_interval {
                    hc.interval = format!("{secs}s");
                }
                if let Some(secs) = lab.stand_in_health_timeout {
                    hc.timeout = format!("{secs}s");
                }
            }
        }
        // The config hash covers the definition (without its labels) and every file the
        // container uses.
        let config_hash = config_hash(&def, files);
        def.labels.insert("managed_by".into(), "provision".into());
        def.labels
            .insert("provision.service".into(), svc.name.clone());
        def.labels
            .insert("provision.step".into(), def.step.to_string());
        def.labels
            .insert("provision.config_hash".into(), config_hash);
        def
    }
}

/// The files the container of `svc` uses: its service's own, and the files of other
/// services it mounts (each must be rendered on this host by the service named), with
/// their mounts.
fn container_files<'h>(
    hs: &'h HostState,
    svc: &Service,
    host: &Host,
    diags: &mut Diagnostics,
) -> (Vec<&'h DesiredFile>, Vec<String>) {
    let mut used: Vec<&DesiredFile> = hs
        .files
        .values()
        .filter(|f| f.service == svc.name)
        .collect();
    let mut shared_mounts = Vec::new();
    for sf in &svc.manifest.shared_files {
        match hs.files.get(sf.dest.get_ref()) {
            Some(f) if &f.service == sf.from.get_ref() => {
                used.push(f);
                shared_mounts.push(format!("{}:{}:ro", sf.dest.get_ref(), sf.container_path));
            }
            _ => diags.push(
                Diagnostic::new(
                    format!(
                        "service `{}` on `{}` mounts {} of service `{}`, which does not run there",
                        svc.name,
                        host.name,
                        sf.dest.get_ref(),
                        sf.from.get_ref()
                    ),
                    Location::new(&svc.file, Some(sf.dest.span())),
                )
                .help(format!(
                    "add `{}` to role `{}` or remove the shared file",
                    sf.from.get_ref(),
                    host.role
                )),
            ),
        }
    }
    (used, shared_mounts)
}

/// The hash in a container's `provision.config_hash` label: of its definition (before
/// the labels are added) and of every file it uses (path, mode, owner, content).
fn config_hash(def: &ContainerDef, files: &[&DesiredFile]) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(def).unwrap_or_default());
    let mut sorted: Vec<&&DesiredFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for f in sorted {
        h.update(format!("\n{}", f.identity()).as_bytes());
    }
    hex(&h.finalize())
}

/// A systemd unit for every container of the host (`[cloud] container_units = "systemd"`),
/// and for the containers of the services a diff skipped there (`skipped`: their units
/// name the containers of earlier steps, which may differ though the service does not).
pub(super) fn add_container_units(hs: &mut HostState, plane: Plane, skipped: &[SkippedContainer]) {
    let mut all: Vec<SkippedContainer> = hs
        .containers
        .values()
        .map(|c| SkippedContainer {
            name: c.name.clone(),
            service: c.service.clone(),
            step: c.step,
        })
        .chain(skipped.iter().cloned())
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    for c in &all {
        let u = container_unit(c, &all, plane);
        hs.files.insert(u.path.clone(), u);
    }
}

/// The systemd unit that starts `c` at boot, after the containers of the earlier deploy
/// steps on the same host (`all`, by name; TripleO's `tripleo_<service>.service` do the
/// same). podman created the container already; the unit starts and stops it; while
/// conmon lives, podman's restart policy restarts it after a crash.
fn container_unit(c: &SkippedContainer, all: &[SkippedContainer], plane: Plane) -> DesiredFile {
    let after: Vec<String> = all
        .iter()
        .filter(|o| o.step < c.step)
        .map(|o| unit_name(&o.name))
        .collect();
    let after = if after.is_empty() {
        String::new()
    } else {
        format!("After={}\n", after.join(" "))
    };
    let content = format!(
        "# Starts the {name} container (deploy step {step}) at boot. Written by provision;\n\
         # the container itself is created by `provision apply` from\n\
         # {defs}/{name}.json.\n\
         [Unit]\n\
         Description=provision container {name} (deploy step {step})\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         {after}\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/usr/bin/podman start {name}\n\
         ExecStop=/usr/bin/podman stop --time 10 {name}\n\
         TimeoutStartSec=300\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        name = c.name,
        step = c.step,
        defs = plane.container_defs(),
    );
    DesiredFile {
        path: format!("{UNIT_DIR}/{}", unit_name(&c.name)),
        content,
        mode: 0o644,
        owner: "root".into(),
        group: "root".into(),
        service: c.service.clone(),
        kind: FileKind::Unit {
            container: c.name.clone(),
        },
        secret: false,
    }
}

/// The hosts that run `service`, short name and FQDN, on their internal_api address
/// (their ctlplane one without): the names its container resolves.
pub(super) fn peers(cloud: &crate::model::Cloud, service: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for h in cloud
        .hosts
        .iter()
        .filter(|h| h.services.iter().any(|s| s == service))
    {
        let addr = h
            .addresses
            .get("internal_api")
            .copied()
            .unwrap_or(h.ctlplane_ip)
            .to_string();
        out.insert(h.name.clone(), addr.clone());
        if !h.fqdn.is_empty() && h.fqdn != h.name {
            out.insert(h.fqdn.clone(), addr);
        }
    }
    out
}
