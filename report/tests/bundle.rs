//! Bundles: the same inputs give the same bytes, and every kind of tampering is found, named,
//! and classed (exit code); `ssh-keygen -Y verify`, the tool every OS ships, agrees.
#![allow(clippy::unwrap_used)]

use gatelog_report::bundle::{BundleBuilder, FailureClass, MANIFEST_FILE, SIGNATURE_FILE, Verdict, verify};
use gatelog_report::chain::ChainHead;
use gatelog_report::sign::{KeyFiles, PublicKey, SigningKey};
use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

fn key() -> SigningKey {
    SigningKey::from_seed([42; 32], "gatelog@test")
}

/// A bundle like a report's: HTML, Markdown, JSON and a CSV population, one file from disk.
fn builder(dir: &Path) -> BundleBuilder {
    let mut b = BundleBuilder::new("0.1.0");
    b.parameter("from", "2026-01-01T00:00:00Z").parameter("to", "2026-02-01T00:00:00Z").parameter("seed", "s1");
    b.chain_head(ChainHead { links: 12, last_batch_id: Some("b12".into()), hash: "ab".repeat(32) });
    let csv: String = (0..5000).map(|i| format!("e{i:05},alice@example.com,allow,{i}\n")).collect();
    let on_disk = dir.join("population.csv");
    std::fs::write(&on_disk, csv).unwrap();
    b.add_file("csv/cc6.1-population.csv", &on_disk).unwrap();
    b.add_bytes("report.html", "<!doctype html><title>r</title><p>evidence</p>".as_bytes()).unwrap();
    b.add_bytes("report.md", "# evidence\n".as_bytes()).unwrap();
    b.add_bytes("report.json", "{\"schema\":\"gatelog.report/1\"}\n".as_bytes()).unwrap();
    b
}

fn good_bundle() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    builder(dir.path()).to_bytes(&key()).unwrap()
}

fn check(bytes: &[u8], trusted: Option<&PublicKey>) -> Verdict {
    verify(Cursor::new(bytes), trusted)
}

/// The entries of a zip, in order, as (name, bytes).
fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut out = Vec::new();
            f.read_to_end(&mut out).unwrap();
            (f.name().unwrap().into_owned(), out)
        })
        .collect()
}

/// Re-zips entries as someone editing an unzipped bundle would.
fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Flips one byte in the middle of `name`'s data as stored in the archive.
fn flip_stored_byte(bytes: &[u8], name: &str) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let f = zip.by_name(name).unwrap();
    let start = f.data_start().unwrap() as usize;
    let at = start + f.compressed_size() as usize / 2;
    drop(f);
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

fn edit(name: &str, change: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut all = entries(&good_bundle());
    let e = all.iter_mut().find(|(n, _)| n == name).unwrap();
    change(&mut e.1);
    rezip(&all)
}

fn assert_fails(v: &Verdict, class: FailureClass, file: &str, words: &str) {
    assert_eq!(v.worst(), Some(class), "{v}");
    assert_eq!(v.exit_code(), class.exit_code(), "{v}");
    let f = v.failures.iter().find(|f| f.class == class).unwrap();
    assert_eq!(f.file, file, "{v}");
    assert!(f.message.contains(words), "expected {words:?} in: {v}");
    assert!(v.to_string().contains(file), "{v}");
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let a = good_bundle();
    let b = good_bundle();
    assert_eq!(a, b, "two builds differ");
    let v = check(&a, Some(&key().public_key()));
    assert!(v.ok(), "{v}");
    assert_eq!(v.exit_code(), 0);
    assert_eq!(v.files_checked, 4);
    // Entries: manifest and signature first, then the files in path order, all at 1980-01-01.
    let names: Vec<String> = entries(&a).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [MANIFEST_FILE, SIGNATURE_FILE, "csv/cc6.1-population.csv", "report.html", "report.json", "report.md"]
    );
    let mut zip = zip::ZipArchive::new(Cursor::new(&a)).unwrap();
    for i in 0..zip.len() {
        let f = zip.by_index(i).unwrap();
        assert_eq!(f.last_modified().unwrap(), zip::DateTime::default());
        assert_eq!(f.unix_mode().unwrap() & 0o777, 0o644);
    }
    // A different parameter is a different manifest, hence a different bundle.
    let dir = tempfile::tempdir().unwrap();
    let mut other = builder(dir.path());
    other.parameter("seed", "s2");
    assert_ne!(other.to_bytes(&key()).unwrap(), a);
}

