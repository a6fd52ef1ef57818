//! Evaluation: inventory -> model -> desired state, with every problem collected. This is
//! what `validate`, `render` (and later `plan` and `diff`) start from; it reads files
//! only through a [`SourceTree`] and contacts no host.

use std::path::Path;
use std::sync::Arc;

use crate::diagnostics::{self, Diagnostics};
use crate::model::{self, Cloud, LoadOptions};
use crate::render::skip::HostKeys;
use crate::render::Renderer;
use crate::source::{SourceMap, SourceTree};
use crate::state::{DesiredState, HostState};

/// A successful evaluation.
#[derive(Clone)]
pub struct Evaluation {
    pub cloud: Cloud,
    pub state: DesiredState,
    pub sources: SourceMap,
    /// What does not fail the evaluation but must be shown: deprecated options, options
    /// the inventory lists as unchecked.
    pub warnings: Diagnostics,
}

impl Evaluation {
    /// The warnings as text, for a terminal or a log.
    pub fn render_warnings(&self) -> String {
        render_all(&self.warnings, &self.sources)
    }

    /// The first `limit` warnings (`None`: all), then one line counting the rest and
    /// saying what to do (`advice`).
    pub fn render_warnings_listed(&self, limit: Option<usize>, advice: &str) -> String {
        diagnostics::render_listed(&self.warnings, &self.sources, limit, advice)
    }
}

/// A failed evaluation: every problem found.
pub struct Failure {
    pub diags: Diagnostics,
    /// The warnings found before it failed.
    pub warnings: Diagnostics,
    pub sources: SourceMap,
}

impl Failure {
    /// The diagnostics as text (warnings first), for a terminal or a log.
    pub fn render(&self) -> String {
        let mut out = render_all(&self.warnings, &self.sources);
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&render_all(&self.diags, &self.sources));
        out
    }

    /// As [`Failure::render`], listing at most `limit` warnings and `limit` errors
    /// (`None`: all): past it, one line counts the rest and says what to do
    /// (`advice`; of the warnings: `warnings_advice`).
    pub fn render_listed(
        &self,
        limit: Option<usize>,
        advice: &str,
        warnings_advice: &str,
    ) -> String {
        let mut out =
            diagnostics::render_listed(&self.warnings, &self.sources, limit, warnings_advice);
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&diagnostics::render_listed(
            &self.diags,
            &self.sources,
            limit,
            advice,
        ));
        out
    }
}

