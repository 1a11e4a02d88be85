//! [`BundleBuilder`]: files in, a deterministic signed zip out.
//!
//! Determinism: entries are `manifest.json`, `manifest.json.sig`, then the files sorted by
//! path (byte order); every entry has the DOS epoch (1980-01-01 00:00:00) as its time, Unix
//! mode 0644, "made by Unix", no extra fields, deflate at level 6 (zlib-rs); the manifest is
//! canonical JSON; Ed25519 signatures are deterministic. The same inputs, signed with the
//! same key by the same gatelog build, give the same bytes.

use super::manifest::{FileEntry, MANIFEST_FILE, MANIFEST_SCHEMA, Manifest, SIGNATURE_FILE, check_path};
use crate::chain::ChainHead;
use crate::json::to_canonical_json;
use crate::sign::{NAMESPACE, SigningKey, sshsig};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipWriter};

/// Why a bundle cannot be built; names the file.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle path {path:?}: {reason}")]
    Path { path: String, reason: String },
    #[error("bundle path {path:?} is added twice")]
    Duplicate { path: String },
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} changed while the bundle was written")]
    Changed { path: PathBuf },
    #[error("cannot write the archive: {0}")]
    Zip(String),
    #[error("cannot encode the manifest: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, Clone)]
enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// Collects the files and parameters of one bundle.
#[derive(Debug, Clone)]
pub struct BundleBuilder {
    gatelog_version: String,
    parameters: BTreeMap<String, serde_json::Value>,
    chain_head: Option<ChainHead>,
    files: BTreeMap<String, Source>,
}

/// What was written: the manifest (as signed) and the archive's size.
#[derive(Debug, Clone)]
pub struct Written {
    pub manifest: Manifest,
    pub bytes: u64,
}

impl BundleBuilder {
    /// An empty bundle made by gatelog `gatelog_version` (the binary passes its own).
    pub fn new(gatelog_version: &str) -> Self {
        BundleBuilder {
            gatelog_version: gatelog_version.to_owned(),
            parameters: BTreeMap::new(),
            chain_head: None,
            files: BTreeMap::new(),
        }
    }

    /// Records a report parameter (period, seed, …) in the manifest.
    pub fn parameter(&mut self, name: &str, value: impl Into<serde_json::Value>) -> &mut Self {
        self.parameters.insert(name.to_owned(), value.into());
        self
    }

    /// The chain head at the end of the report's period.
    pub fn chain_head(&mut self, head: ChainHead) -> &mut Self {
        self.chain_head = Some(head);
        self
    }

    /// Adds a file from memory.
    pub fn add_bytes(&mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Result<&mut Self, BundleError> {
        self.add(path, Source::Bytes(bytes.into()))
    }

    /// Adds a file from disk (read when hashing and again, streamed, when writing).
    pub fn add_file(&mut self, path: &str, file: &Path) -> Result<&mut Self, BundleError> {
        self.add(path, Source::File(file.to_owned()))
    }

    fn add(&mut self, path: &str, source: Source) -> Result<&mut Self, BundleError> {
        check_path(path).map_err(|reason| BundleError::Path { path: path.to_owned(), reason })?;
        if self.files.contains_key(path) {
            return Err(BundleError::Duplicate { path: path.to_owned() });
        }
        self.files.insert(path.to_owned(), source);
        Ok(self)
    }

    /// The manifest these files give (reads every file once).
    pub fn manifest(&self) -> Result<Manifest, BundleError> {
        let mut files = Vec::with_capacity(self.files.len());
        for (path, source) in &self.files {
            let (sha256, size) = hash_source(source, &mut std::io::sink())?;
            files.push(FileEntry { path: path.clone(), sha256, size });
        }
        Ok(Manifest {
            schema: MANIFEST_SCHEMA.to_owned(),
            gatelog_version: self.gatelog_version.clone(),
            parameters: self.parameters.clone(),
            chain_head: self.chain_head.clone(),
            files,
        })
    }

    /// Writes the signed archive to `out`.
    pub fn write<W: Write + Seek>(&self, key: &SigningKey, out: W) -> Result<Written, BundleError> {
        let manifest = self.manifest()?;
        let manifest_bytes = to_canonical_json(&manifest)?;
        let signature = sshsig::sign(key, NAMESPACE, &manifest_bytes);
        let zip_err = |e: zip::result::ZipError| BundleError::Zip(e.to_string());
        let mut zip = ZipWriter::new(out);
        zip.start_file(MANIFEST_FILE, options(manifest_bytes.len() as u64)).map_err(zip_err)?;
        zip.write_all(&manifest_bytes).map_err(|e| BundleError::Zip(e.to_string()))?;
        zip.start_file(SIGNATURE_FILE, options(signature.len() as u64)).map_err(zip_err)?;
        zip.write_all(signature.as_bytes()).map_err(|e| BundleError::Zip(e.to_string()))?;
        for entry in &manifest.files {
            let source = &self.files[&entry.path];
            zip.start_file(entry.path.as_str(), options(entry.size)).map_err(zip_err)?;
            let (sha256, size) = hash_source(source, &mut zip)?;
            if sha256 != entry.sha256 || size != entry.size {
                let path = match source {
                    Source::File(p) => p.clone(),
                    Source::Bytes(_) => PathBuf::from(&entry.path),
                };
                return Err(BundleError::Changed { path });
            }
        }
        let mut out = zip.finish().map_err(zip_err)?;
        let bytes = out.stream_position().map_err(|e| BundleError::Zip(e.to_string()))?;
        Ok(Written { manifest, bytes })
    }

    /// The signed archive in memory.
    pub fn to_bytes(&self, key: &SigningKey) -> Result<Vec<u8>, BundleError> {
        let mut out = std::io::Cursor::new(Vec::new());
        self.write(key, &mut out)?;
        Ok(out.into_inner())
    }

    /// Writes the signed archive to `path` (beside it first, then renamed into place).
    pub fn write_file(&self, key: &SigningKey, path: &Path) -> Result<Written, BundleError> {
        let io = |what, source| BundleError::Io { what, path: path.to_owned(), source };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.partial"));
        let file = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
        let result = self.write(key, std::io::BufWriter::new(file)).and_then(|w| {
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| io("sync", e))?;
            std::fs::rename(&tmp, path).map_err(|e| io("rename into place", e))?;
            Ok(w)
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

fn options(size: u64) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644)
        .system(System::Unix)
        .large_file(size >= 0xFFFF_0000)
}

/// Streams `source` into `sink`, returning its SHA-256 (hex) and size.
fn hash_source(source: &Source, sink: &mut dyn Write) -> Result<(String, u64), BundleError> {
    match source {
        Source::Bytes(b) => {
            sink.write_all(b).map_err(|e| BundleError::Zip(e.to_string()))?;
            Ok((hex::encode(Sha256::digest(b)), b.len() as u64))
        }
        Source::File(path) => {
            let io = |what, source| BundleError::Io { what, path: path.clone(), source };
            let mut file = std::fs::File::open(path).map_err(|e| io("open", e))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut size = 0u64;
            loop {
                let n = file.read(&mut buf).map_err(|e| io("read", e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                sink.write_all(&buf[..n]).map_err(|e| BundleError::Zip(e.to_string()))?;
                size += n as u64;
            }
            Ok((hex::encode(hasher.finalize()), size))
        }
    }
}
