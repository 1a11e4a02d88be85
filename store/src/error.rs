//! [`StoreError`] and its retryable/fatal classification.

use std::time::Duration;

/// ClickHouse error codes worth retrying: the server or the network is overloaded or
/// briefly unavailable, not the request wrong. Everything else with a code is fatal.
const RETRYABLE_CODES: &[u32] = &[
    3,    // UNEXPECTED_END_OF_FILE (the body was cut off)
    32,   // ATTEMPT_TO_READ_AFTER_EOF
    159,  // TIMEOUT_EXCEEDED
    160,  // TOO_SLOW
    202,  // TOO_MANY_SIMULTANEOUS_QUERIES
    203,  // NO_FREE_CONNECTION
    209,  // SOCKET_TIMEOUT
    210,  // NETWORK_ERROR
    225,  // NO_ZOOKEEPER
    236,  // ABORTED
    241,  // MEMORY_LIMIT_EXCEEDED
    242,  // TABLE_IS_READ_ONLY
    243,  // NOT_ENOUGH_SPACE
    252,  // TOO_MANY_PARTS
    285,  // TOO_FEW_LIVE_REPLICAS
    286,  // UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
    319,  // UNKNOWN_STATUS_OF_INSERT
    341,  // UNFINISHED (mutation)
    394,  // QUERY_WAS_CANCELLED
    425,  // SYSTEM_ERROR
    473,  // DEADLOCK_AVOIDED
    999,  // KEEPER_EXCEPTION
    1000, // POCO_EXCEPTION (mostly network)
];

/// What went wrong with a request, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connection refused or reset, broken pipe, DNS: the server was not reachable.
    Network,
    /// The request took longer than the configured bound.
    Timeout,
    /// ClickHouse answered with an exception code.
    Server { code: u32 },
    /// An HTTP error without a ClickHouse code (e.g. a proxy's 502/503 or a 401).
    Http { status: u16 },
    /// The request could not be built or the answer not decoded: a bug or a schema mismatch.
    Client,
}

impl FailureKind {
    pub fn is_retryable(self) -> bool {
        match self {
            FailureKind::Network | FailureKind::Timeout => true,
            FailureKind::Server { code } => RETRYABLE_CODES.contains(&code),
            FailureKind::Http { status } => status >= 500 || status == 429 || status == 408,
            FailureKind::Client => false,
        }
    }
}

/// Everything the store can fail with. [`StoreError::is_retryable`] tells callers whether
/// trying again later can help; `write_batch` already retried those per its policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A request to ClickHouse failed. `table` names what it was about (`gatelog.decisions`,
    /// or `server` for connection-level queries).
    #[error("{op} on {table} failed ({}): {detail}", kind_text(*kind))]
    ClickHouse { op: &'static str, table: String, kind: FailureKind, detail: String },
    #[error("clickhouse-server {version} is not supported: gatelog needs 18.16 or newer")]
    UnsupportedServer { version: String },
    #[error("schema profile {profile} needs a newer ClickHouse than the server's {version}")]
    ProfileNotSupported { profile: &'static str, version: String },
    #[error(
        "migration {version} ({name}) was applied with checksum {applied}, but this build's statements \
         have checksum {expected}: an applied migration must never change; add a new migration instead"
    )]
    MigrationChanged { version: u32, name: String, applied: String, expected: String },
    #[error("mutation on {table} did not finish within {waited:?} while removing rows of batch {batch_id}")]
    MutationTimeout { table: String, batch_id: String, waited: Duration },
    #[error("mutation on {table} failed while removing rows of batch {batch_id}: {reason}")]
    MutationFailed { table: String, batch_id: String, reason: String },
    #[error("gave up after {attempts} attempts in {elapsed:?}: {last}")]
    RetriesExhausted { attempts: u32, elapsed: Duration, last: Box<StoreError> },
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    #[error("invalid store configuration: {0}")]
    InvalidConfig(String),
    /// A read query that cannot be bound (a placeholder without a value, or the reverse).
    #[error("read query {name}: {detail}")]
    InvalidQuery { name: String, detail: String },
    #[error("invalid period: {0}")]
    InvalidPeriod(String),
    /// A row a read query returned that this build cannot use.
    #[error("{query} returned a row gatelog cannot read: {detail}")]
    InvalidRow { query: String, detail: String },
    /// A streamed read asked for its record before its last row was read.
    #[error(
        "{query}: no record for a stream {} after {rows} rows: its rows are not the query's result",
        if *failed { "that failed" } else { "not read to its end" }
    )]
    StreamNotFinished { query: String, rows: u64, failed: bool },
}

