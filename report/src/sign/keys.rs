//! Ed25519 keys in OpenSSH's formats, so the tools an auditor already has read them.
//!
//! - The private key is an unencrypted `OPENSSH PRIVATE KEY` file (`ssh-keygen -y -f` prints
//!   its public key), mode 0600; gatelog refuses to read it when group or others may.
//! - The public key is one line, `ssh-ed25519 AAAA… comment`, as in `~/.ssh/*.pub`.
//! - `allowed_signers` is the file `ssh-keygen -Y verify -f` takes: `gatelog ssh-ed25519 AAAA…`.
//!
//! [`KeyFiles::create`] writes the three into one folder (`gatelog keys init`).

use super::wire::{Reader, armor, dearmor, put_string, put_u32};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const KEY_TYPE: &str = "ssh-ed25519";
const PRIVATE_LABEL: &str = "OPENSSH PRIVATE KEY";
const AUTH_MAGIC: &[u8] = b"openssh-key-v1\0";

/// The principal gatelog's `allowed_signers` line names: `ssh-keygen -Y verify -I gatelog`.
pub const PRINCIPAL: &str = "gatelog";

/// A problem with a key or a key file, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{path} already exists; pass --force to replace it (bundles signed with the old key then verify only with the old public key)"
    )]
    Exists { path: PathBuf },
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path}: mode {mode:04o} lets others read the signing key; run `chmod 600 {path}`")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{origin}: not an ed25519 key: {message}")]
    Format { origin: String, message: String },
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
}

/// The secret half: signs manifests.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    comment: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("public", &self.public_key().fingerprint()).finish_non_exhaustive()
    }
}

/// The public half: what an auditor is given, out of band, to verify with.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

impl SigningKey {
    /// A new key from the operating system's random generator.
    pub fn generate(comment: &str) -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(seed, comment))
    }

    /// The key of a 32-byte seed (tests and benchmarks use fixed seeds).
    pub fn from_seed(seed: [u8; 32], comment: &str) -> Self {
        SigningKey { key: ed25519_dalek::SigningKey::from_bytes(&seed), comment: comment.to_owned() }
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey { key: self.key.verifying_key() }
    }

    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// A pure Ed25519 signature (RFC 8032) over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.key.sign(message).to_bytes()
    }

    /// The unencrypted `OPENSSH PRIVATE KEY` text of this key.
    pub fn to_openssh(&self) -> Result<String, KeyError> {
        let public = self.public_key().blob();
        let mut check = [0u8; 4];
        getrandom::fill(&mut check).map_err(|e| KeyError::Random(e.to_string()))?;
        let mut private = Vec::new();
        private.extend_from_slice(&check);
        private.extend_from_slice(&check);
        put_string(&mut private, KEY_TYPE.as_bytes());
        put_string(&mut private, self.key.verifying_key().as_bytes());
        let mut pair = self.key.to_bytes().to_vec();
        pair.extend_from_slice(self.key.verifying_key().as_bytes());
        put_string(&mut private, &pair);
        put_string(&mut private, self.comment.as_bytes());
        let mut pad = 1u8;
        while private.len() % 8 != 0 {
            private.push(pad);
            pad += 1;
        }
        let mut out = AUTH_MAGIC.to_vec();
        put_string(&mut out, b"none");
        put_string(&mut out, b"none");
        put_string(&mut out, b"");
        put_u32(&mut out, 1);
        put_string(&mut out, &public);
        put_string(&mut out, &private);
        Ok(armor(PRIVATE_LABEL, &out, 70))
    }

    /// Reads an unencrypted OpenSSH ed25519 private key; `origin` names it in errors.
    pub fn from_openssh(text: &str, origin: &str) -> Result<Self, KeyError> {
        let format = |message: String| KeyError::Format { origin: origin.to_owned(), message };
        let bytes = dearmor(PRIVATE_LABEL, text).map_err(format)?;
        let mut r = Reader::new(&bytes);
        if r.bytes(AUTH_MAGIC.len(), "magic").map_err(format)? != AUTH_MAGIC {
            return Err(format("not an openssh-key-v1 file".into()));
        }
        let cipher = r.string("cipher").map_err(format)?;
        if cipher != b"none" {
            return Err(format(format!(
                "encrypted with {:?}; gatelog needs an unencrypted key (it signs unattended)",
                String::from_utf8_lossy(cipher)
            )));
        }
        r.string("kdf").map_err(format)?;
        r.string("kdf options").map_err(format)?;
        if r.u32("key count").map_err(format)? != 1 {
            return Err(format("holds more than one key".into()));
        }
        let public = PublicKey::from_blob(r.string("public key").map_err(format)?).map_err(format)?;
        let mut p = Reader::new(r.string("private section").map_err(format)?);
        if p.u32("check").map_err(format)? != p.u32("check").map_err(format)? {
            return Err(format("check integers differ (damaged, or encrypted)".into()));
        }
        p.expect_string(KEY_TYPE.as_bytes(), "key type").map_err(format)?;
        p.string("public key").map_err(format)?;
        let pair = p.string("private key").map_err(format)?;
        let comment = String::from_utf8_lossy(p.string("comment").map_err(format)?).into_owned();
        let seed: [u8; 32] =
            pair.get(..32).and_then(|s| s.try_into().ok()).ok_or_else(|| format("short private key".into()))?;
        let key = SigningKey::from_seed(seed, &comment);
        if key.public_key() != public {
            return Err(format("the private key does not match its public key".into()));
        }
        Ok(key)
    }

    /// Reads the key file at `path`, refusing one that group or others may read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |what, source| KeyError::Io { what, path: path.to_owned(), source };
        let text = std::fs::read_to_string(path).map_err(|e| io("read the signing key", e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path).map_err(|e| io("stat", e))?.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions { path: path.to_owned(), mode });
            }
        }
        Self::from_openssh(&text, &path.display().to_string())
    }
}

