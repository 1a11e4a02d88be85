//! Offline verification of a bundle: the archive reads, the manifest's signature is by the
//! trusted key, every file has the manifest's SHA-256 and size, and no file is missing or
//! extra. The [`Verdict`] lists every failure with the file it is about; its exit code is
//! that of the most fundamental class of failure found ([`FailureClass`]).

use super::manifest::{MANIFEST_FILE, Manifest, SIGNATURE_FILE};
use crate::sign::{NAMESPACE, PublicKey, SigError, SshSignature};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek};

/// Limits on what verification reads into memory (a manifest lists files; a signature is
/// a few hundred bytes).
const MAX_MANIFEST: u64 = 64 << 20;
const MAX_SIGNATURE: u64 = 64 << 10;
/// Unlisted files are hashed (to spot a rename) only up to this size.
const MAX_EXTRA_HASH: u64 = 1 << 30;

/// A class of failure, each with its own exit code. When several are found, the exit code
/// is that of the first in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureClass {
    /// 3: not a readable bundle: not a zip, truncated, no manifest or no signature.
    Archive,
    /// 4: the manifest's signature does not verify: the manifest or the signature was
    /// changed, or another key signed it.
    Signature,
    /// 6: files missing from the bundle, or in it but not in the manifest (added, renamed).
    FileSet,
    /// 5: a file's bytes differ from the manifest (SHA-256 or size), or its copy in the
    /// archive is damaged.
    Content,
    /// 7: everything checks, but against the key the bundle names: no trusted key was given.
    UntrustedKey,
}

impl FailureClass {
    /// The exit code `gatelog verify` ends with (0 means verified).
    pub const fn exit_code(self) -> u8 {
        match self {
            FailureClass::Archive => 3,
            FailureClass::Signature => 4,
            FailureClass::Content => 5,
            FailureClass::FileSet => 6,
            FailureClass::UntrustedKey => 7,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            FailureClass::Archive => "archive",
            FailureClass::Signature => "signature",
            FailureClass::Content => "content",
            FailureClass::FileSet => "file set",
            FailureClass::UntrustedKey => "untrusted key",
        }
    }
}

/// One failed check: its class, the file it is about, and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    pub file: String,
    pub message: String,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The key the signature names (`SHA256:…`), if the signature parsed.
    pub signer: Option<String>,
    /// The key the signature was checked against, if one was given.
    pub trusted_key: Option<String>,
    /// The manifest, if it parsed (trust it only when [`Verdict::ok`]).
    pub manifest: Option<Manifest>,
    /// Files whose SHA-256 and size were checked, and their bytes.
    pub files_checked: usize,
    pub bytes_checked: u64,
    pub failures: Vec<Failure>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The most fundamental class found, if any.
    pub fn worst(&self) -> Option<FailureClass> {
        self.failures.iter().map(|f| f.class).min()
    }

    /// 0 when verified, else the [`FailureClass::exit_code`] of [`Verdict::worst`].
    pub fn exit_code(&self) -> u8 {
        self.worst().map_or(0, FailureClass::exit_code)
    }

    fn fail(&mut self, class: FailureClass, file: &str, message: impl Into<String>) {
        self.failures.push(Failure { class, file: file.to_owned(), message: message.into() });
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut failures = self.failures.clone();
        failures.sort_by(|a, b| (a.class, &a.file).cmp(&(b.class, &b.file)));
        for x in &failures {
            writeln!(f, "FAIL [{}] {}: {}", x.class.name(), x.file, x.message)?;
        }
        let signer = self.signer.as_deref().unwrap_or("unknown");
        match self.worst() {
            None => write!(
                f,
                "OK: signature by {signer} (the trusted key), {} files and {} bytes match the manifest, none missing or extra",
                self.files_checked, self.bytes_checked
            ),
            Some(class) => write!(
                f,
                "FAILED: {} problem(s); the first class is {} (exit code {})",
                self.failures.len(),
                class.name(),
                class.exit_code()
            ),
        }
    }
}