fn kind_text(kind: FailureKind) -> String {
    match kind {
        FailureKind::Network => "network error, retryable".to_owned(),
        FailureKind::Timeout => "timeout, retryable".to_owned(),
        FailureKind::Server { code } if kind.is_retryable() => {
            format!("ClickHouse code {code}, retryable")
        }
        FailureKind::Server { code } => format!("ClickHouse code {code}, fatal"),
        FailureKind::Http { status } if kind.is_retryable() => format!("HTTP {status}, retryable"),
        FailureKind::Http { status } => format!("HTTP {status}, fatal"),
        FailureKind::Client => "client error, fatal".to_owned(),
    }
}

impl StoreError {
    /// Whether the same request may succeed later (server down, overloaded, timed out).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::ClickHouse { kind, .. } => kind.is_retryable(),
            StoreError::MutationTimeout { .. } => true,
            StoreError::RetriesExhausted { last, .. } => last.is_retryable(),
            _ => false,
        }
    }

    /// The ClickHouse error code, if the server sent one.
    pub fn code(&self) -> Option<u32> {
        match self {
            StoreError::ClickHouse { kind: FailureKind::Server { code }, .. } => Some(*code),
            StoreError::RetriesExhausted { last, .. } => last.code(),
            _ => None,
        }
    }

    /// Classifies a `clickhouse` crate error of operation `op` on `table`.
    pub(crate) fn from_clickhouse(op: &'static str, table: &str, err: clickhouse::error::Error) -> Self {
        use clickhouse::error::Error as E;
        let (kind, detail) = match &err {
            E::Network(_) => (FailureKind::Network, err.to_string()),
            E::TimedOut => (FailureKind::Timeout, err.to_string()),
            E::BadResponse(text) => classify_response(text),
            _ => (FailureKind::Client, err.to_string()),
        };
        StoreError::ClickHouse { op, table: table.to_owned(), kind, detail }
    }

    pub(crate) fn timeout(op: &'static str, table: &str, after: Duration) -> Self {
        StoreError::ClickHouse {
            op,
            table: table.to_owned(),
            kind: FailureKind::Timeout,
            detail: format!("no answer within {after:?}"),
        }
    }
}

/// Reads the code out of an exception body: `Code: 60, e.displayText() = …` (18.x) or
/// `Code: 60. DB::Exception: …` (newer); otherwise a leading HTTP status (`503 Service Unavailable`).
fn classify_response(text: &str) -> (FailureKind, String) {
    let detail: String = text.trim().chars().take(2000).collect();
    if let Some(code) = parse_code(text) {
        return (FailureKind::Server { code }, detail);
    }
    let status = text.split_whitespace().next().and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(status) if (100..600).contains(&status) => (FailureKind::Http { status }, detail),
        _ => (FailureKind::Client, detail),
    }
}

fn parse_code(text: &str) -> Option<u32> {
    let start = text.find("Code: ")? + "Code: ".len();
    let digits: String = text[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(text: &str) -> StoreError {
        StoreError::from_clickhouse("INSERT", "gatelog.decisions", clickhouse::error::Error::BadResponse(text.into()))
    }

    #[test]
    fn reads_codes_of_old_and_new_servers() {
        let old = bad(
            "Code: 60, e.displayText() = DB::Exception: Table gatelog.decisions doesn't exist., e.what() = DB::Exception",
        );
        assert_eq!(old.code(), Some(60));
        assert!(!old.is_retryable());
        let msg = old.to_string();
        assert!(msg.contains("gatelog.decisions") && msg.contains("code 60") && msg.contains("doesn't exist"), "{msg}");
        let new = bad("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS) (version 24.8.1)");
        assert_eq!(new.code(), Some(252));
        assert!(new.is_retryable());
        assert!(bad("Code: 241. DB::Exception: Memory limit (total) exceeded").is_retryable());
        assert!(!bad("Code: 62, e.displayText() = DB::Exception: Syntax error").is_retryable());
        assert!(!bad("Code: 516. DB::Exception: default: Authentication failed").is_retryable());
        assert!(
            !bad("Code: 164, e.displayText() = DB::Exception: Cannot execute query in readonly mode").is_retryable()
        );
    }

    #[test]
    fn classifies_http_and_network_failures() {
        assert!(bad("503 Service Unavailable").is_retryable());
        assert!(!bad("401 Unauthorized").is_retryable());
        assert!(!bad("garbage").is_retryable());
        let net = StoreError::from_clickhouse(
            "SELECT",
            "server",
            clickhouse::error::Error::Network("connection refused".into()),
        );
        assert!(net.is_retryable());
        assert!(StoreError::timeout("SELECT", "server", Duration::from_secs(1)).is_retryable());
        let gave_up =
            StoreError::RetriesExhausted { attempts: 3, elapsed: Duration::from_secs(1), last: Box::new(net) };
        assert!(gave_up.to_string().contains("3 attempts"), "{gave_up}");
        assert!(gave_up.to_string().contains("connection refused"), "{gave_up}");
    }
}