impl PublicKey {
    /// The SSH wire blob: `string "ssh-ed25519"`, `string key`.
    pub fn blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(51);
        put_string(&mut out, KEY_TYPE.as_bytes());
        put_string(&mut out, self.key.as_bytes());
        out
    }

    pub(crate) fn from_blob(blob: &[u8]) -> Result<Self, String> {
        let mut r = Reader::new(blob);
        r.expect_string(KEY_TYPE.as_bytes(), "key type")?;
        let raw: [u8; 32] = r.string("key")?.try_into().map_err(|_| "an ed25519 public key is 32 bytes".to_owned())?;
        if !r.remaining().is_empty() {
            return Err("trailing bytes after the key".into());
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|e| format!("not a curve point: {e}"))?;
        Ok(PublicKey { key })
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(self.blob())))
    }

    /// `ssh-ed25519 AAAA… comment`.
    pub fn to_openssh(&self, comment: &str) -> String {
        let line = format!("{KEY_TYPE} {}", STANDARD.encode(self.blob()));
        if comment.is_empty() { line } else { format!("{line} {comment}") }
    }

    /// The `allowed_signers` line for `ssh-keygen -Y verify -I gatelog`.
    pub fn allowed_signers_line(&self) -> String {
        format!("{PRINCIPAL} {}", self.to_openssh(""))
    }

    /// Verifies a pure Ed25519 signature (strict: no malleable encodings).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.key.verify_strict(message, &sig).is_ok()
    }

    /// Reads a public key from text: a `.pub` line (`ssh-ed25519 AAAA… [comment]`), an
    /// `allowed_signers` line (`principal [options] ssh-ed25519 AAAA…`), or a file of such
    /// lines (the first key counts; `#` comments and blank lines are skipped).
    pub fn parse(text: &str, origin: &str) -> Result<Self, KeyError> {
        let format = |message: String| KeyError::Format { origin: origin.to_owned(), message };
        let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')) else {
            return Err(format("holds no key".into()));
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == KEY_TYPE) else {
            let found = words.iter().find(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-"));
            return Err(format(match found {
                Some(kind) => format!("{kind} keys are not used by gatelog; expected ssh-ed25519"),
                None => "expected `ssh-ed25519 AAAA…` (a .pub line or an allowed_signers line)".into(),
            }));
        };
        let b64 = words.get(at + 1).ok_or_else(|| format("ssh-ed25519 is not followed by the key".into()))?;
        let blob = STANDARD.decode(b64).map_err(|e| format(format!("the key is not base64: {e}")))?;
        Self::from_blob(&blob).map_err(format)
    }

    /// [`PublicKey::parse`] of a file, or of the text itself when `arg` is not a file but
    /// looks like a key (`--public-key "ssh-ed25519 AAAA…"`).
    pub fn from_arg(arg: &str) -> Result<Self, KeyError> {
        let path = Path::new(arg);
        if arg.contains(KEY_TYPE) && !path.exists() {
            return Self::parse(arg, "--public-key");
        }
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            what: "read the public key",
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }
}

