//! Driving Debian's headless Chromium from a test: a small W3C WebDriver client over
//! `reqwest`, talking to Debian's `chromedriver` (package `chromium-driver`, the same build as
//! `chromium`), which [`Browser::start`] launches on a free loopback port and stops on
//! [`Browser::quit`] or drop.
//!
//! Beyond clicking and typing, a page test needs what the page did behind the scenes:
//! [`Browser::console_errors`] (the browser log's `SEVERE` entries) and
//! [`Browser::failed_requests`] (the performance log's network events: a request that failed
//! or answered ≥ 400). Both come from chromedriver's log endpoint, which is why this is a
//! dozen JSON calls of our own rather than a WebDriver crate: the ones checked here
//! (fantoccini) do not expose that endpoint, and `reqwest` is already a test dependency.
//!
//! Every wait is bounded ([`WAIT`]); a missing element or a driver that does not start is a
//! panic naming what was awaited, with a screenshot written first.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The longest any single wait (driver start, an element, a download) may take.
pub const WAIT: Duration = Duration::from_secs(20);
/// W3C's key for an element reference in a JSON answer.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One headless Chromium session. Dropping it stops chromedriver (and with it the browser).
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    artifacts: PathBuf,
    downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
}

/// A found element, by its WebDriver reference.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a 1280×900 window; page
    /// screenshots go to `artifacts` (created), downloads to a temporary directory
    /// ([`Browser::download_dir`]).
    pub async fn start(artifacts: &Path) -> Browser {
        std::fs::create_dir_all(artifacts).expect("create the artifacts directory");
        // Its own process group, so stopping it stops the browser it starts too (chromium
        // outlives a killed chromedriver otherwise).
        let mut driver = Command::new(chromedriver())
            .process_group(0)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (apt-get install chromium-driver; ./x deps installs it)");
        let port = read_port(&mut driver);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().expect("http client");
        let downloads = tempfile::tempdir().expect("download dir");
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-default-apps",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                },
                "perfLoggingPrefs": {"enableNetwork": true, "enablePage": false},
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        }}});
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            http,
            session: String::new(),
            artifacts: artifacts.to_path_buf(),
            downloads,
            _profile: profile,
        };
        let answer = browser.call(reqwest::Method::POST, &format!("{base}/session"), Some(caps)).await;
        let id = answer["sessionId"].as_str().expect("a session id").to_owned();
        browser.session = format!("{base}/session/{id}");
        browser
    }

    /// Where the browser saves downloads.
    pub fn download_dir(&self) -> &Path {
        self.downloads.path()
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The address the browser shows now.
    pub async fn current_url(&self) -> String {
        self.get("/url").await.as_str().unwrap_or_default().to_owned()
    }

    /// The page's title.
    pub async fn title(&self) -> String {
        self.get("/title").await.as_str().unwrap_or_default().to_owned()
    }

    /// The first element matching `css`, waiting up to [`WAIT`] for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        match self.wait_for(css).await {
            Some(e) => e,
            None => {
                let shot = self.screenshot("missing-element").await;
                panic!(
                    "no element matches {css:?} on {} after {WAIT:?} (screenshot {})",
                    self.current_url().await,
                    shot.display()
                )
            }
        }
    }

    /// The first element matching `css` if one appears within [`WAIT`].
    pub async fn wait_for(&self, css: &str) -> Option<Element> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.find_now(css).await {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every element matching `css` now (no wait).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.post("/elements", json!({ "using": "css selector", "value": css })).await;
        found.as_array().map(|a| a.iter().filter_map(element_ref).collect()).unwrap_or_default()
    }

    async fn find_now(&self, css: &str) -> Option<Element> {
        self.find_all(css).await.into_iter().next()
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{}/click", e.0), json!({})).await;
    }

    /// Clears the first element matching `css` and types `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{}/clear", e.0), json!({})).await;
        self.post(&format!("/element/{}/value", e.0), json!({ "text": text })).await;
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.element_text(&e).await
    }

    /// The rendered text of `element`.
    pub async fn element_text(&self, element: &Element) -> String {
        self.get(&format!("/element/{}/text", element.0)).await.as_str().unwrap_or_default().to_owned()
    }

    /// An attribute of `element` (`None` when it has none).
    pub async fn attribute(&self, element: &Element, name: &str) -> Option<String> {
        self.get(&format!("/element/{}/attribute/{name}", element.0)).await.as_str().map(str::to_owned)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its
    /// result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args })).await
    }

    /// Resizes the window (the viewport is a little smaller on headful builds; headless
    /// Chromium gives the page the whole size).
    pub async fn set_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height })).await;
    }

    /// Whether the page scrolls sideways: its document is wider than the viewport.
    pub async fn scrolls_horizontally(&self) -> bool {
        let v =
            self.execute("const d = document.documentElement; return [d.scrollWidth, d.clientWidth];", vec![]).await;
        v[0].as_u64().unwrap_or(0) > v[1].as_u64().unwrap_or(0)
    }

    /// Writes a PNG of the viewport to `ARTIFACTS/NAME.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let png = self.get("/screenshot").await;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap_or_default();
        let path = self.artifacts.join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("write a screenshot");
        path
    }

    /// The browser log's errors since the last call (console errors, CSP violations, failed
    /// loads as the console reports them).
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self.post("/se/log", json!({ "type": "browser" })).await;
        entries(&log)
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// The page's requests since the last call that failed or were answered with a status
    /// ≥ 400, as `URL (why)`, from the performance log's network events.
    pub async fn failed_requests(&self) -> Vec<String> {
        let log = self.post("/se/log", json!({ "type": "performance" })).await;
        let mut urls = std::collections::HashMap::new();
        let mut failed = Vec::new();
        for entry in entries(&log) {
            let Ok(message) = serde_json::from_str::<Value>(entry["message"].as_str().unwrap_or("{}")) else {
                continue;
            };
            let (method, params) = (&message["message"]["method"], &message["message"]["params"]);
            let id = params["requestId"].as_str().unwrap_or_default().to_owned();
            match method.as_str().unwrap_or_default() {
                "Network.requestWillBeSent" => {
                    urls.insert(id, params["request"]["url"].as_str().unwrap_or_default().to_owned());
                }
                "Network.responseReceived" => {
                    let status = params["response"]["status"].as_u64().unwrap_or(0);
                    if status >= 400 {
                        failed.push(format!("{} ({status})", params["response"]["url"].as_str().unwrap_or_default()));
                    }
                }
                // A failure whose request the page's log never showed being sent is the
                // browser's own background traffic (it has no network here), not the page's.
                "Network.loadingFailed" => {
                    if let Some(url) = urls.get(&id) {
                        failed.push(format!("{url} ({})", params["errorText"].as_str().unwrap_or("failed")));
                    }
                }
                _ => {}
            }
        }
        failed
    }

    /// Waits up to [`WAIT`] for a finished download whose name ends with `suffix` and returns
    /// its path.
    pub async fn downloaded(&self, suffix: &str) -> PathBuf {
        let deadline = Instant::now() + WAIT;
        loop {
            let done = std::fs::read_dir(self.download_dir())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(suffix));
            if let Some(path) = done {
                return path;
            }
            assert!(Instant::now() < deadline, "no download ending {suffix:?} in {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ends the session and stops chromedriver.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
        // Drop stops the process group.
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("{}{path}", self.session), None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, &format!("{}{path}", self.session), Some(body)).await
    }

    /// One WebDriver command: its `value`, or a panic with the driver's error.
    async fn call(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method.clone(), url);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("webdriver {method} {url}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(status.is_success(), "webdriver {method} {url}: {status}: {text}");
        answer["value"].clone()
    }
}

