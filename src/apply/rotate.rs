//! `provision keys rotate`: a key repository of the store on the undercloud rotated
//! ([`crate::keys::rotate`]), under the apply lock; the next apply distributes it.

use std::time::Duration;

use crate::evaluate::Evaluation;
use crate::host::{Command, Fleet};
use crate::keys;

use super::record::write_json;

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub repository: String,
    /// The indexes of its keys now: `0` staged, the highest primary.
    pub keys: Vec<u32>,
}

/// Rotates `repository` (`<service>/<name>`) in the store on the undercloud, holding
/// the apply lock; `holder` says who, to an apply that waits.
pub async fn rotate(
    ev: &Evaluation,
    fleet: &dyn Fleet,
    repository: &str,
    holder: &str,
) -> Result<Rotated, String> {
    let repos = keys::repositories(&ev.cloud);
    let Some(repo) = repos.iter().find(|r| r.id == repository) else {
        let known: Vec<&str> = repos.iter().map(|r| r.id.as_str()).collect();
        return Err(format!(
            "no key repository `{repository}` in this cloud's catalogue; it has: {}",
            known.join(", ")
        ));
    };
    let uc = fleet.undercloud();
    let held = uc
        .lock(&ev.cloud.name, holder)
        .await
        .map_err(|e| e.to_string())?;
    let path = keys::store_path(&ev.cloud.name);
    let result = async {
        let out = uc
            .run(&Command::ReadFile { path: &path }, Duration::from_secs(60))
            .await
            .map_err(|e| e.to_string())?;
        let mut store = keys::parse(&path, &out.stdout)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!("{path} holds no keys yet: the first `provision apply` generates them")
            })?;
        keys::rotate(&mut store, repository, repo.max_active).map_err(|e| e.to_string())?;
        write_json(uc.as_ref(), &path, &store, &ev.cloud.ssh.user).await?;
        Ok(Rotated {
            repository: repository.to_string(),
            keys: store.repositories[repository].keys().copied().collect(),
        })
    }
    .await;
    held.release().await;
    result
}
