//! Rendering a service once for every host and revision that gives it the same inputs.
//!
//! A service's files and container on a host are a pure function of a few things: its
//! manifest and templates, the oslo.config layers of its INI files, the cloud's image and
//! lab settings, and the values of the template variables it reads (`host.name`,
//! `vars.x`, `groups.memcached`...). [`ServiceDeps`] gathers, once per revision, service
//! and role, what does not vary by host into one digest, and the variable paths its
//! templates read: minijinja's `undeclared_variables`, plus those of every template they
//! import or include by a literal name. A host's key is that digest and the values of
//! those paths on the host. Two hosts, or the two revisions of one `provision diff`,
//! with the same key get the same output: the cache hands it over instead of rendering
//! it again. `provision diff` shares one cache between its two sides, so that a service
//! a commit does not touch renders once per host, not twice.
//!
//! What is never cached, so that every diagnostic stays exact: a render that reported
//! any error or warning; a service whose templates include or import a computed name or
//! call `debug()`; a host whose own `[nodes.config]` overrides touch the service. A
//! file's secrets are checked again on a hit from a revision whose secrets differ.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use minijinja::Value;
use sha2::{Digest, Sha256};

use crate::catalogue::Service;
use crate::diagnostics::Diagnostics;
use crate::ini_values::{IniScalar, IniSections, IniValue};
use crate::model::Host;
use crate::state::{ContainerDef, DesiredFile, Plane};

/// A digest of the inputs of a render.
pub type Key = [u8; 32];

/// Entries kept per service: a host's two revisions render at most a few hosts apart
/// (`provision diff`'s head side renders at most 16 hosts ahead), and a service whose
/// output is the same on every host of a role has one entry per role.
const PER_SERVICE: usize = 64;

/// Digests kept of a service's vars part (`vars_part`): one per service and role where
/// the nodes of a role share their vars.
const VARS_PARTS: usize = 4096;

/// Scopes kept per template (render_named's memo of templates that read nothing of the
/// host but vars).
const PER_TEMPLATE: usize = 256;

/// The variable roots whose value is the same for every host of a revision: their
/// paths are hashed once per revision.
const SHARED_ROOTS: [&str; 6] = ["cloud", "networks", "vip", "groups", "undercloud", "nodes"];

/// A service's rendered output on a host.
#[derive(Debug)]
pub(super) struct ServiceOutput {
    /// Its files, as rendered (and checked for secrets with `secrets_id`'s secrets).
    pub files: Vec<DesiredFile>,
    /// The mounts of its files that have a container path (host path, container path).
    pub mounts: Vec<(String, String)>,
    /// Its container and definition file, once rendered (not for a service that mounts
    /// another service's files: their content is not in the key).
    pub container: OnceLock<(ContainerDef, DesiredFile)>,
    /// The secrets the files were checked with.
    pub secrets_id: Key,
}

/// Rendered services by key, a bounded number per service, shared by the renderers
/// that use it (both sides of a `provision diff`).
#[derive(Default)]
pub struct RenderCache {
    services: Mutex<HashMap<String, Entries>>,
    /// Services handed over instead of rendered.
    hits: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<Key, Arc<ServiceOutput>>,
    order: VecDeque<Key>,
}

impl RenderCache {
    pub fn new() -> Arc<RenderCache> {
        Arc::new(RenderCache::default())
    }