#[test]
fn a_changed_report_file_is_named() {
    let trusted = key().public_key();
    let v = check(&edit("report.html", |b| b[20] ^= 0x20), Some(&trusted));
    assert_fails(&v, FailureClass::Content, "report.html", "SHA-256");
    let v = check(&flip_stored_byte(&good_bundle(), "csv/cc6.1-population.csv"), Some(&trusted));
    assert_fails(&v, FailureClass::Content, "csv/cc6.1-population.csv", "damaged");
    let v = check(&edit("report.md", |b| b.push(b'\n')), Some(&trusted));
    assert_fails(&v, FailureClass::Content, "report.md", "manifest says");
}

#[test]
fn a_changed_manifest_or_signature_fails_the_signature() {
    let trusted = key().public_key();
    let v = check(&edit(MANIFEST_FILE, |b| b[40] ^= 0x01), Some(&trusted));
    assert_fails(&v, FailureClass::Signature, SIGNATURE_FILE, "not what was signed");
    let v = check(&flip_stored_byte(&good_bundle(), MANIFEST_FILE), Some(&trusted));
    assert_fails(&v, FailureClass::Signature, MANIFEST_FILE, "damaged");
    // A byte of the signature itself: inside the base64 (the Ed25519 signature's bytes) ...
    let v = check(
        &edit(SIGNATURE_FILE, |b| {
            let at = b.len() - 40;
            b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        }),
        Some(&trusted),
    );
    assert_eq!(v.worst(), Some(FailureClass::Signature), "{v}");
    assert!(v.failures.iter().all(|f| f.file == SIGNATURE_FILE), "{v}");
    // ... and as stored in the archive.
    let v = check(&flip_stored_byte(&good_bundle(), SIGNATURE_FILE), Some(&trusted));
    assert_fails(&v, FailureClass::Signature, SIGNATURE_FILE, "damaged");
}

#[test]
fn added_removed_and_renamed_files_are_named() {
    let trusted = key().public_key();
    let mut all = entries(&good_bundle());
    all.push(("extra.csv".into(), b"a,b\n".to_vec()));
    let v = check(&rezip(&all), Some(&trusted));
    assert_fails(&v, FailureClass::FileSet, "extra.csv", "added");

    let mut all = entries(&good_bundle());
    all.retain(|(n, _)| n != "report.json");
    let v = check(&rezip(&all), Some(&trusted));
    assert_fails(&v, FailureClass::FileSet, "report.json", "removed");

    let mut all = entries(&good_bundle());
    all.iter_mut().find(|(n, _)| n == "report.md").unwrap().0 = "summary.md".into();
    let v = check(&rezip(&all), Some(&trusted));
    assert_eq!(v.exit_code(), FailureClass::FileSet.exit_code(), "{v}");
    let text = v.to_string();
    assert!(text.contains("report.md") && text.contains("renamed to \"summary.md\""), "{text}");

    // A duplicate entry (a second copy shadowing the first) is refused too.
    let mut all = entries(&good_bundle());
    all.push(("report.md".into(), b"# other\n".to_vec()));
    let v = check(&rezip_allowing_duplicates(&all), Some(&trusted));
    assert_eq!(v.worst(), Some(FailureClass::FileSet), "{v}");
}

fn rezip_allowing_duplicates(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    // The zip crate refuses duplicate names; write the second copy under a same-length
    // placeholder name and patch the name bytes afterwards.
    let (last, rest) = entries.split_last().unwrap();
    let placeholder: String = "#".repeat(last.0.len());
    let mut all = rest.to_vec();
    all.push((placeholder.clone(), last.1.clone()));
    let mut bytes = rezip(&all);
    let needle = placeholder.as_bytes();
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            bytes[i..i + needle.len()].copy_from_slice(last.0.as_bytes());
            i += needle.len();
        } else {
            i += 1;
        }
    }
    bytes
}

#[test]
fn a_wrong_key_a_missing_key_and_a_truncated_archive() {
    let good = good_bundle();
    let stranger = SigningKey::from_seed([9; 32], "").public_key();
    let v = check(&good, Some(&stranger));
    assert_fails(&v, FailureClass::Signature, SIGNATURE_FILE, "not by the trusted key");

    let v = check(&good, None);
    assert_fails(&v, FailureClass::UntrustedKey, SIGNATURE_FILE, "--public-key");
    assert_eq!(v.signer.as_deref(), Some(key().public_key().fingerprint().as_str()));

    for cut in [good.len() - 1, good.len() / 2, 10] {
        let v = check(&good[..cut], Some(&key().public_key()));
        assert_fails(&v, FailureClass::Archive, "(bundle)", "truncated");
    }
    let v = check(b"not a zip at all", Some(&key().public_key()));
    assert_eq!(v.exit_code(), 3, "{v}");

    // A zip without the manifest is not a bundle.
    let mut all = entries(&good);
    all.retain(|(n, _)| n != MANIFEST_FILE);
    let v = check(&rezip(&all), Some(&key().public_key()));
    assert_fails(&v, FailureClass::Archive, MANIFEST_FILE, "missing");
}

