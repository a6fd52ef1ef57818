//! Uploads: one file written atomically (from memory or streamed from a local file),
//! or many at once over one channel, each checked against its SHA-256 before it
//! replaces its destination.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;

use super::Session;
use crate::transport::{shell_quote, TransportError};

/// One file of [`Session::upload_batch`].
#[derive(Debug, Clone, Copy)]
pub struct UploadFile<'a> {
    pub path: &'a str,
    pub content: &'a [u8],
    pub mode: u32,
    pub owner: &'a str,
    pub group: &'a str,
}

impl Session {
    /// Writes `content` to `path` atomically: into a temporary file beside it, checked
    /// for size and SHA-256, mode and owner set, fsynced, then renamed over the
    /// destination. A cut transfer leaves the destination as it was and removes the
    /// temporary file.
    pub async fn upload(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        owner: &str,
        group: &str,
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let sha = Sha256::digest(content);
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        let mut reader: &[u8] = content;
        self.upload_stream(
            path,
            &mut reader,
            content.len() as u64,
            &hex,
            mode,
            owner,
            group,
            timeout,
        )
        .await
    }

    /// Streams a local file to `path` atomically, without holding it in memory (it is
    /// read twice: once for its checksum, once to send it).
    pub async fn upload_file(
        &self,
        local: &std::path::Path,
        path: &str,
        mode: u32,
        owner: &str,
        group: &str,
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let err = |m: String| TransportError::Upload {
            host: self.target.name.clone(),
            path: path.to_string(),
            message: m,
        };
        let (size, hex) = {
            use std::io::Read;
            let mut f =
                std::fs::File::open(local).map_err(|e| err(format!("{}: {e}", local.display())))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut size = 0u64;
            loop {
                let n = f.read(&mut buf).map_err(|e| err(e.to_string()))?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                h.update(&buf[..n]);
            }
            (
                size,
                h.finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            )
        };
        let mut f = tokio::fs::File::open(local)
            .await
            .map_err(|e| err(format!("{}: {e}", local.display())))?;
        self.upload_stream(path, &mut f, size, &hex, mode, owner, group, timeout)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_stream(
        &self,
        path: &str,
        reader: &mut (dyn AsyncRead + Unpin + Send),
        size: u64,
        sha256: &str,
        mode: u32,
        owner: &str,
        group: &str,
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let dir = match path.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => path[..i].to_string(),
            None => ".".to_string(),
        };
        let script = format!(
            "set -e; umask 077; d={dir}; mkdir -p \"$d\"; t=$(mktemp \"$d/.provision.XXXXXX\"); \
             trap 'rm -f \"$t\"' EXIT HUP INT TERM PIPE; \
             head -c {size} > \"$t\"; \
             n=$(wc -c < \"$t\"); [ \"$n\" -eq {size} ] || {{ echo \"received $n of {size} bytes\" >&2; exit 70; }}; \
             echo '{sha256}  '\"$t\" | sha256sum -c --status - || {{ echo 'checksum mismatch' >&2; exit 71; }}; \
             chmod {mode:o} \"$t\"; chown {owner}:{group} \"$t\"; sync \"$t\"; mv -f \"$t\" {dest}; trap - EXIT; sync \"$d\" 2>/dev/null || true",
            dir = shell_quote(&dir),
            owner = shell_quote(owner),
            group = shell_quote(group),
            dest = shell_quote(path),
        );
        let out = self
            .exec(&script, Some(reader), timeout)
            .await
            .map_err(|e| match e {
                TransportError::Disconnected { message, .. } => TransportError::Upload {
                    host: self.target.name.clone(),
                    path: path.to_string(),
                    message: format!("connection lost: {message}"),
                },
                other => other,
            })?;
        if out.success() {
            Ok(())
        } else {
            Err(TransportError::Upload {
                host: self.target.name.clone(),
                path: path.to_string(),
                message: out.stderr_text().trim().to_string(),
            })
        }
    }

    /// Writes many files in one remote command over one channel: each goes to a
    /// temporary file beside its destination; then all are checked against their
    /// SHA-256 at once, fsynced at once and only then renamed into place. If anything
    /// fails (or the transfer is cut), no destination is touched and the temporary files
    /// are removed. Paths must not contain newlines.
    pub async fn upload_batch(
        &self,
        files: &[UploadFile<'_>],
        timeout: Duration,
    ) -> Result<(), TransportError> {
        if files.is_empty() {
            return Ok(());
        }
        if let Some(bad) = files
            .iter()
            .find(|f| f.path.contains('\n') || !f.path.starts_with('/'))
        {
            return Err(TransportError::Upload {
                host: self.target.name.clone(),
                path: bad.path.to_string(),
                message: "not an absolute path on one line".into(),
            });
        }
        let mut stream: Vec<u8> =
            Vec::with_capacity(files.iter().map(|f| f.content.len() + 128).sum());
        for f in files {
            let sha: String = Sha256::digest(f.content)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            stream.extend_from_slice(
                format!(
                    "{} {sha} {:o} {} {} {}\n",
                    f.content.len(),
                    f.mode,
                    f.owner,
                    f.group,
                    f.path
                )
                .as_bytes(),
            );
            stream.extend_from_slice(f.content);
        }
        // Headers are read with the shell's `read` (a byte at a time) and contents with
        // `head -c`, which reads no more than it is asked: the stream stays in step.
        let script = r#"set -e; umask 077; w=$(mktemp -d /tmp/.provision-batch.XXXXXX)
trap 'while read -r t d; do rm -f "$t"; done < "$w/moves" 2>/dev/null; rm -rf "$w"' EXIT HUP INT TERM PIPE
: > "$w/moves"; : > "$w/sums"; : > "$w/dirs"; : > "$w/meta"; last=; n=0; set -C
while IFS=' ' read -r size sha mode owner group dest; do
  d=${dest%/*}; [ -n "$d" ] || d=/
  if [ "$d" != "$last" ]; then mkdir -p "$d"; echo "$d" >> "$w/dirs"; last=$d; fi
  n=$((n + 1)); t="$d/.provision.$$.$n"
  echo "$t $dest" >> "$w/moves"; echo "$mode $owner $group $t" >> "$w/meta"; echo "$sha  $t" >> "$w/sums"
  head -c "$size" > "$t"
done
set +C
sha256sum -c --quiet "$w/sums" >&2 || { echo 'a file arrived incomplete or corrupted; nothing was replaced' >&2; exit 71; }
cut -d' ' -f1-3 "$w/meta" | sort -u | while read -r m o g; do
  awk -v m="$m" -v o="$o" -v g="$g" '$1 == m && $2 == o && $3 == g { print $4 }' "$w/meta" > "$w/set"
  xargs chmod "$m" < "$w/set"; xargs chown "$o:$g" < "$w/set"
done
cut -d' ' -f1 "$w/moves" | xargs sync
while read -r t d; do mv -f "$t" "$d"; done < "$w/moves"; : > "$w/moves"
sort -u "$w/dirs" | xargs sync 2>/dev/null || true"#;
        let mut reader: &[u8] = &stream;
        let out = self.exec(script, Some(&mut reader), timeout).await?;
        if out.success() {
            Ok(())
        } else {
            Err(TransportError::Upload {
                host: self.target.name.clone(),
                path: format!("{} files", files.len()),
                message: out.stderr_text().trim().to_string(),
            })
        }
    }
}