fn render_all(diags: &Diagnostics, sources: &SourceMap) -> String {
    diags
        .items
        .iter()
        .map(|d| diagnostics::render(d, sources))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads, checks and renders everything.
pub fn evaluate(
    inventory: &Path,
    tree: &dyn SourceTree,
    opts: &LoadOptions,
) -> Result<Evaluation, Failure> {
    let mut state = DesiredState::default();
    let loaded = evaluate_each(inventory, tree, opts, None, |r| {
        if let Rendered::Host(hs) = r {
            state.hosts.insert(hs.name.clone(), hs);
        }
    })?;
    Ok(Evaluation {
        cloud: loaded.cloud,
        state,
        sources: loaded.sources,
        warnings: loaded.warnings,
    })
}

/// What [`evaluate_each`] hands over as it goes: the model, once, before any host;
/// then each host's desired state (the undercloud's among them), in name order.
pub enum Rendered<'a> {
    Cloud(&'a Cloud),
    Host(HostState),
}

/// A successful [`evaluate_each`]: an evaluation without its desired state, which
/// went host by host to the caller.
pub struct Evaluated {
    pub cloud: Cloud,
    pub sources: SourceMap,
    pub warnings: Diagnostics,
}

/// As [`evaluate`], handing each host's desired state to `each` as soon as it is
/// rendered instead of holding them all: what compares thousands of hosts in the
/// memory of a few (`provision diff`). `each` sees every host even when one fails;
/// whether the evaluation failed is known only at the end. With a `cache`, a service
/// renders once for the hosts (and the evaluations sharing it) that give it the same
/// inputs ([`crate::render::cache`]).
pub fn evaluate_each(
    inventory: &Path,
    tree: &dyn SourceTree,
    opts: &LoadOptions,
    cache: Option<std::sync::Arc<crate::render::cache::RenderCache>>,
    each: impl FnMut(Rendered<'_>),
) -> Result<Evaluated, Failure> {
    evaluate_each_paired(inventory, tree, opts, cache, None, each)
}

/// What one side of `provision diff` does between its two passes
/// ([`crate::render::skip`]): hands over every host's keys, in the order the hosts
/// render, and gets back the services to skip on each (by position; an empty list
/// skips nothing). Dropped, unused, when the side fails before its first pass, so the
/// other side is not left waiting.
pub type Exchange<'a> = Box<dyn FnOnce(Arc<Vec<HostKeys>>) -> Vec<Vec<bool>> + Send + 'a>;

/// [`evaluate_each`] as one side of a diff: with an `exchange`, every host's keys are
/// worked out first and swapped with the other side's, then each host renders but for
/// the services whose inputs are the same at both sides.
pub fn evaluate_each_paired(
    inventory: &Path,
    tree: &dyn SourceTree,
    opts: &LoadOptions,
    cache: Option<std::sync::Arc<crate::render::cache::RenderCache>>,
    exchange: Option<Exchange<'_>>,
    mut each: impl FnMut(Rendered<'_>),
) -> Result<Evaluated, Failure> {
    let loaded = model::build(inventory, tree, opts);
    let mut diags = loaded.diags;
    let Some(cloud) = loaded.cloud else {
        return Err(Failure {
            diags,
            warnings: Diagnostics::default(),
            sources: loaded.sources,
        });
    };
    let renderer = Renderer::with_cache(&cloud, &mut diags, cache);
    if diags.is_empty() {
        each(Rendered::Cloud(&cloud));
        let repositories = crate::keys::repositories(&cloud);
        let mut hosts: Vec<(&str, Option<&model::Host>)> = cloud
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), Some(h)))
            .collect();
        hosts.push((cloud.undercloud.name.as_str(), None));
        hosts.sort_by(|a, b| a.0.cmp(b.0));
        // A diff's first pass: every host's keys, swapped with the other side's.
        let paired = exchange.map(|swap| {
            let keys: Arc<Vec<HostKeys>> = Arc::new(
                hosts
                    .iter()
                    .map(|(_, host)| match host {
                        Some(h) => renderer.host_keys(h),
                        None => renderer.undercloud_keys(),
                    })
                    .collect(),
            );
            let skips = swap(Arc::clone(&keys));
            (keys, skips)
        });
        for (i, (_, host)) in hosts.into_iter().enumerate() {
            let pass = paired.as_ref().and_then(|(keys, skips)| {
                Some((keys.get(i)?, skips.get(i).map(Vec::as_slice).unwrap_or(&[])))
            });
            let mut hs = match (host, pass) {
                (Some(h), Some((k, skip))) => renderer.render_host_skipping(h, k, skip, &mut diags),
                (Some(h), None) => renderer.render_host(h, &mut diags),
                (None, Some((k, skip))) => renderer.render_undercloud_skipping(k, skip, &mut diags),
                (None, None) => renderer.render_undercloud(&mut diags),
            };
            crate::keys::declare_host(&cloud, &repositories, &mut hs);
            each(Rendered::Host(hs));
        }
    }
    let warnings = renderer.warnings();
    drop(renderer);
    diags.sort();
    if diags.is_empty() {
        Ok(Evaluated {
            cloud,
            sources: loaded.sources,
            warnings,
        })
    } else {
        Err(Failure {
            diags,
            warnings,
            sources: loaded.sources,
        })
    }
}

/// `--limit` names something that is neither a host nor a role.
#[derive(Debug, thiserror::Error)]
#[error("--limit names `{name}`, which is neither a host nor a role of {inventory}")]
pub struct UnknownLimit {
    pub name: String,
    pub inventory: String,
}

impl Evaluation {
    /// Keeps only the hosts named by `limit` (comma-separated host or role names) in
    /// the desired state, and always the undercloud: the nodes' DHCP, DNS and log
    /// receiver are its services (a node added with `--limit` needs its DHCP entry).
    pub fn limit(&mut self, limit: &str) -> Result<(), UnknownLimit> {
        let wanted: Vec<&str> = limit
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let undercloud = [
            self.cloud.undercloud.name.as_str(),
            crate::model::UNDERCLOUD_ROLE,
        ];
        let known: Vec<&str> = self
            .cloud
            .hosts
            .iter()
            .flat_map(|h| [h.name.as_str(), h.role.as_str()])
            .chain(undercloud)
            .collect();
        if let Some(bad) = wanted.iter().find(|w| !known.contains(w)) {
            return Err(UnknownLimit {
                name: bad.to_string(),
                inventory: self.cloud.inventory.path.display().to_string(),
            });
        }
        let uc_name = self.cloud.undercloud.name.clone();
        let roles: std::collections::BTreeMap<&str, &str> = self
            .cloud
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.role.as_str()))
            .collect();
        self.state.hosts.retain(|name, _| {
            *name == uc_name
                || wanted.contains(&name.as_str())
                || roles
                    .get(name.as_str())
                    .map(|r| wanted.contains(r))
                    .unwrap_or(false)
        });
        Ok(())
    }
}
