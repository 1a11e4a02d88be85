ATTACH TABLE dead_letters
(
    dataset String, 
    received_at DateTime('UTC'), 
    received_at_ms Int64, 
    origin String, 
    line_no UInt64, 
    line String, 
    sha256 String, 
    error String, 
    batch_id String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (dataset, received_at, batch_id, line_no)
SETTINGS index_granularity = 8192
