//! Evaluation: inventory -> model -> desired state, with every problem collected. This is
//! what `validate`, `render` (and later `plan` and `diff`) start from; it reads files
//! only through a [`SourceTree`] and contacts no host.

use std::path::Path;

use crate::diagnostics::{self, Diagnostics};
use crate::model::{self, Cloud, LoadOptions};
use crate::render::Renderer;
use crate::source::{SourceMap, SourceTree};
use crate::state::DesiredState;

/// A successful evaluation.
pub struct Evaluation {
    pub cloud: Cloud,
    pub state: DesiredState,
    pub sources: SourceMap,
}

/// A failed evaluation: every problem found.
pub struct Failure {
    pub diags: Diagnostics,
    pub sources: SourceMap,
}

impl Failure {
    /// The diagnostics as text, for a terminal or a log.
    pub fn render(&self) -> String {
        self.diags
            .items
            .iter()
            .map(|d| diagnostics::render(d, &self.sources))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Loads, checks and renders everything.
pub fn evaluate(
    inventory: &Path,
    tree: &dyn SourceTree,
    opts: &LoadOptions,
) -> Result<Evaluation, Failure> {
    let loaded = model::build(inventory, tree, opts);
    let mut diags = loaded.diags;
    let Some(cloud) = loaded.cloud else {
        return Err(Failure {
            diags,
            sources: loaded.sources,
        });
    };
    let renderer = Renderer::new(&cloud, &mut diags);
    let state = if diags.is_empty() {
        renderer.render_all(&mut diags)
    } else {
        DesiredState::default()
    };
    drop(renderer);
    diags.sort();
    if diags.is_empty() {
        Ok(Evaluation {
            cloud,
            state,
            sources: loaded.sources,
        })
    } else {
        Err(Failure {
            diags,
            sources: loaded.sources,
        })
    }
}