    pub(super) fn get(&self, service: &str, key: &Key) -> Option<Arc<ServiceOutput>> {
        let services = self.services.lock().ok()?;
        let out = services.get(service)?.by_key.get(key).cloned();
        if out.is_some() {
            self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        out
    }

    /// How many services were handed over instead of rendered.
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn put(&self, service: &str, key: Key, out: Arc<ServiceOutput>) {
        let Ok(mut services) = self.services.lock() else {
            return;
        };
        let e = services.entry(service.to_string()).or_default();
        if e.by_key.insert(key, out).is_none() {
            e.order.push_back(key);
            while e.order.len() > PER_SERVICE {
                if let Some(old) = e.order.pop_front() {
                    e.by_key.remove(&old);
                }
            }
        }
    }
}

/// What a service's output depends on, beyond the values of `paths`, on the hosts of
/// one role in one revision.
#[derive(Debug)]
pub(super) struct ServiceDeps {
    pub digest: Key,
    /// Variable paths its templates read, sorted: `["host", "name"]`, `["vars", "x"]`.
    pub paths: Vec<Vec<String>>,
    /// The digest of the values of its paths under [`SHARED_ROOTS`], once.
    pub shared: OnceLock<Key>,
}

/// A `std::io::Write` into a running digest.
struct DigestWriter<'a>(&'a mut Sha256);

