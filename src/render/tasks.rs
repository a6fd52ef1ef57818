//! A service's one-shot tasks on one host (`[[tasks]]` of its manifest): those that run
//! once run on the service's bootstrap host only, the others on every host of the
//! service. Each task gets its own files (and an environment file when it has an
//! environment, 0600: podman reads it, so no value is on a command line), mounts the
//! service's files too, and carries the digests that decide whether it runs again.

use std::collections::BTreeMap;

use minijinja::Value;
use sha2::{Digest, Sha256};

use super::Renderer;
use crate::catalogue::{RunOn, Service, TaskSpec};
use crate::diagnostics::{Diagnostic, Diagnostics, Location};
use crate::model::Host;
use crate::state::{hex, DesiredFile, FileKind, HostState, Plane, TaskDef};

impl Renderer<'_> {
    /// Adds the tasks of `svc` that run on `host` to `hs`, with their files. The
    /// service's own files must be in `hs` already, with their `mounts` (host path,
    /// container path) as its container has them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn render_tasks(
        &self,
        hs: &mut HostState,
        host: &Host,
        svc: &Service,
        plane: Plane,
        ctx: &Value,
        mounts: &[(String, String)],
        diags: &mut Diagnostics,
    ) {
        let bootstrap = match plane {
            Plane::Overcloud => self
                .cloud
                .bootstrap_host(&svc.name)
                .map(|h| h.name.as_str()),
            Plane::Undercloud => Some(host.name.as_str()),
        };
        for t in &svc.manifest.tasks {
            if t.run_on == RunOn::Bootstrap && bootstrap != Some(host.name.as_str()) {
                continue;
            }
            if let Some(task) = self.task(hs, host, svc, plane, t, ctx, mounts, diags) {
                hs.tasks.insert(task.id.clone(), task);
            }
        }
    }

    /// One task: its files added to `hs`, its definition returned.
    #[allow(clippy::too_many_arguments)]
    fn task(
        &self,
        hs: &mut HostState,
        host: &Host,
        svc: &Service,
        plane: Plane,
        t: &TaskSpec,
        ctx: &Value,
        service_mounts: &[(String, String)],
        diags: &mut Diagnostics,
    ) -> Option<TaskDef> {
        let cloud = self.cloud;
        let m = &svc.manifest;
        let name = t.name.get_ref();
        let id = format!("{}/{name}", svc.name);
        // Its templates see `task` (its name and vars) besides the service's context.
        let task_v =
            minijinja::context! { name => name.clone(), vars => super::context::ser(&t.vars) };
        let ctx = &minijinja::context! { task => task_v, ..ctx.clone() };
        // Its files belong to `<service>/<task>`: not the container's, so a change to
        // them re-runs the task and restarts nothing.
        let mut mounts: Vec<String> = Vec::new();
        let mut used: Vec<DesiredFile> = Vec::new();
        for f in &t.files {
            let (Some(src), Some(cpath)) = (&f.src, &f.container_path) else {
                continue;
            };
            let template = cloud.catalogue.template_name(&svc.dir, src.get_ref())?;
            let content = match self.render_named(&template, ctx) {
                Ok(c) => c,
                Err(d) => {
                    diags.push(d);
                    return None;
                }
            };
            let kind = FileKind::Template { template };
            let file = self.manifest_file(host, svc, &id, f, content, kind, diags);
            mounts.push(format!("{}:{}:ro", file.path, cpath.get_ref()));
            used.push(file);
        }
        let mut env_file = self.task_environment(&id, svc, plane, t, ctx, diags)?;
        if let Some(f) = &mut env_file {
            let at = Location::new(&svc.file, Some(t.name.span()));
            self.check_secrets(host, svc, f, &at, &at, diags);
        }
        // The service's files with a container path, as its container has them.
        let mut service_files: Vec<&DesiredFile> = hs
            .files
            .values()
            .filter(|f| f.service == svc.name)
            .collect();
        service_files.sort_by(|a, b| a.path.cmp(&b.path));
        for (dest, cpath) in service_mounts {
            if let Some(f) = hs.files.get(dest) {
                mounts.push(format!("{}:{cpath}:ro", f.path));
            }
        }
        if !m.log_dir.is_empty() {
            mounts.push(format!(
                "{}/{}:{}:rw",
                plane.log_root(),
                svc.name,
                m.log_dir
            ));
        }
        // A task in the service's own image runs the service's program (keystone-manage):
        // it sees the service's host folders too (its key repositories); a task in
        // another image (the toolbox) only its files.
        if t.image.is_none() {
            mounts.extend(m.volumes.iter().filter(|v| v.starts_with('/')).cloned());
        }
        mounts.extend(t.volumes.iter().cloned());
        let image_name = t
            .image
            .as_deref()
            .or(m.image.as_ref().map(|i| i.get_ref().as_str()))
            .unwrap_or_default();
        let mut command = t.command.clone();
        if let Some(lab) = cloud
            .inventory
            .lab
            .as_ref()
            .filter(|_| cloud.stand_in(image_name))
        {
            if !lab.stand_in_task_command.is_empty() {
                command = lab.stand_in_task_command.clone();
            }
        }
        let mut task = TaskDef {
            id: id.clone(),
            service: svc.name.clone(),
            name: name.clone(),
            step: t.step.unwrap_or(*m.step.get_ref()),
            order: t.order,
            image: cloud.image_ref(image_name),
            command,
            user: t.user.clone().or(m.user.clone()),
            env_file: env_file.as_ref().map(|f| f.path.clone()),
            volumes: mounts,
            timeout_secs: t.timeout,
            rerun_on_image_change: t.rerun_on_image_change,
            hosts_of: t
                .rerun_on_hosts_of
                .iter()
                .map(|s| {
                    let hosts = cloud
                        .hosts
                        .iter()
                        .filter(|h| h.services.contains(s.get_ref()))
                        .map(|h| h.name.clone())
                        .collect();
                    (s.get_ref().clone(), hosts)
                })
                .collect(),
            definition_hash: String::new(),
            files_hash: String::new(),
        };
        let mut files: Vec<&DesiredFile> = used.iter().chain(env_file.iter()).collect();
        files.extend(service_files);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut h = Sha256::new();
        for f in &files {
            h.update(format!("{}\n", f.identity()).as_bytes());
        }
        task.files_hash = hex(&h.finalize());
        // The definition: everything but the image, the hosts it depends on and the
        // files' digest (each its own reason to run again, recorded and compared apart).
        let mut def = task.clone();
        def.image.clear();
        def.hosts_of.clear();
        def.files_hash.clear();
        task.definition_hash = hex(&Sha256::digest(
            serde_json::to_vec(&def).unwrap_or_default(),
        ));
        for f in used.into_iter().chain(env_file) {
            self.insert_file(hs, svc, host, f, diags);
        }
        Some(task)
    }

    /// The task's environment file, if it has an environment: `KEY=value` lines, each
    /// value rendered and on one line.
    fn task_environment(
        &self,
        id: &str,
        svc: &Service,
        plane: Plane,
        t: &TaskSpec,
        ctx: &Value,
        diags: &mut Diagnostics,
    ) -> Option<Option<DesiredFile>> {
        if t.environment.is_empty() {
            return Some(None);
        }
        let mut lines = BTreeMap::new();
        for (k, v) in &t.environment {
            let name = format!(
                "{}#tasks.{}.environment:{k}",
                svc.file.display(),
                t.name.get_ref()
            );
            let value = match self.render_str(&name, v, ctx) {
                Ok(r) => r,
                Err(d) => {
                    diags.push(d);
                    return None;
                }
            };
            let key_ok = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !key_ok || value.chars().any(|c| c.is_control()) {
                diags.push(
                    Diagnostic::new(
                        format!("environment `{}` of task `{}` cannot be one line of an environment file", k.escape_debug(), t.name.get_ref()),
                        Location::new(&svc.file, Some(t.name.span())),
                    )
                    .help("a variable's name is letters, digits and `_`; its value holds no newline or control character"),
                );
                return None;
            }
            lines.insert(k.clone(), value);
        }
        let content: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        Some(Some(DesiredFile {
            path: format!(
                "{}/{}/tasks/{}.env",
                plane.config_root(),
                svc.name,
                t.name.get_ref()
            ),
            secret: false, // check_secrets knows
            content,
            mode: 0o600,
            owner: "root".into(),
            group: "root".into(),
            service: id.to_string(),
            kind: FileKind::Template {
                template: format!("{}#tasks.{}.environment", svc.dir, t.name.get_ref()),
            },
        }))
    }
}