/// Where `gatelog keys init` puts a key: `signing.key` (0600), `signing.pub`, `allowed_signers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    pub private: PathBuf,
    pub public: PathBuf,
    pub allowed_signers: PathBuf,
}

impl KeyFiles {
    /// The files of the key whose private file is `private`; the others sit beside it.
    pub fn for_private(private: &Path) -> Self {
        let dir = private.parent().unwrap_or(Path::new("."));
        let stem = private.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "signing".into());
        KeyFiles {
            private: private.to_owned(),
            public: dir.join(format!("{stem}.pub")),
            allowed_signers: dir.join("allowed_signers"),
        }
    }

    /// The default names inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self::for_private(&dir.join("signing.key"))
    }

    /// Writes a new key: the folder (0700 when created), the private key (0600, written
    /// beside and renamed into place, so a crash leaves the old file or the new one), then
    /// the public files. Refuses to replace an existing private key unless `force`.
    pub fn create(&self, key: &SigningKey, force: bool) -> Result<(), KeyError> {
        if !force && self.private.exists() {
            return Err(KeyError::Exists { path: self.private.clone() });
        }
        let dir = self.private.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        write_atomically(&self.private, key.to_openssh()?.as_bytes(), 0o600)?;
        let public = key.public_key();
        write_atomically(&self.public, format!("{}\n", public.to_openssh(key.comment())).as_bytes(), 0o644)?;
        write_atomically(&self.allowed_signers, format!("{}\n", public.allowed_signers_line()).as_bytes(), 0o644)?;
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| KeyError::Io { what: "create the key folder", path: dir.to_owned(), source })
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let io = |what, path: &Path, source| KeyError::Io { what, path: path.to_owned(), source };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(&tmp).map_err(|e| io("create", &tmp, e))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("write", path, e));
    }
    #[cfg(unix)]
    {
        // The mode given at creation is masked by the umask; set it exactly.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| io("chmod", path, e))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("sync", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_round_trips_and_keeps_its_comment() {
        let key = SigningKey::from_seed([7; 32], "gatelog@host");
        let text = key.to_openssh().unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        let back = SigningKey::from_openssh(&text, "t").unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(back.comment(), "gatelog@host");
    }

    #[test]
    fn public_key_lines_parse_in_every_shape() {
        let public = SigningKey::from_seed([1; 32], "").public_key();
        let line = public.to_openssh("c");
        for text in [
            line.clone(),
            public.allowed_signers_line(),
            format!("# comment\n\n{}", public.allowed_signers_line()),
            format!("gatelog namespaces=\"gatelog-bundle\" {line}"),
        ] {
            assert_eq!(PublicKey::parse(&text, "t").unwrap(), public, "{text}");
        }
        let err = PublicKey::parse("ssh-rsa AAAAB3Nza", "k.pub").unwrap_err().to_string();
        assert!(err.starts_with("k.pub:") && err.contains("ssh-rsa"), "{err}");
        let err = PublicKey::parse("ssh-ed25519 !!!", "k.pub").unwrap_err().to_string();
        assert!(err.contains("base64"), "{err}");
        assert!(public.fingerprint().starts_with("SHA256:"));
    }

    #[cfg(unix)]
    #[test]
    fn create_writes_0600_and_refuses_to_overwrite() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::in_dir(&dir.path().join("keys"));
        let key = SigningKey::generate("t").unwrap();
        files.create(&key, false).unwrap();
        let mode = std::fs::metadata(&files.private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("keys")).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(matches!(files.create(&SigningKey::generate("u").unwrap(), false), Err(KeyError::Exists { .. })));
        assert_eq!(SigningKey::load(&files.private).unwrap().public_key(), key.public_key());
        let other = SigningKey::generate("u").unwrap();
        files.create(&other, true).unwrap();
        assert_eq!(SigningKey::load(&files.private).unwrap().public_key(), other.public_key());
        std::fs::set_permissions(&files.private, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(SigningKey::load(&files.private), Err(KeyError::Permissions { mode: 0o644, .. })));
    }
}