/// Verifies the bundle read from `reader` against `trusted` (without one, the signature is
/// checked against the key it names, and the verdict ends with [`FailureClass::UntrustedKey`]).
pub fn verify<R: Read + Seek>(reader: R, trusted: Option<&PublicKey>) -> Verdict {
    let mut v = Verdict { trusted_key: trusted.map(PublicKey::fingerprint), ..Verdict::default() };
    let mut zip = match zip::ZipArchive::new(reader) {
        Ok(z) => z,
        Err(e) => {
            v.fail(
                FailureClass::Archive,
                "(bundle)",
                format!("not a readable zip archive (truncated or damaged?): {e}"),
            );
            return v;
        }
    };

    // Two entries of one name (each unzip tool picks another), local headers that disagree
    // with the central directory, or entries sharing bytes: what other tools show could
    // differ from what is checked here.
    if zip.has_duplicate_names() {
        v.fail(FailureClass::FileSet, "(archive)", "the archive lists a file name more than once");
    } else if let Err(e) = zip.validate_header_consistency() {
        v.fail(FailureClass::Archive, "(archive)", format!("inconsistent zip headers: {e}"));
    }

    // The entries, by name; folders and unreadable headers are failures.
    let mut entries: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..zip.len() {
        let (name, is_dir) = match zip.by_index_raw(i) {
            Ok(e) => (String::from_utf8(e.name_raw().to_vec()), e.is_dir()),
            Err(e) => {
                v.fail(FailureClass::Archive, &format!("(entry {i})"), format!("unreadable entry header: {e}"));
                continue;
            }
        };
        let Ok(name) = name else {
            v.fail(FailureClass::FileSet, &format!("(entry {i})"), "its name is not UTF-8; not in the manifest");
            continue;
        };
        if is_dir {
            v.fail(FailureClass::FileSet, &name, "a folder entry, not in the manifest (bundles have none)");
        } else if entries.insert(name.clone(), i).is_some() {
            v.fail(FailureClass::FileSet, &name, "appears more than once in the archive");
        }
    }

    let manifest_bytes = read_entry(&mut zip, &entries, MANIFEST_FILE, MAX_MANIFEST, &mut v, FailureClass::Signature);
    let signature = read_entry(&mut zip, &entries, SIGNATURE_FILE, MAX_SIGNATURE, &mut v, FailureClass::Signature);
    let signature_ok = match (&manifest_bytes, &signature) {
        (Some(m), Some(s)) => check_signature(m, s, trusted, &mut v),
        _ => false,
    };

    let manifest = manifest_bytes.as_deref().and_then(|bytes| {
        match serde_json::from_slice::<Manifest>(bytes)
            .map_err(|e| e.to_string())
            .and_then(|m| m.validate().map(|()| m))
        {
            Ok(m) => Some(m),
            Err(e) => {
                // A signed manifest that does not parse was made so by its signer; an unsigned
                // one is already a signature failure.
                if signature_ok {
                    v.fail(FailureClass::Archive, MANIFEST_FILE, format!("signed, but not a gatelog manifest: {e}"));
                }
                None
            }
        }
    });
    if let Some(manifest) = &manifest {
        check_files(&mut zip, &entries, manifest, &mut v);
    }
    v.manifest = manifest;
    v
}

/// Reads a required entry whole (up to `limit`); a missing one is an archive failure, a
/// damaged one a failure of `damaged`.
fn read_entry<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    entries: &BTreeMap<String, usize>,
    name: &str,
    limit: u64,
    v: &mut Verdict,
    damaged: FailureClass,
) -> Option<Vec<u8>> {
    let Some(&index) = entries.get(name) else {
        v.fail(FailureClass::Archive, name, "missing: every bundle has it (not a gatelog bundle, or it was removed)");
        return None;
    };
    let mut out = Vec::new();
    let result = zip
        .by_index(index)
        .map_err(|e| e.to_string())
        .and_then(|file| file.take(limit + 1).read_to_end(&mut out).map_err(|e| e.to_string()));
    match result {
        Err(e) => v.fail(damaged, name, format!("damaged in the archive: {e}")),
        Ok(n) if n as u64 > limit => v.fail(damaged, name, format!("larger than {limit} bytes")),
        Ok(_) => return Some(out),
    }
    None
}

