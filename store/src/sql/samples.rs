//! RowBinary payloads exactly as the writer encodes them, with a check query per table, so
//! the encoder can be verified against servers the store cannot reach (chdb's 26.9).

use super::SchemaOptions;
use crate::profile::SchemaProfile;
use crate::rowbinary::{BatchRow, RowEncoder};
use crate::schema::{BATCH_ROWS, CHAIN_CHECKPOINTS, DEAD_LETTERS, DECISIONS, INGEST_BATCHES, RAW_RECORDS, TableDef};
use gatelog_model::{AccessDecision, DeadLetter, Decision, PrincipalType, RawRecord, Source, UnixMillis};

/// One table's worth of encoded rows plus a query whose CSV output must equal `expect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplePayload {
    pub database: String,
    pub table: &'static str,
    /// The column list the store's `INSERT … FORMAT RowBinary` names, in order.
    pub columns: Vec<String>,
    pub rowbinary: Vec<u8>,
    /// `SELECT …` whose CSV output (no header) must be `expect`.
    pub check: String,
    pub expect: String,
}

const BATCH: &str = "sample-batch";
const COPIES: &str = "sample-copies";
const T: i64 = 1_740_990_713_712;

fn csv(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn payload(
    def: &TableDef,
    profile: SchemaProfile,
    opts: &SchemaOptions,
    enc: &mut RowEncoder,
    check: String,
    expect: String,
) -> SamplePayload {
    SamplePayload {
        database: opts.database.clone(),
        table: def.name,
        columns: def.insert_columns(profile),
        rowbinary: enc.take().to_vec(),
        check,
        expect,
    }
}

/// One sample row per data table, encoded for `profile`.
pub fn sample_payloads(profile: SchemaProfile, opts: &SchemaOptions) -> Vec<SamplePayload> {
    let db = &opts.database;
    let mut enc = RowEncoder::new(profile, 4096);
    let mut out = Vec::new();

    let mut d = AccessDecision::new("ev-sample".into(), UnixMillis(T), "proxy", Source::Proxy);
    d.received_at = UnixMillis(T + 1500);
    d.decision = Decision::Deny;
    d.principal = "alice@example.com".into();
    d.principal_type = PrincipalType::User;
    d.roles = vec!["analyst".into(), "admin".into()];
    d.asn = 3320;
    d.status = 403;
    d.rows_read = u64::MAX;
    d.tenant = "acme".into();
    d.spool_seq = 42;
    d.user_agent = "curl/8 ünïcödé".into();
    enc.decision(&d, BATCH);
    out.push(payload(
        &DECISIONS,
        profile,
        opts,
        &mut enc,
        format!(
            "SELECT event_id, time_ms, received_at_ms, decision, length(roles), roles[2], asn, status, rows_read, tenant, spool_seq, user_agent, principal_type \
             FROM {db}.decisions WHERE batch_id = '{BATCH}'"
        ),
        format!(
            "\"ev-sample\",{T},{},\"deny\",2,\"admin\",3320,403,{},\"acme\",42,{},\"user\"",
            T + 1500,
            u64::MAX,
            csv(&d.user_agent)
        ),
    ));

    let line = r#"{"RayID":"8f2c1a9b3d4e5f60","ClientRequestURI":"/a?b=\"c\""}"#;
    let raw = RawRecord::new("ev-sample".into(), "http_requests", UnixMillis(T + 1500), UnixMillis(T), line);
    enc.raw_record(&raw, BATCH);
    out.push(payload(
        &RAW_RECORDS,
        profile,
        opts,
        &mut enc,
        format!(
            "SELECT event_id, time_ms, received_at_ms, line, sha256 FROM {db}.raw_records WHERE batch_id = '{BATCH}'"
        ),
        format!("\"ev-sample\",{T},{},{},{}", T + 1500, csv(line), csv(&raw.sha256)),
    ));

    let dl = DeadLetter {
        dataset: "http_requests".into(),
        received_at: UnixMillis(T + 1500),
        origin: "/v1/logpush/http_requests".into(),
        line_no: 7,
        line: "not json".into(),
        sha256: gatelog_model::sha256_hex(b"not json"),
        error: "expected value".into(),
    };
    enc.dead_letter(&dl, BATCH);
    out.push(payload(
        &DEAD_LETTERS,
        profile,
        opts,
        &mut enc,
        format!("SELECT line_no, line, error, received_at_ms FROM {db}.dead_letters WHERE batch_id = '{BATCH}'"),
        format!("7,\"not json\",\"expected value\",{}", T + 1500),
    ));

    enc.batch(&BatchRow {
        batch_id: BATCH,
        dataset: "http_requests",
        origin: "/v1/logpush/http_requests",
        received_at: UnixMillis(T + 1500),
        lines: 3,
        decisions: 1,
        raw_records: 1,
        dead_letters: 1,
        probes: 0,
        min_time: UnixMillis(T),
        max_time: UnixMillis(T + 1),
        bytes: 99,
        sha256: "abc",
        spool_seq: 17,
        chain_seq: 5,
        chain_prev: "p",
        chain_hash: "h",
        rows_sha256: "r",
    });
    out.push(payload(
        &INGEST_BATCHES,
        profile,
        opts,
        &mut enc,
        format!(
            "SELECT lines, decisions, raw_records, dead_letters, min_time_ms, max_time_ms, bytes, sha256, written_at > toDateTime('2020-01-01 00:00:00'), spool_seq, chain_seq, chain_prev, chain_hash, rows_sha256 \
             FROM {db}.ingest_batches WHERE batch_id = '{BATCH}'"
        ),
        format!("3,1,1,1,{T},{},99,\"abc\",1,17,5,\"p\",\"h\",\"r\"", T + 1),
    ));

    // The row ledger (`FixedString(16)` hashes) and a checkpoint.
    enc.ledger(BATCH, UnixMillis(T + 1500), "default", "ev-sample", b"0123456789abcdef");
    out.push(payload(
        &BATCH_ROWS,
        profile,
        opts,
        &mut enc,
        format!("SELECT received_at_ms, tenant, event_id, row_hash FROM {db}.batch_rows WHERE batch_id = '{BATCH}'"),
        format!("{},\"default\",\"ev-sample\",\"0123456789abcdef\"", T + 1500),
    ));
    let head = gatelog_model::chain::ChainHead { links: 3, last_batch_id: Some(BATCH.into()), hash: "h".into() };
    enc.checkpoint(&crate::chain::Checkpoint { at_ms: T, head, signer: "SHA256:x".into(), signature: "sig".into() });
    out.push(payload(
        &CHAIN_CHECKPOINTS,
        profile,
        opts,
        &mut enc,
        format!(
            "SELECT at_ms, links, last_batch_id, hash, signer, signature FROM {db}.chain_checkpoints WHERE links = 3"
        ),
        format!("{T},3,\"{BATCH}\",\"h\",\"SHA256:x\",\"sig\""),
    ));

    // Copies of one event whose times differ: by 1 ms across midnight and a month boundary
    // (two partitions), and by a second within a day. `FINAL` counts each event once.
    let month_end = 1_738_367_999_999; // 2025-01-31T23:59:59.999Z
    for (id, ms) in [("ev-copy-a", month_end), ("ev-copy-a", month_end + 1), ("ev-copy-b", T), ("ev-copy-b", T + 1000)]
    {
        let mut copy = AccessDecision::new(id.into(), UnixMillis(ms), "workers_trace_events", Source::Tail);
        copy.received_at = UnixMillis(T + 1500);
        enc.decision(&copy, COPIES);
    }
    out.push(payload(
        &DECISIONS,
        profile,
        opts,
        &mut enc,
        format!("SELECT count(), uniqExact(event_id) FROM {db}.decisions FINAL WHERE batch_id = '{COPIES}'"),
        "2,2".to_owned(),
    ));
    out
}
