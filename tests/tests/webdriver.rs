//! The browser harness itself (`gatelog_e2e::webdriver`): a page with a console error, a
//! request that fails and a box wider than a phone must be seen as such, or the page tests'
//! "no console error, no failed request, no sideways scroll" could never fail.

use gatelog_e2e::webdriver::Browser;
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sees_console_errors_failed_requests_and_sideways_scroll() {
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-artifacts/harness");
    let browser = Browser::start(&artifacts).await;

    let clean = "data:text/html,<title>clean</title><p id=hello>hello</p>";
    browser.goto(clean).await;
    assert_eq!(browser.text("#hello").await, "hello");
    assert_eq!(browser.title().await, "clean");
    assert!(browser.console_errors().await.is_empty());
    let failed = browser.failed_requests().await;
    assert!(failed.is_empty(), "{failed:?}");

    // Port 9 (discard) on loopback: nothing listens there in a test environment.
    let broken = "data:text/html,<title>broken</title><img src='http://127.0.0.1:9/missing.png'>\
                  <script>console.error('boom')</script><div style='width:900px'>wide</div>";
    browser.goto(broken).await;
    browser.find("img").await;
    let errors = browser.console_errors().await;
    assert!(errors.iter().any(|e| e.contains("boom")), "{errors:?}");
    let failed = browser.failed_requests().await;
    assert!(failed.iter().any(|f| f.contains("127.0.0.1:9/missing.png")), "{failed:?}");

    browser.set_size(390, 844).await;
    assert!(browser.scrolls_horizontally().await);
    browser.goto(clean).await;
    assert!(!browser.scrolls_horizontally().await);
    let shot = browser.screenshot("clean-390").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 0);
    browser.quit().await;
}
