//! Which services `provision diff` need not render on a host: those whose inputs are the
//! same at both revisions there.
//!
//! A service's output on a host (its files, its container and that container's definition
//! file) is a pure function of its render key ([`super::cache`]): the same key at both
//! revisions gives the same output at both, so nothing of it can show in the comparison,
//! and neither side renders it. The diff runs in two passes: each side first works out
//! every host's [`HostKeys`] (a context and a digest per service, no template rendered),
//! the two sides swap them, and each then renders every host but the services
//! [`skipped`] there, which both sides work out alike from the same two lists.
//!
//! A service is skipped only where what it writes is its own: no other service on the
//! host mounts its files, it mounts none of another's, no task of it runs there (tasks
//! are not in the key), and no path it may write (its files, its container's definition
//! and unit) is one that another service on the host may write. What is not in the key
//! is still done for it: its directories (from its manifest), and the systemd unit of its
//! container, which names the containers of earlier steps ([`SkippedContainer`]).
//!
//! What a skipped service is not: checked. Its diagnostics would be the same at both
//! revisions (the same inputs); `provision validate` checks every service. One check
//! reads more than the key: whether a file holds the value of a secret its service does
//! not declare. A value the head gives a secret that a skipped file already held at the
//! base is not reported by `diff` (its file does not change); `validate` reports it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::cache::Key;
use super::Renderer;
use crate::catalogue::Service;
use crate::model::Host;
use crate::state::{unit_name, Plane};

/// One host's services as the first pass of a diff sees them, in the host's order.
#[derive(Debug, Clone, Default)]
pub struct HostKeys {
    pub host: String,
    pub services: Vec<ServiceKey>,
}

/// A service on a host: its render key, when its output may be reused ([`super::cache`]),
/// and whether what it writes on the host is its own.
#[derive(Debug, Clone)]
pub struct ServiceKey {
    pub service: String,
    pub key: Option<Key>,
    pub own_paths: bool,
}

impl ServiceKey {
    fn skippable(&self) -> Option<&Key> {
        self.key.as_ref().filter(|_| self.own_paths)
    }
}

/// The services skipped on one host, as a flag per service in `mine`'s order: those
/// skippable on both sides with the same key. `theirs` is the other side's list for the
/// same host (`None`: the host is on one side only, and renders whole).
pub fn skipped(mine: &HostKeys, theirs: Option<&HostKeys>) -> Vec<bool> {
    let Some(theirs) = theirs else {
        return vec![false; mine.services.len()];
    };
    mine.services
        .iter()
        .map(|s| {
            let Some(key) = s.skippable() else {
                return false;
            };
            theirs
                .services
                .iter()
                .find(|t| t.service == s.service)
                .and_then(ServiceKey::skippable)
                == Some(key)
        })
        .collect()
}

/// For every host of `mine` (sorted by name, as `theirs` is), the services skipped there.
pub fn skipped_all(mine: &[HostKeys], theirs: &[HostKeys]) -> Vec<Vec<bool>> {
    let mut j = 0;
    mine.iter()
        .map(|m| {
            while j < theirs.len() && theirs[j].host < m.host {
                j += 1;
            }
            let other = theirs.get(j).filter(|t| t.host == m.host);
            skipped(m, other)
        })
        .collect()
}

/// The container of a skipped service, as the units of the host's containers name it.
#[derive(Debug, Clone)]
pub(super) struct SkippedContainer {
    pub name: String,
    pub service: String,
    pub step: u8,
}

/// The services of a host list (by position) whose paths are their own, by list and plane.
#[derive(Default)]
pub(super) struct OwnPaths {
    by_services: Mutex<HashMap<(Vec<String>, Plane), Arc<Vec<bool>>>>,
}