fn check_signature(manifest: &[u8], signature: &[u8], trusted: Option<&PublicKey>, v: &mut Verdict) -> bool {
    let text = String::from_utf8_lossy(signature);
    let sig = match SshSignature::parse(&text) {
        Ok(s) => s,
        Err(e) => {
            v.fail(FailureClass::Signature, SIGNATURE_FILE, e.to_string());
            return false;
        }
    };
    v.signer = Some(sig.public_key.fingerprint());
    match sig.verify(manifest, NAMESPACE, trusted) {
        Ok(()) if trusted.is_some() => true,
        Ok(()) => {
            v.fail(
                FailureClass::UntrustedKey,
                SIGNATURE_FILE,
                format!(
                    "valid for the key the bundle names ({}), but no trusted key was given: pass --public-key with the signer's public key, obtained from them directly",
                    sig.public_key.fingerprint()
                ),
            );
            true
        }
        Err(e @ SigError::Mismatch) => {
            v.fail(FailureClass::Signature, SIGNATURE_FILE, format!("{e}: {MANIFEST_FILE} is not what was signed"));
            false
        }
        Err(e) => {
            v.fail(FailureClass::Signature, SIGNATURE_FILE, e.to_string());
            false
        }
    }
}

fn check_files<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    entries: &BTreeMap<String, usize>,
    manifest: &Manifest,
    v: &mut Verdict,
) {
    let mut extras: Vec<(String, Option<String>)> = Vec::new();
    for (name, &index) in entries {
        if name == MANIFEST_FILE || name == SIGNATURE_FILE {
            continue;
        }
        match manifest.file(name) {
            Some(listed) => match hash_entry(zip, index, listed.size.saturating_add(1)) {
                Err(e) => v.fail(FailureClass::Content, name, format!("damaged in the archive: {e}")),
                Ok((sha, size)) => {
                    if size != listed.size {
                        let what = if size > listed.size { "more than" } else { "only" };
                        v.fail(
                            FailureClass::Content,
                            name,
                            format!(
                                "{what} {} bytes; the manifest says {} bytes",
                                size.min(listed.size + 1),
                                listed.size
                            ),
                        );
                    } else if sha != listed.sha256 {
                        v.fail(
                            FailureClass::Content,
                            name,
                            format!("SHA-256 is {sha}; the manifest says {} (the file was changed)", listed.sha256),
                        );
                    } else {
                        v.files_checked += 1;
                        v.bytes_checked += size;
                    }
                }
            },
            None => {
                let sha = hash_entry(zip, index, MAX_EXTRA_HASH).ok().map(|(sha, _)| sha);
                extras.push((name.clone(), sha));
            }
        }
    }
    for listed in &manifest.files {
        if entries.contains_key(&listed.path) {
            continue;
        }
        let renamed = extras.iter().find(|(_, sha)| sha.as_deref() == Some(listed.sha256.as_str()));
        let message = match renamed {
            Some((to, _)) => format!("listed in the manifest but not in the bundle (renamed to {to:?}?)"),
            None => "listed in the manifest but not in the bundle (removed)".to_owned(),
        };
        v.fail(FailureClass::FileSet, &listed.path, message);
    }
    for (name, sha) in extras {
        let renamed =
            manifest.files.iter().find(|f| sha.as_deref() == Some(f.sha256.as_str()) && !entries.contains_key(&f.path));
        let message = match renamed {
            Some(from) => format!("in the bundle but not in the manifest (renamed from {:?}?)", from.path),
            None => "in the bundle but not in the manifest (added)".to_owned(),
        };
        v.fail(FailureClass::FileSet, &name, message);
    }
}

/// SHA-256 (hex) and size of an entry's content, reading at most `limit` bytes. The zip
/// reader checks the entry's CRC-32 at its end; a mismatch is an error.
fn hash_entry<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, index: usize, limit: u64) -> Result<(String, u64), String> {
    let file = zip.by_index(index).map_err(|e| e.to_string())?;
    let mut reader = file.take(limit);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}
