//! Rendering: the desired state of every host (files with mode and owner, container
//! definitions), computed from the model with minijinja. Pure: no host is contacted,
//! and the same input gives byte-identical output.

pub mod cache;
mod containers;
pub mod context;
mod escape;
pub mod ini;
pub mod option_check;
mod oslo_files;
pub mod output;
mod services;
pub mod skip;
mod tasks;
mod templates;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use minijinja::Environment;

use crate::diagnostics::Diagnostics;
use crate::model::{Cloud, Host};
use crate::state::{HostState, Plane};
use context::SharedContext;
use option_check::{Findings, OptionChecker};
use templates::Origin;

/// Renders hosts of one model.
pub struct Renderer<'c> {
    cloud: &'c Cloud,
    env: Environment<'static>,
    origins: BTreeMap<String, Origin>,
    shared: SharedContext,
    /// The release's option catalogue, when the catalogue has one.
    options: Option<OptionChecker<'c>>,
    /// What is shown but does not fail the run (deprecated options...).
    warnings: Mutex<Diagnostics>,
    /// Services already rendered with the same inputs, when rendering shares them
    /// ([`cache`]); `None`: every service is rendered.
    cache: Option<Arc<cache::RenderCache>>,
    /// This revision's side of the cache.
    memo: cache::SideMemo,
    /// The `vars` of hosts that share theirs, made once (render/services.rs).
    vars_values: Mutex<Vec<(Arc<toml::Table>, minijinja::Value)>>,
    /// INI files prepared for the hosts that share them (render/oslo_files.rs; `None`:
    /// rendered whole), each with the vars table its key names.
    prepared: Mutex<
        std::collections::HashMap<
            oslo_files::PreparedKey,
            (Option<Arc<oslo_files::PreparedIni>>, Arc<toml::Table>),
        >,
    >,
    /// Whether INI files are prepared for the hosts that share them (else rendered
    /// whole on every host: [`Renderer::whole_ini_files`]).
    prepare_ini: bool,
}

impl<'c> Renderer<'c> {
    /// Compiles every template of the catalogue and every templated INI value; syntax
    /// errors are reported in `diags`.
    pub fn new(cloud: &'c Cloud, diags: &mut Diagnostics) -> Self {
        Self::with_cache(cloud, diags, None)
    }

    /// [`Renderer::new`], rendering a service once for every host (and every renderer
    /// sharing `cache`) that gives it the same inputs.
    pub fn with_cache(
        cloud: &'c Cloud,
        diags: &mut Diagnostics,
        cache: Option<Arc<cache::RenderCache>>,
    ) -> Self {
        let secrets: Vec<String> = cloud
            .secrets
            .names()
            .into_iter()
            .filter_map(|n| cloud.secrets.get(n))
            .map(|v| v.expose().to_string())
            .collect();
        let mut findings = Findings::default();
        let options = cloud.catalogue.options.as_deref().map(|schema| {
            OptionChecker::new(
                schema,
                &cloud.inventory.unchecked_options,
                &cloud.inventory.path,
                secrets.clone(),
                &mut findings,
            )
        });
        diags.extend(findings.errors);
        let mut r = Renderer {
            cloud,
            env: templates::environment(secrets),
            origins: BTreeMap::new(),
            shared: SharedContext::new(cloud),
            options,
            warnings: Mutex::new(findings.warnings),
            cache,
            memo: cache::SideMemo::default(),
            vars_values: Mutex::new(Vec::new()),
            prepared: Mutex::new(Default::default()),
            prepare_ini: true,
        };
        for (name, src) in &cloud.catalogue.templates {
            r.add(
                name.clone(),
                src.text.clone(),
                Origin {
                    file: src.file.clone(),
                    span: None,
                    prefix: 0,
                },
                diags,
            );
        }
        for (name, text, origin) in templates::templated_values(cloud) {
            r.add(name, text, origin, diags);
        }
        r
    }

    /// This renderer, rendering every oslo.config file whole on every host, instead of
    /// its shared options once per role and vars (render/oslo_files.rs): the same files
    /// and findings, slower; what tests compare the prepared files with.
    pub fn whole_ini_files(mut self) -> Self {
        self.prepare_ini = false;
        self
    }

    /// The warnings found so far (deprecated options, unchecked ones), sorted.
    pub fn warnings(&self) -> Diagnostics {
        let mut w = self.warnings.lock().map(|w| w.clone()).unwrap_or_default();
        w.sort();
        w
    }

    /// Renders one overcloud host.
    pub fn render_host(&self, host: &Host, diags: &mut Diagnostics) -> HostState {
        self.render_services(
            host,
            &self.cloud.catalogue.services,
            Plane::Overcloud,
            None,
            diags,
        )
    }

    /// Renders one overcloud host in the second pass of a diff: all but the services
    /// `skip` flags (by position in `keys`, the host's first pass: [`skip`]).
    pub fn render_host_skipping(
        &self,
        host: &Host,
        keys: &skip::HostKeys,
        skip: &[bool],
        diags: &mut Diagnostics,
    ) -> HostState {
        self.render_services(
            host,
            &self.cloud.catalogue.services,
            Plane::Overcloud,
            Some((keys, skip)),
            diags,
        )
    }

    /// [`Renderer::render_host_skipping`] of the undercloud.
    pub fn render_undercloud_skipping(
        &self,
        keys: &skip::HostKeys,
        skip: &[bool],
        diags: &mut Diagnostics,
    ) -> HostState {
        self.render_services(
            &self.cloud.undercloud_host(),
            &self.cloud.catalogue.undercloud_services,
            Plane::Undercloud,
            Some((keys, skip)),
            diags,
        )
    }

    /// Renders the undercloud's own services (`templates/undercloud/`). Their templates
    /// see the undercloud as `host` (role `undercloud`, its provisioning address as its
    /// only network), and every overcloud node in `nodes`.
    pub fn render_undercloud(&self, diags: &mut Diagnostics) -> HostState {
        self.render_services(
            &self.cloud.undercloud_host(),
            &self.cloud.catalogue.undercloud_services,
            Plane::Undercloud,
            None,
            diags,
        )
    }
}
