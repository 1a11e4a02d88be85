//! `gatelog keys init` and `gatelog verify` as an operator and an auditor run them: the key
//! file's mode, no silent overwrite, and one exit code per class of tampering.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_e2e::gatelog;
use gatelog_report::bundle::BundleBuilder;
use gatelog_report::sign::SigningKey;
use std::io::{Cursor, Read, Write};
use std::path::Path;

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn verify(bundle: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", bundle.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = gatelog(&args);
    (out.status.code().unwrap_or(-1), text(&out))
}

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

fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn keys_init_writes_a_private_key_only_its_owner_reads_and_never_overwrites_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = gatelog(&["keys", "init", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let key = data.join("keys/signing.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let public = std::fs::read_to_string(data.join("keys/signing.pub")).unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.contains(public.trim()), "the printed public key is not signing.pub:\n{printed}");
    let before = std::fs::read(&key).unwrap();

    let again = gatelog(&["keys", "init", "--data-dir", data.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).contains("--force"), "{}", text(&again));
    assert_eq!(std::fs::read(&key).unwrap(), before, "the key was replaced without --force");

    let forced = gatelog(&["keys", "init", "--data-dir", data.to_str().unwrap(), "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert_ne!(std::fs::read(&key).unwrap(), before);

    // --dir puts the key elsewhere and says how to configure it; `keys public` reads the config.
    let other = dir.path().join("elsewhere");
    let out = gatelog(&["keys", "init", "--data-dir", data.to_str().unwrap(), "--dir", other.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("signing_key"), "{}", text(&out));
    let config = dir.path().join("gatelog.toml");
    std::fs::write(&config, format!("[report]\nsigning_key = {:?}\n", other.join("signing.key"))).unwrap();
    let out = gatelog(&["keys", "public", "--config", config.to_str().unwrap()]);
    let public = std::fs::read_to_string(other.join("signing.pub")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), public.trim());
}

#[test]
fn verify_names_each_tampering_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = gatelog(&["keys", "init", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let key = SigningKey::load(&data.join("keys/signing.key")).unwrap();
    let public = data.join("keys/signing.pub");
    let pk = ["--public-key", public.to_str().unwrap()];

    let mut builder = BundleBuilder::new("0.1.0");
    builder.parameter("from", "2026-01-01T00:00:00Z").parameter("to", "2026-01-02T00:00:00Z");
    builder.add_bytes("report.html", b"<!doctype html><title>t</title>".to_vec()).unwrap();
    builder.add_bytes("populations/cc6.1.csv", b"event_id,principal\ne1,alice\n".to_vec()).unwrap();
    let good = builder.to_bytes(&key).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    let bundle = write("good.zip", &good);
    let (code, out) = verify(&bundle, &pk);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK"), "{out}");
    // The key given inline, and the operator's own key found through the data dir.
    let inline = std::fs::read_to_string(&public).unwrap();
    assert_eq!(verify(&bundle, &["--public-key", inline.trim()]).0, 0);
    assert_eq!(verify(&bundle, &["--data-dir", data.to_str().unwrap()]).0, 0);
    // No key at all: intact, but the signer is not established.
    let (code, out) = verify(&bundle, &[]);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("--public-key"), "{out}");

    let edit = |name: &str, change: &dyn Fn(&mut Vec<u8>)| {
        let mut all = entries(&good);
        change(&mut all.iter_mut().find(|(n, _)| n == name).unwrap().1);
        rezip(&all)
    };
    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        ("report byte", edit("populations/cc6.1.csv", &|b| b[10] ^= 1), 5, "populations/cc6.1.csv"),
        ("manifest byte", edit("manifest.json", &|b| b[20] ^= 1), 4, "manifest.json.sig"),
        (
            "signature byte",
            edit("manifest.json.sig", &|b| {
                let at = b.len() - 40;
                b[at] = if b[at] == b'Q' { b'R' } else { b'Q' };
            }),
            4,
            "manifest.json.sig",
        ),
        (
            "added",
            {
                let mut all = entries(&good);
                all.push(("notes.txt".into(), b"x".to_vec()));
                rezip(&all)
            },
            6,
            "notes.txt",
        ),
        (
            "removed",
            {
                let mut all = entries(&good);
                all.retain(|(n, _)| n != "report.html");
                rezip(&all)
            },
            6,
            "report.html",
        ),
        (
            "renamed",
            {
                let mut all = entries(&good);
                all.iter_mut().find(|(n, _)| n == "report.html").unwrap().0 = "index.html".into();
                rezip(&all)
            },
            6,
            "index.html",
        ),
        ("truncated", good[..good.len() - 30].to_vec(), 3, "truncated"),
    ];
    for (what, bytes, expected, named) in cases {
        let (code, out) = verify(&write(&format!("{}.zip", what.replace(' ', "-")), &bytes), &pk);
        assert_eq!(code, expected, "{what}: {out}");
        assert!(out.contains(named), "{what}: the verdict does not name {named}: {out}");
    }

    let stranger = SigningKey::from_seed([8; 32], "").public_key().to_openssh("");
    let (code, out) = verify(&bundle, &["--public-key", &stranger]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("not by the trusted key"), "{out}");

    let out = gatelog(&["verify", bundle.to_str().unwrap(), "--json", "--public-key", &stranger]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["exit_code"], 4);
    assert_eq!(json["failures"][0]["class"], "signature");

    let (code, out) = verify(&dir.path().join("absent.zip"), &pk);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("absent.zip"), "{out}");
}