impl Drop for Browser {
    /// Kills chromedriver's whole process group (the driver, the browser and its helpers),
    /// also when a test panics before [`Browser::quit`].
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn entries(log: &Value) -> impl Iterator<Item = &Value> {
    log.as_array().into_iter().flatten()
}

fn element_ref(v: &Value) -> Option<Element> {
    v[ELEMENT_KEY].as_str().map(|s| Element(s.to_owned()))
}

/// Reads chromedriver's "started successfully on port N" line (bounded by [`WAIT`]: the
/// reader thread gives up when the driver exits or the deadline passes).
fn read_port(driver: &mut Child) -> u16 {
    let stdout = driver.stdout.take().expect("chromedriver stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(port) = line
                .split("started successfully on port ")
                .nth(1)
                .and_then(|p| p.trim_end_matches('.').trim().parse::<u16>().ok())
            {
                let _ = tx.send(port);
            }
        }
    });
    rx.recv_timeout(WAIT).unwrap_or_else(|_| {
        let group = format!("-{}", driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = driver.kill();
        panic!("chromedriver did not say which port it listens on within {WAIT:?}")
    })
}

fn chromedriver() -> String {
    std::env::var("GATELOG_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into())
}

fn chromium() -> String {
    std::env::var("GATELOG_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}