impl Write for DigestWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Adds `bytes` to `h`, length first, so that no two sequences of parts give the same
/// stream.
pub(super) fn part(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// Adds the value at `path` of `root` to `h`: the value itself, or, where the path
/// leaves what is defined (a method such as `.items()`, a missing key), the last
/// defined value on it and where it stopped, so that whatever a template computes from
/// the path is covered. A root the context lacks adds only that.
pub(super) fn hash_path(h: &mut Sha256, root: &Value, path: &[String]) {
    // `groups.<name>`: the group's members from their data, not made into a template
    // value for a digest (thousands of members in the groups of the computes).
    if let [g, name] = path {
        if g == "groups" {
            if let Some(d) = root.get_attr(g).ok().and_then(|v| {
                v.downcast_object_ref::<super::context::Groups>()
                    .and_then(|groups| groups.group_digest(name))
            }) {
                h.update(2u64.to_le_bytes());
                h.update(d);
                return;
            }
        }
    }
    let (depth, v) = defined_part(root, path);
    h.update((depth as u64).to_le_bytes());
    if depth == 0 {
        // Not a variable of the context: a global of the environment (`range`,
        // `namespace`) or a name the template defines, the same for every host.
        return;
    }
    // `groups` whole, from its data: not made into template values for a digest.
    if let Some(groups) = v.downcast_object_ref::<super::context::Groups>() {
        h.update(groups.digest());
        return;
    }
    let mut w = DigestWriter(h);
    // A value that does not serialize (none here: the context is built from data)
    // marks itself so, and is never equal to one that does.
    if serde_json::to_writer(&mut w, &v).is_err() {
        w.0.update(b"\xffunserializable");
    }
    w.0.update(b"\0");
}

/// Adds path `path` (its names) and its value in `root` to `h`.
fn hash_path_named(h: &mut Sha256, root: &Value, path: &[String]) {
    h.update((path.len() as u64).to_le_bytes());
    for seg in path {
        part(h, seg.as_bytes());
    }
    hash_path(h, root, path);
}

/// How many names of `path` are defined from `root` on, and the value the last of them
/// gives (`root` itself when none is).
fn defined_part(root: &Value, path: &[String]) -> (usize, Value) {
    let mut v = root.clone();
    let mut depth = 0;
    for seg in path {
        match v.get_attr(seg) {
            Ok(next) if !next.is_undefined() => {
                v = next;
                depth += 1;
            }
            _ => break,
        }
    }
    (depth, v)
}

/// Whether `root` is one of [`SHARED_ROOTS`].
pub(super) fn is_shared(root: &str) -> bool {
    SHARED_ROOTS.contains(&root)
}

/// Adds INI layer `sections` to `h`: names and values, not where they are written.
pub(super) fn hash_ini(h: &mut Sha256, sections: &IniSections) {
    h.update((sections.len() as u64).to_le_bytes());
    for (section, options) in sections {
        part(h, section.as_bytes());
        h.update((options.len() as u64).to_le_bytes());
        for (key, value) in options {
            part(h, key.as_bytes());
            hash_ini_value(h, value.get_ref());
        }
    }
}

fn hash_ini_value(h: &mut Sha256, v: &IniValue) {
    match v {
        IniValue::Bool(b) => h.update([1, *b as u8]),
        IniValue::Integer(i) => {
            h.update([2]);
            h.update(i.to_le_bytes());
        }
        IniValue::Float(f) => {
            h.update([3]);
            h.update(f.to_bits().to_le_bytes());
        }
        IniValue::String(s) => {
            h.update([4]);
            part(h, s.as_bytes());
        }
        IniValue::List(items) => {
            h.update([5]);
            h.update((items.len() as u64).to_le_bytes());
            for i in items {
                part(h, format!("{i:?}").as_bytes());
            }
        }
        IniValue::Multi { multi } => {
            h.update([6]);
            h.update((multi.len() as u64).to_le_bytes());
            for s in multi {
                part(h, s.as_bytes());
            }
        }
    }
}

/// The templated strings of `sections` with their environment names, as
/// [`super::templates::templated_values`] registered them.
pub(super) fn templated_names(
    file: &std::path::Path,
    sections: &IniSections,
    out: &mut Vec<String>,
) {
    use super::templates::{is_template, value_name};
    for (section, options) in sections {
        for (key, value) in options {
            let base = || value_name(file, section, key, value.span().start);
            match value.get_ref() {
                IniValue::String(s) if is_template(s) => out.push(base()),
                IniValue::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if matches!(item, IniScalar::String(s) if is_template(s)) {
                            out.push(format!("{}[{i}]", base()));
                        }
                    }
                }
                IniValue::Multi { multi } => {
                    for (i, s) in multi.iter().enumerate() {
                        if is_template(s) {
                            out.push(format!("{}[{i}]", base()));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// The templates a template's source names in `include`, `import`, `from ... import`
/// and `extends` tags, or `None` when one of those names is not a plain string literal
/// (a computed name: what it reads cannot be known before rendering).
pub(super) fn literal_references(source: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("{%") {
        rest = &rest[at + 2..];
        let end = rest.find("%}").unwrap_or(rest.len());
        let tag = rest[..end].trim_start_matches(['-', '+', '~']).trim_start();
        let word = tag
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .next()
            .unwrap_or("");
        if matches!(word, "include" | "import" | "from" | "extends") {
            let arg = tag[word.len()..].trim_start();
            let quote = arg.chars().next()?;
            if quote != '"' && quote != '\'' {
                return None;
            }
            let name = arg[1..].split(quote).next()?;
            if name.contains('\\') {
                return None;
            }
            out.push(name.to_string());
        }
        rest = &rest[end..];
    }
    Some(out)
}

/// Whether `source` may call minijinja's `debug()`, which shows the whole context.
fn calls_debug(source: &str) -> bool {
    source
        .match_indices("debug")
        .any(|(at, w)| source[at + w.len()..].trim_start().starts_with('('))
}

/// The sorted, deduplicated variable paths of `names`, split on dots.
pub(super) fn split_paths(names: impl IntoIterator<Item = String>) -> Vec<Vec<String>> {
    let set: std::collections::BTreeSet<String> = names.into_iter().collect();
    set.into_iter()
        .map(|p| p.split('.').map(str::to_string).collect())
        .collect()
}

/// One revision's memo for the cache: service dependencies by (service, role), the
/// digest of its secrets, and the templates that render once per service.
#[derive(Default)]
pub(super) struct SideMemo {
    /// By service, then role.
    pub deps: Mutex<HashMap<String, HashMap<String, Option<Arc<ServiceDeps>>>>>,
    pub secrets_id: OnceLock<Key>,
    /// The vars a template reads, by name, if it reads nothing else of the host.
    host_independent: Mutex<HashMap<String, Option<Arc<Vec<Vec<String>>>>>>,
    /// The output of such templates, by name, then by scope (the service's
    /// `config_dir` and the values of the vars read).
    per_service: Mutex<HashMap<String, HashMap<String, String>>>,
    /// Which services of a host write only their own paths ([`super::skip`]).
    pub own_paths: super::skip::OwnPaths,
    /// The digest of each shared path read (its value is the same on every host).
    shared_paths: Mutex<HashMap<Vec<String>, Key>>,
    /// The digest of a service's paths but the shared and the host's, by the addresses
    /// of its [`ServiceDeps`] and of the host's vars table.
    vars_parts: Mutex<HashMap<(usize, usize), (Key, Arc<toml::Table>)>>,
}

impl SideMemo {
    /// The output of template `name` in `scope` ([`super::Renderer::service_scope`]), if
    /// rendered.
    pub(super) fn rendered(&self, name: &str, config_dir: &str) -> Option<String> {
        self.per_service
            .lock()
            .ok()?
            .get(name)?
            .get(config_dir)
            .cloned()
    }

    pub(super) fn keep_rendered(&self, name: &str, config_dir: &str, out: &str) {
        if let Ok(mut m) = self.per_service.lock() {
            let scopes = m.entry(name.to_string()).or_default();
            // Bounded: vars set node by node would make one scope per node.
            if scopes.len() < PER_TEMPLATE {
                scopes.insert(config_dir.to_string(), out.to_string());
            }
        }
    }
}

/// The variables whose value differs between the hosts of a service in one revision: a
/// template that reads none of them but `vars` gives every host with the same values
/// of those vars the same output.
const HOST_ROOTS: [&str; 3] = ["host", "vars", "task"];

impl super::Renderer<'_> {
    /// The key of service `svc` on `host` (its context `ctx`), when this renderer has a
    /// cache and the service's output there may be cached.
    pub(super) fn service_key(
        &self,
        host: &Host,
        svc: &Service,
        plane: Plane,
        ctx: &Value,
    ) -> Option<Key> {
        self.cache.as_ref()?;
        // The node's own overrides of the service's INI files are not in the role's
        // digest: such a host renders the service itself.
        if svc.manifest.files.iter().any(|f| {
            f.oslo
                .as_ref()
                .is_some_and(|id| host.config.contains_key(id.get_ref()))
        }) || host.config.contains_key(&svc.name)
        {
            return None;
        }
        let deps = self.service_deps(svc, plane, &host.role)?;
        let mut h = Sha256::new();
        h.update(deps.digest);
        // The shared paths' values: the same for every host of this revision, each
        // hashed once for every service that reads it.
        h.update(deps.shared.get_or_init(|| {
            let mut s = Sha256::new();
            for path in deps.paths.iter().filter(|p| is_shared(&p[0])) {
                s.update(self.shared_path(ctx, path));
            }
            s.finalize().into()
        }));
        // The service's own, its secrets and the host's vars: the same for the hosts
        // that share their vars (the nodes of a role that set none of their own).
        h.update(self.vars_part(&deps, host, ctx));
        for path in deps.paths.iter().filter(|p| p[0] == "host") {
            hash_path_named(&mut h, ctx, path);
        }
        Some(h.finalize().into())
    }

    /// The digest of shared path `path` (its name and value), once per revision.
    fn shared_path(&self, ctx: &Value, path: &[String]) -> Key {
        if let Some(k) = self
            .memo
            .shared_paths
            .lock()
            .ok()
            .and_then(|m| m.get(path).copied())
        {
            return k;
        }
        let mut s = Sha256::new();
        hash_path_named(&mut s, ctx, path);
        let k: Key = s.finalize().into();
        if let Ok(mut m) = self.memo.shared_paths.lock() {
            m.insert(path.to_vec(), k);
        }
        k
    }

    /// The digest of the paths of `deps` that are neither shared nor the host's (its
    /// `service`, `secrets` and `vars`), once per service and vars table.
    fn vars_part(&self, deps: &Arc<ServiceDeps>, host: &Host, ctx: &Value) -> Key {
        let memo_key = (Arc::as_ptr(deps) as usize, Arc::as_ptr(&host.vars) as usize);
        if let Some(k) = self
            .memo
            .vars_parts
            .lock()
            .ok()
            .and_then(|m| m.get(&memo_key).map(|(k, _)| *k))
        {
            return k;
        }
        let mut s = Sha256::new();
        for path in deps
            .paths
            .iter()
            .filter(|p| !is_shared(&p[0]) && p[0] != "host")
        {
            hash_path_named(&mut s, ctx, path);
        }
        let k: Key = s.finalize().into();
        if let Ok(mut m) = self.memo.vars_parts.lock() {
            // Bounded: a cloud whose every node sets its own vars hashes them per host.
            // The entry holds the vars table, so that its address is not another's
            // while the memo lives (the deps are held by this memo already).
            if m.len() < VARS_PARTS {
                m.insert(memo_key, (k, Arc::clone(&host.vars)));
            }
        }
        k
    }

    /// The cached output of service `service` under `key`.
    pub(super) fn cached(&self, service: &str, key: &Key) -> Option<Arc<ServiceOutput>> {
        self.cache.as_ref()?.get(service, key)
    }

    /// Keeps `out` as service `service`'s output under `key`.
    pub(super) fn keep(&self, service: &str, key: Key, out: Arc<ServiceOutput>) {
        if let Some(c) = &self.cache {
            c.put(service, key, out);
        }
    }

    /// The digest of this revision's secrets (names and values): a file checked with
    /// other secrets is checked again.
    pub(super) fn secrets_id(&self) -> Key {
        *self.memo.secrets_id.get_or_init(|| {
            let mut h = Sha256::new();
            let secrets = &self.cloud.secrets;
            for name in secrets.names() {
                part(&mut h, name.as_bytes());
                match secrets.get(name) {
                    Some(v) => part(&mut h, v.expose().as_bytes()),
                    None => h.update(b"\xff"),
                }
            }
            h.finalize().into()
        })
    }

    /// Errors and warnings reported so far: a render that adds one is not cached.
    pub(super) fn findings(&self, diags: &Diagnostics) -> (usize, usize) {
        let warnings = self.warnings.lock().map(|w| w.len()).unwrap_or(usize::MAX);
        (diags.len(), warnings)
    }

    /// What service `svc` depends on on the hosts of `role`, once per revision; `None`
    /// when its output must not be cached.
    fn service_deps(&self, svc: &Service, plane: Plane, role: &str) -> Option<Arc<ServiceDeps>> {
        // Looked up for every service of every host: by borrowed names, no allocation.
        if let Some(d) = self
            .memo
            .deps
            .lock()
            .ok()?
            .get(&svc.name)
            .and_then(|r| r.get(role))
        {
            return d.clone();
        }
        let deps = self.compute_deps(svc, plane, role).map(Arc::new);
        self.memo
            .deps
            .lock()
            .ok()?
            .entry(svc.name.clone())
            .or_default()
            .insert(role.to_string(), deps.clone());
        deps
    }

    fn compute_deps(&self, svc: &Service, plane: Plane, role: &str) -> Option<ServiceDeps> {
        use super::templates::{container_path_name, is_template, when_name};
        let cloud = self.cloud;
        let m = &svc.manifest;
        let mut h = Sha256::new();
        part(&mut h, b"provision: a service's render, v1");
        part(&mut h, format!("{plane:?}").as_bytes());
        part(&mut h, svc.name.as_bytes());
        part(&mut h, svc.dir.as_bytes());
        part(&mut h, svc.file.to_string_lossy().as_bytes());
        part(&mut h, format!("{m:?}").as_bytes());
        // Whose variables count: every template, INI value, `when` and container path
        // the service renders. The header of its INI files names the host.
        let mut templates: Vec<String> = Vec::new();
        let mut names: Vec<String> = vec!["host.name".to_string()];
        let inv = cloud.inventory.path.as_path();
        let role_config = cloud.roles.get(role).map(|r| &r.config);
        for f in &m.files {
            if let Some(w) = &f.when {
                templates.push(when_name(&svc.file, w.span().start));
            }
            if let Some(c) = f
                .container_path
                .as_ref()
                .filter(|c| is_template(c.get_ref()))
            {
                templates.push(container_path_name(&svc.file, c.span().start));
            }
            if let Some(src) = &f.src {
                let name = cloud.catalogue.template_name(&svc.dir, src.get_ref())?;
                self.template_closure(&name, &mut h, &mut templates)?;
            }
            if let Some(oslo) = &f.oslo {
                let d = cloud.catalogue.oslo.get(oslo.get_ref())?;
                part(&mut h, d.id.as_bytes());
                part(&mut h, d.file.to_string_lossy().as_bytes());
                part(&mut h, format!("{:?}", d.namespaces).as_bytes());
                hash_ini(&mut h, &d.sections);
                templated_names(&d.file, &d.sections, &mut templates);
                hash_ini(&mut h, &f.ini);
                templated_names(&svc.file, &f.ini, &mut templates);
                // The cloud's and the role's overrides, under the file's id and the
                // service's name (whichever of them the render takes).
                for (level, config) in [(b"cloud", Some(&cloud.config)), (b"role_", role_config)] {
                    for key in [oslo.get_ref(), &svc.name] {
                        part(&mut h, level);
                        match config.and_then(|c| c.get(key)) {
                            Some(layer) => {
                                hash_ini(&mut h, layer);
                                templated_names(inv, layer, &mut templates);
                            }
                            None => h.update(b"-"),
                        }
                    }
                }
            }
        }
        for v in m.environment.values() {
            if is_template(v) {
                templates.push(format!("{}#environment:{v}", svc.file.display()));
            }
        }
        // The container: its image, the peers it resolves, the lab's stand-in.
        let image = m
            .image
            .as_ref()
            .map(|i| i.get_ref().as_str())
            .unwrap_or_default();
        part(&mut h, cloud.image_ref(image).as_bytes());
        part(&mut h, format!("{:?}", cloud.inventory.lab).as_bytes());
        h.update([cloud.stand_in(image) as u8]);
        if m.resolve_peers {
            part(
                &mut h,
                format!("{:?}", super::containers::peers(cloud, &svc.name)).as_bytes(),
            );
        }
        part(
            &mut h,
            cloud.catalogue.templates_dir.to_string_lossy().as_bytes(),
        );
        // The option catalogue the INI files were checked against.
        match &cloud.catalogue.options {
            Some(o) => h.update(o.digest),
            None => h.update(b"no option catalogue"),
        }
        part(
            &mut h,
            format!("{:?}", cloud.inventory.unchecked_options).as_bytes(),
        );
        for t in &templates {
            let tmpl = self.env.get_template(t).ok()?;
            names.extend(tmpl.undeclared_variables(true));
        }
        Some(ServiceDeps {
            digest: h.finalize().into(),
            paths: split_paths(names),
            shared: OnceLock::new(),
        })
    }

    /// Adds template `name` and every template it imports, includes or extends (their
    /// names and sources) to `h` and `templates`; `None` when one is computed, missing,
    /// or calls `debug()`.
    fn template_closure(
        &self,
        name: &str,
        h: &mut Sha256,
        templates: &mut Vec<String>,
    ) -> Option<()> {
        let mut stack = vec![name.to_string()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let src = self.cloud.catalogue.templates.get(&n)?;
            if calls_debug(&src.text) {
                return None;
            }
            part(h, n.as_bytes());
            part(h, src.text.as_bytes());
            stack.extend(literal_references(&src.text)?);
            templates.push(n);
        }
        Some(())
    }
}

impl super::Renderer<'_> {
    /// With a cache, for a template that reads nothing of the host but its `vars`
    /// (none of [`HOST_ROOTS`]: the cloud's shared values, the service, its secrets and
    /// vars): the scope under which its output is the same on every host of this
    /// revision, the service's `config_dir` in `ctx` and the values of the vars it
    /// reads. `None`: it renders every time.
    pub(super) fn service_scope(&self, name: &str, ctx: &Value) -> Option<String> {
        self.cache.as_ref()?;
        let vars = self.host_independent(name)?;
        let dir = ctx.get_attr("service").ok()?.get_attr("config_dir").ok()?;
        let mut scope = dir.as_str()?.to_string();
        for path in vars.iter() {
            scope.push('\0');
            scope.push_str(&path_text(ctx, path));
        }
        Some(scope)
    }

    /// The `vars` paths template `name` reads, if it reads nothing else of the host
    /// ([`Renderer::vars_read`]), worked out once per template.
    pub(super) fn host_independent(&self, name: &str) -> Option<Arc<Vec<Vec<String>>>> {
        let known = self.memo.host_independent.lock().ok()?.get(name).cloned();
        match known {
            Some(v) => v,
            None => {
                let v = self.vars_read(name).map(Arc::new);
                self.memo
                    .host_independent
                    .lock()
                    .ok()?
                    .insert(name.to_string(), v.clone());
                v
            }
        }
    }

    /// The `vars` paths template `name`, with what it imports or includes, reads; `None`
    /// when it reads another of [`HOST_ROOTS`] or that cannot be known (a computed
    /// include, `debug()`).
    fn vars_read(&self, name: &str) -> Option<Vec<Vec<String>>> {
        let mut stack = vec![name.to_string()];
        let mut seen = std::collections::BTreeSet::new();
        let mut vars = Vec::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let t = self.env.get_template(&n).ok()?;
            if calls_debug(t.source()) {
                return None;
            }
            stack.extend(literal_references(t.source())?);
            for v in t.undeclared_variables(true) {
                let root = v.split('.').next().unwrap_or("");
                if root == "vars" {
                    vars.push(v);
                } else if HOST_ROOTS.contains(&root) {
                    return None;
                }
            }
        }
        Some(split_paths(vars))
    }
}

/// The value at `path` of `root` as text, as [`hash_path`] covers it: how deep the
/// path is defined, and the last defined value on it (nothing for a root the context
/// lacks).
fn path_text(root: &Value, path: &[String]) -> String {
    let (depth, v) = defined_part(root, path);
    if depth == 0 {
        return "0:".to_string();
    }
    let json = serde_json::to_string(&v).unwrap_or_else(|_| "\u{fffd}".to_string());
    format!("{depth}:{json}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_references_are_found_and_computed_ones_refused() {
        assert_eq!(
            literal_references(
                "{% import \"_common/ceph.j2\" as ceph %}x{%- include 'a.j2' %}{% from \"m.j2\" import f %}{{ x }}"
            ),
            Some(vec![
                "_common/ceph.j2".to_string(),
                "a.j2".to_string(),
                "m.j2".to_string()
            ])
        );
        assert_eq!(literal_references("{% include name %}"), None);
        assert!(calls_debug("{{ debug () }}"));
        assert!(!calls_debug(
            "level = {{ 'debug' if vars.debug else 'info' }}"
        ));
        assert_eq!(literal_references("{% extends parent ~ '.j2' %}"), None);
        assert_eq!(
            literal_references("{% if x %}{% for i in y %}{% endfor %}{% endif %}"),
            Some(vec![])
        );
    }

    #[test]
    fn a_path_that_leaves_the_value_covers_its_last_defined_part() {
        let ctx = minijinja::context! { host => minijinja::context! { networks => minijinja::context! { a => 1 } } };
        let ctx2 = minijinja::context! { host => minijinja::context! { networks => minijinja::context! { a => 2 } } };
        let path: Vec<String> = ["host", "networks", "items"].map(String::from).to_vec();
        let digest = |c: &Value| {
            let mut h = Sha256::new();
            hash_path(&mut h, c, &path);
            h.finalize()
        };
        // `host.networks.items()` reads the whole map: a change in it changes the key.
        assert_ne!(digest(&ctx), digest(&ctx2));
        assert_eq!(digest(&ctx), digest(&ctx.clone()));
    }
}
