ATTACH TABLE raw_records
(
    event_id String, 
    dataset String, 
    received_at DateTime('UTC'), 
    received_at_ms Int64, 
    time DateTime('UTC'), 
    time_ms Int64, 
    line String, 
    sha256 String, 
    batch_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (dataset, sha256)
SETTINGS index_granularity = 8192