#[test]
fn a_bundle_re_signed_with_another_key_is_refused() {
    // Someone rebuilds the bundle with changed content and signs it with their own key: it is
    // internally consistent, so only the trusted key tells it apart.
    let dir = tempfile::tempdir().unwrap();
    let mut forged = builder(dir.path());
    forged.parameter("to", "2026-03-01T00:00:00Z");
    let bytes = forged.to_bytes(&SigningKey::from_seed([1; 32], "mallory")).unwrap();
    let v = check(&bytes, Some(&key().public_key()));
    assert_fails(&v, FailureClass::Signature, SIGNATURE_FILE, "not by the trusted key");
}

/// `ssh-keygen -Y verify` over an unzipped bundle, as the README tells auditors to run it.
fn ssh_keygen_verify(dir: &Path, allowed_signers: &Path) -> (bool, String) {
    let manifest = std::fs::File::open(dir.join(MANIFEST_FILE)).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(allowed_signers)
        .args(["-I", "gatelog", "-n", "gatelog-bundle", "-s"])
        .arg(dir.join(SIGNATURE_FILE))
        .stdin(Stdio::from(manifest))
        .output()
        .expect("ssh-keygen is not installed: apt-get install openssh-client (./x deps does)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The check README.md's "For auditors" section gives, run in an unzipped bundle.
fn readme_file_check(dir: &Path) -> String {
    const SCRIPT: &str = r#"import json,hashlib,os
m=json.load(open("manifest.json")); listed={f["path"] for f in m["files"]}
bad=[f["path"] for f in m["files"] if not os.path.exists(f["path"]) or hashlib.sha256(open(f["path"],"rb").read()).hexdigest()!=f["sha256"]]
extra=[os.path.relpath(os.path.join(d,n)) for d,_,ns in os.walk(".") for n in ns if os.path.relpath(os.path.join(d,n)) not in listed|{"manifest.json","manifest.json.sig","allowed_signers"}]
print("changed or missing:",bad or "none"); print("not in the manifest:",extra or "none")"#;
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    assert!(readme.contains(SCRIPT), "README.md's file check differs from the one tested here");
    let out = Command::new("python3").arg("-c").arg(SCRIPT).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn unzip_to(bytes: &[u8], dir: &Path) {
    for (name, data) in entries(bytes) {
        let path = dir.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

#[test]
fn ssh_keygen_verifies_the_signature_and_rejects_a_tampered_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let files = KeyFiles::in_dir(&tmp.path().join("keys"));
    let key = SigningKey::generate("gatelog@test").unwrap();
    files.create(&key, false).unwrap();

    // ssh-keygen reads gatelog's private key file and derives the same public key.
    let out = Command::new("ssh-keygen").arg("-y").arg("-f").arg(&files.private).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let derived = String::from_utf8(out.stdout).unwrap();
    assert_eq!(PublicKey::parse(&derived, "ssh-keygen -y").unwrap(), key.public_key());

    let bundle = builder(tmp.path()).to_bytes(&key).unwrap();
    let good = tmp.path().join("good");
    unzip_to(&bundle, &good);
    let (ok, text) = ssh_keygen_verify(&good, &files.allowed_signers);
    assert!(ok, "ssh-keygen rejected a good bundle: {text}");
    assert!(text.contains("Good \"gatelog-bundle\" signature for gatelog"), "{text}");
    // The README's file check (python3's standard library only) agrees.
    assert_eq!(readme_file_check(&good), "changed or missing: none\nnot in the manifest: none\n");

    let bad = tmp.path().join("bad");
    unzip_to(&bundle, &bad);
    let mut manifest = std::fs::read(bad.join(MANIFEST_FILE)).unwrap();
    let at = manifest.iter().position(|b| *b == b'2').unwrap();
    manifest[at] = b'3';
    std::fs::write(bad.join(MANIFEST_FILE), manifest).unwrap();
    let (ok, text) = ssh_keygen_verify(&bad, &files.allowed_signers);
    assert!(!ok, "ssh-keygen accepted a tampered manifest: {text}");
    std::fs::write(good.join("report.md"), "# edited\n").unwrap();
    std::fs::write(good.join("csv/new.csv"), "a\n").unwrap();
    assert_eq!(readme_file_check(&good), "changed or missing: ['report.md']\nnot in the manifest: ['csv/new.csv']\n");

    // Signed by another key: ssh-keygen refuses it against the operator's allowed_signers.
    let other = builder(tmp.path()).to_bytes(&SigningKey::from_seed([5; 32], "")).unwrap();
    let forged = tmp.path().join("forged");
    unzip_to(&other, &forged);
    let (ok, text) = ssh_keygen_verify(&forged, &files.allowed_signers);
    assert!(!ok, "ssh-keygen accepted another key's signature: {text}");
}
