//! `gatelog review import` end to end against a real ClickHouse 18.16: a completed review
//! sheet is recorded in `access_reviews` with a summary; the same sheet imported again stores
//! nothing more; an incomplete sheet is refused naming line and column, and stores nothing.

use gatelog_e2e::{count, describe, gatelog};
use gatelog_store::testing::TestClickHouse;

const SHEET: &str = "principal,role,events,last_used,exercised,decision,rationale,reviewer,reviewed_at\n\
    alice@example.com,admin,12,2025-03-03T10:00:00.000Z,true,keep,,carol@example.com,2025-03-05\n\
    bob@example.com,finance,3,2025-03-03T11:00:00.000Z,false,remove,never used,carol@example.com,2025-03-05\n\
    dave@example.com,analyst,40,2025-03-03T12:00:00.000Z,true,keep,,erin@example.com,2025-03-06T09:30:00Z\n";

#[tokio::test]
async fn a_completed_sheet_is_recorded_once_and_an_incomplete_one_is_refused() {
    let mut ch = TestClickHouse::start().await.expect("clickhouse 18.16");
    let url = ch.url();
    let db = ch.database().to_owned();
    let store = ["--clickhouse-url", url.as_str(), "--clickhouse-database", db.as_str()];
    let dir = tempfile::tempdir().unwrap();

    // Incomplete: an undecided row and a removal without rationale.
    let bad = dir.path().join("bad.csv");
    let text = SHEET.replacen(",keep,,carol", ",,,carol", 1).replacen("remove,never used,", "remove,,", 1);
    std::fs::write(&bad, text).unwrap();
    let out = gatelog(&[&["review", "import", bad.to_str().unwrap()], &store[..]].concat());
    assert!(!out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2, column decision") && err.contains("line 3, column rationale"), "{}", describe(&out));

    let good = dir.path().join("sheet.csv");
    std::fs::write(&good, SHEET).unwrap();
    let out = gatelog(&[&["review", "import", good.to_str().unwrap()], &store[..]].concat());
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(3 rows)") && text.contains("keep: 2, remove: 1"), "{}", describe(&out));
    assert!(text.contains("reviewers: carol@example.com, erin@example.com"), "{}", describe(&out));
    let rows = format!("SELECT count() FROM {db}.access_reviews");
    assert_eq!(count(&url, &rows), 3);

    let out = gatelog(&[&["review", "import", good.to_str().unwrap()], &store[..]].concat());
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already recorded"), "{}", describe(&out));
    assert_eq!(count(&url, &rows), 3, "the same sheet twice is stored once");
    let removed =
        format!("SELECT count() FROM {db}.access_reviews WHERE decision = 'remove' AND rationale = 'never used'");
    assert_eq!(count(&url, &removed), 1);
    ch.stop().await.unwrap();
}
