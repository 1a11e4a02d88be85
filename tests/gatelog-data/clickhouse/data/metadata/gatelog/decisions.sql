ATTACH TABLE decisions
(
    event_id String, 
    time DateTime('UTC'), 
    time_ms Int64, 
    received_at DateTime('UTC'), 
    received_at_ms Int64, 
    source String, 
    dataset String, 
    decision String, 
    principal String, 
    principal_type String, 
    roles Array(String), 
    client_ip String, 
    country String, 
    asn UInt32, 
    user_agent String, 
    resource String, 
    action String, 
    policy String, 
    reason String, 
    query String, 
    query_fingerprint String, 
    rows_read UInt64, 
    bytes_read UInt64, 
    result_rows UInt64, 
    duration_ms UInt64, 
    status UInt16, 
    ray_id String, 
    request_id String, 
    zone String, 
    host String, 
    path String, 
    auth_method String, 
    error String, 
    tenant String, 
    spool_seq UInt64, 
    raw_sha256 String, 
    batch_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, event_id)
SETTINGS index_granularity = 8192
