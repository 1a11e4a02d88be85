//! Test support (feature `testing`): a real SMTP server for this and other crates' tests,
//! `python -m aiosmtpd` on a loopback port storing what it receives in a Maildir, started
//! and stopped by the test (killed on drop), and readers for what it received.
//! The Python is `GATELOG_SMTPD_PYTHON`, else the workspace's `.venv/bin/python` (aiosmtpd
//! is in `./x`'s test dependencies), else `python3`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support: failing loudly is the point

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("GATELOG_SMTPD_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One aiosmtpd process.
#[derive(Debug)]
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: Option<Child>,
}

impl SmtpServer {
    /// Starts a server on `port` storing into `maildir`, and waits (bounded) until it answers.
    pub async fn start(port: u16, maildir: &Path) -> SmtpServer {
        Self::start_with(port, maildir, &[]).await
    }

    /// [`SmtpServer::start`] with more of aiosmtpd's options, e.g. `--tlscert F --tlskey K`
    /// (STARTTLS) or `--smtpscert F --smtpskey K` (implicit TLS).
    pub async fn start_with(port: u16, maildir: &Path, options: &[&std::ffi::OsStr]) -> SmtpServer {
        if let Some(parent) = maildir.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(options)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python -m aiosmtpd starts (GATELOG_SMTPD_PYTHON, .venv/bin/python or python3 with aiosmtpd)");
        let server = SmtpServer { port, maildir: maildir.to_owned(), child: Some(child) };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..200 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("aiosmtpd did not listen on 127.0.0.1:{port} within 10 s");
    }

    /// Stops the server (SIGKILL; what it accepted is already in the Maildir).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every message received so far, as text, oldest file first.
    pub fn messages(&self) -> Vec<String> {
        messages(&self.maildir)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private CA and a server certificate it signed for `127.0.0.1` and `localhost`, made
/// with the `openssl` command in `dir`: `(ca.pem, server.pem, server.key)`.
pub fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=gatelog test CA"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
    run(&csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

/// Every message in `maildir` (as aiosmtpd's Mailbox handler writes it), oldest file first.
pub fn messages(maildir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(maildir.join("new"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort_by_key(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok());
    files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect()
}

/// The value of header `name` in a raw message (first occurrence, unfolded).
pub fn header(message: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut lines = message.lines().take_while(|l| !l.is_empty()).peekable();
    while let Some(line) = lines.next() {
        if line.to_ascii_lowercase().starts_with(&prefix) {
            let mut value = line[prefix.len()..].trim().to_owned();
            while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                value.push(' ');
                value.push_str(next.trim());
                lines.next();
            }
            return Some(value);
        }
    }
    None
}

/// The decoded text and HTML parts of a raw message (Python's `email` package reads it, as
/// a mail client would: transfer encodings undone, charsets applied).
pub fn parts(message: &str) -> (String, String) {
    use std::io::Write as _;
    let script = "import email, json, sys\n\
        m = email.message_from_bytes(sys.stdin.buffer.read())\n\
        out = {}\n\
        for p in m.walk():\n\
        \x20   if p.get_content_type() in ('text/plain', 'text/html'):\n\
        \x20       out[p.get_content_type()] = p.get_payload(decode=True).decode(p.get_content_charset() or 'utf-8')\n\
        print(json.dumps([out.get('text/plain', ''), out.get('text/html', '')]))\n";
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs");
    child.stdin.take().unwrap().write_all(message.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python could not parse the message:\n{message}");
    let (text, html): (String, String) = serde_json::from_slice(&out.stdout).unwrap();
    (text, html)
}

/// Whether a raw message has a text and an HTML part in `multipart/alternative`.
pub fn has_both_parts(message: &str) -> bool {
    message.contains("multipart/alternative")
        && message.contains("Content-Type: text/plain; charset=utf-8")
        && message.contains("Content-Type: text/html; charset=utf-8")
}
