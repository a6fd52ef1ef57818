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
        if let Some((bad, why)) = files.iter().find_map(|f| unsafe_upload(f).map(|w| (f, w))) {
            return Err(TransportError::Upload {
                host: self.target.name.clone(),
                path: bad.path.escape_debug().to_string(),
                message: why.into(),
            });
        }
        let stream = batch_stream(files);
        let script = BATCH_SCRIPT;
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

/// The stream [`BATCH_SCRIPT`] reads: per file, a header (`size sha256 mode owner
/// group`), the destination on a line of its own (read whole, byte-exact: spaces and
/// all), then the content.
fn batch_stream(files: &[UploadFile<'_>]) -> Vec<u8> {
    let mut stream: Vec<u8> = Vec::with_capacity(files.iter().map(|f| f.content.len() + 128).sum());
    for f in files {
        let sha: String = Sha256::digest(f.content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        stream.extend_from_slice(
            format!(
                "{} {sha} {:o} {} {}\n{}\n",
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
    stream
}

/// Why a file cannot be uploaded in a batch: its path must be absolute and free of
/// control characters and backslashes (sha256sum's list escapes those); its owner and
/// group are user or group names or numbers.
fn unsafe_upload(f: &UploadFile<'_>) -> Option<&'static str> {
    if !f.path.starts_with('/') {
        return Some("not an absolute path");
    }
    if f.path.chars().any(|c| c.is_control() || c == '\\') {
        return Some("a control character or a backslash in the path");
    }
    let name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    };
    if !name(f.owner) || !name(f.group) {
        return Some("an owner or group that is not a user or group name or number");
    }
    None
}

/// The batch upload, run by `sh` with the stream on its standard input. Headers are
/// read with the shell's `read` (a byte at a time) and contents with `head -c`, which
/// reads no more than it is asked: the stream stays in step. Its own temporary files
/// are listed one per line in `$w/temps` (beside their destinations, in `$w/dests`, line
/// for line): the cleanup removes those and nothing else.
const BATCH_SCRIPT: &str = r#"set -e; umask 077; w=$(mktemp -d /tmp/.provision-batch.XXXXXX)
trap 'while IFS= read -r t; do rm -f -- "$t"; done < "$w/temps" 2>/dev/null; rm -rf -- "$w"' EXIT HUP INT TERM PIPE
: > "$w/temps"; : > "$w/dests"; : > "$w/sums"; : > "$w/dirs"; : > "$w/meta"; last=; n=0; set -C
while IFS=' ' read -r size sha mode owner group && IFS= read -r dest; do
  d=${dest%/*}; [ -n "$d" ] || d=/
  if [ "$d" != "$last" ]; then mkdir -p -- "$d"; printf '%s\n' "$d" >> "$w/dirs"; last=$d; fi
  n=$((n + 1)); t="$d/.provision.$$.$n"
  printf '%s\n' "$t" >> "$w/temps"; printf '%s\n' "$dest" >> "$w/dests"
  printf '%s %s %s\n' "$mode" "$owner" "$group" >> "$w/meta"; printf '%s  %s\n' "$sha" "$t" >> "$w/sums"
  head -c "$size" > "$t"
done
set +C
sha256sum -c --quiet "$w/sums" >&2 || { echo 'a file arrived incomplete or corrupted; nothing was replaced' >&2; exit 71; }
sort -u "$w/meta" | while read -r m o g; do
  awk -v k="$m $o $g" 'NR == FNR { key[FNR] = $0; next } key[FNR] == k' "$w/meta" "$w/temps" > "$w/set"
  xargs -d '\n' chmod "$m" -- < "$w/set"; xargs -d '\n' chown "$o:$g" -- < "$w/set"
done
xargs -d '\n' sync -- < "$w/temps"
exec 3< "$w/temps" 4< "$w/dests"
while IFS= read -r t <&3 && IFS= read -r d <&4; do mv -f -- "$t" "$d"; done
: > "$w/temps"
sort -u "$w/dirs" | xargs -d '\n' sync -- 2>/dev/null || true"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the batch script in a real local `sh` on `stream`.
    fn run(stream: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(BATCH_SCRIPT)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stream).unwrap();
        child.wait_with_output().unwrap()
    }

    fn listing(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = walk(dir)
            .into_iter()
            .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
            .collect();
        v.sort();
        v
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
        out
    }

    #[test]
    fn destinations_with_spaces_land_byte_exact_and_cleanup_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        // An unrelated file `a` beside a folder `a b`: an old cleanup split `a b/...` at
        // the space and removed `a`.
        std::fs::write(dir.path().join("a"), "unrelated").unwrap();
        let (p1, p2) = (format!("{root}/a b/x y.conf"), format!("{root}/a b/c  d "));
        let me = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let me = if me.is_empty() {
            "root".to_string()
        } else {
            me
        };
        let files = [
            UploadFile {
                path: &p1,
                content: b"one\n",
                mode: 0o640,
                owner: &me,
                group: "0",
            },
            UploadFile {
                path: &p2,
                content: b"two",
                mode: 0o600,
                owner: &me,
                group: "0",
            },
        ];
        assert!(files.iter().all(|f| unsafe_upload(f).is_none()));
        let out = run(&batch_stream(&files));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&p1).unwrap(), b"one\n");
        assert_eq!(std::fs::read(&p2).unwrap(), b"two");
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"unrelated");
        assert_eq!(
            listing(dir.path()),
            ["a", "a b", "a b/c  d ", "a b/x y.conf"]
        );

        // A corrupted stream: nothing is replaced, every temporary file is gone, `a` stays.
        let mut bad = batch_stream(&[UploadFile {
            path: &p1,
            content: b"new!\n",
            mode: 0o640,
            owner: &me,
            group: "0",
        }]);
        let n = bad.len();
        bad[n - 2] = b'?';
        let out = run(&bad);
        assert_eq!(
            out.status.code(),
            Some(71),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&p1).unwrap(), b"one\n");
        assert_eq!(
            listing(dir.path()),
            ["a", "a b", "a b/c  d ", "a b/x y.conf"]
        );
    }

    #[test]
    fn unsafe_destinations_and_owners_are_refused() {
        let f = |path, owner| UploadFile {
            path,
            content: b"",
            mode: 0o600,
            owner,
            group: "root",
        };
        assert!(unsafe_upload(&f("relative", "root")).is_some());
        assert!(unsafe_upload(&f("/a\nb", "root")).is_some());
        assert!(unsafe_upload(&f("/a\\b", "root")).is_some());
        assert!(unsafe_upload(&f("/a b", "root x")).is_some());
        assert!(unsafe_upload(&f("/a b", "42425")).is_none());
    }
}