impl Renderer<'_> {
    /// The first pass of a diff on an overcloud host: each service's key, nothing rendered.
    pub fn host_keys(&self, host: &Host) -> HostKeys {
        self.keys_of(host, &self.cloud.catalogue.services, Plane::Overcloud)
    }

    /// [`Renderer::host_keys`] of the undercloud.
    pub fn undercloud_keys(&self) -> HostKeys {
        self.keys_of(
            &self.cloud.undercloud_host(),
            &self.cloud.catalogue.undercloud_services,
            Plane::Undercloud,
        )
    }

    fn keys_of(
        &self,
        host: &Host,
        catalogue: &std::collections::BTreeMap<String, Service>,
        plane: Plane,
    ) -> HostKeys {
        let own = self.own_paths(host, catalogue, plane);
        let host_v = super::context::host_value(self.cloud, host);
        let vars_v = self.vars_value(&host.vars);
        let services = host
            .services
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let key = catalogue.get(name).and_then(|svc| {
                    let ctx = self.service_context(name, &svc.manifest, plane, &host_v, &vars_v);
                    self.service_key(host, svc, plane, &ctx)
                });
                ServiceKey {
                    service: name.clone(),
                    key,
                    own_paths: own.get(i).copied().unwrap_or(false),
                }
            })
            .collect();
        HostKeys {
            host: host.name.clone(),
            services,
        }
    }

    /// Whether each service of `host` (by position) writes only what is its own there:
    /// the same for every host with the same services, worked out once for them.
    fn own_paths(
        &self,
        host: &Host,
        catalogue: &std::collections::BTreeMap<String, Service>,
        plane: Plane,
    ) -> Arc<Vec<bool>> {
        let memo_key = (host.services.clone(), plane);
        if let Some(v) = self
            .memo
            .own_paths
            .by_services
            .lock()
            .ok()
            .and_then(|m| m.get(&memo_key).cloned())
        {
            return v;
        }
        let services: Vec<Option<&Service>> =
            host.services.iter().map(|s| catalogue.get(s)).collect();
        let paths: Vec<BTreeSet<String>> = services
            .iter()
            .map(|s| s.map(|s| possible_paths(s, plane)).unwrap_or_default())
            .collect();
        let own: Vec<bool> = services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let Some(s) = s else {
                    return false;
                };
                let m = &s.manifest;
                let mounted_by_other = services.iter().flatten().any(|o| {
                    o.manifest
                        .shared_files
                        .iter()
                        .any(|sf| sf.from.get_ref() == &s.name)
                });
                let clash = paths
                    .iter()
                    .enumerate()
                    .any(|(j, p)| j != i && !p.is_disjoint(&paths[i]));
                m.shared_files.is_empty() && m.tasks.is_empty() && !mounted_by_other && !clash
            })
            .collect();
        let own = Arc::new(own);
        if let Ok(mut m) = self.memo.own_paths.by_services.lock() {
            m.insert(memo_key, Arc::clone(&own));
        }
        own
    }
}

/// Every path service `svc` may write on a host of `plane`: its files', its tasks' files
/// and environment files, its container's definition and unit.
fn possible_paths(svc: &Service, plane: Plane) -> BTreeSet<String> {
    let m = &svc.manifest;
    let mut out: BTreeSet<String> = m.files.iter().map(|f| f.dest.get_ref().clone()).collect();
    for t in &m.tasks {
        out.extend(t.files.iter().map(|f| f.dest.get_ref().clone()));
        out.insert(format!(
            "{}/{}/tasks/{}.env",
            plane.config_root(),
            svc.name,
            t.name.get_ref()
        ));
    }
    out.insert(format!("{}/{}.json", plane.container_defs(), svc.name));
    out.insert(format!(
        "{}/{}",
        crate::state::UNIT_DIR,
        unit_name(&svc.name)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(host: &str, services: &[(&str, Option<u8>, bool)]) -> HostKeys {
        HostKeys {
            host: host.into(),
            services: services
                .iter()
                .map(|(s, k, own)| ServiceKey {
                    service: s.to_string(),
                    key: k.map(|b| [b; 32]),
                    own_paths: *own,
                })
                .collect(),
        }
    }

    #[test]
    fn a_service_is_skipped_only_with_the_same_key_and_its_own_paths_on_both_sides() {
        let base = keys(
            "h",
            &[
                ("a", Some(1), true),
                ("b", Some(2), true),
                ("c", Some(3), false),
                ("d", None, true),
                ("e", Some(5), true),
            ],
        );
        let head = keys(
            "h",
            &[
                ("e", Some(5), false),
                ("d", None, true),
                ("c", Some(3), true),
                ("b", Some(9), true),
                ("a", Some(1), true),
            ],
        );
        // a: same key, own paths on both; b: another key; c and e: not their own paths on
        // one side; d: no key.
        assert_eq!(
            skipped(&base, Some(&head)),
            [true, false, false, false, false]
        );
        assert_eq!(
            skipped(&head, Some(&base)),
            [false, false, false, false, true]
        );
        // A host on one side only renders whole.
        assert_eq!(skipped(&base, None), [false; 5]);
    }

    #[test]
    fn hosts_are_matched_by_name_in_both_sorted_lists() {
        let mine = [
            keys("a", &[("s", Some(1), true)]),
            keys("c", &[("s", Some(1), true)]),
            keys("d", &[("s", Some(1), true)]),
        ];
        let theirs = [
            keys("b", &[("s", Some(1), true)]),
            keys("c", &[("s", Some(1), true)]),
            keys("d", &[("s", Some(2), true)]),
            keys("e", &[("s", Some(1), true)]),
        ];
        assert_eq!(
            skipped_all(&mine, &theirs),
            [vec![false], vec![true], vec![false]]
        );
    }
}
