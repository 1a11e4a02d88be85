ATTACH TABLE ingest_batches
(
    batch_id String, 
    dataset String, 
    origin String, 
    received_at DateTime('UTC'), 
    received_at_ms Int64, 
    lines UInt64, 
    decisions UInt64, 
    raw_records UInt64, 
    dead_letters UInt64, 
    probes UInt64, 
    min_time DateTime('UTC'), 
    min_time_ms Int64, 
    max_time DateTime('UTC'), 
    max_time_ms Int64, 
    bytes UInt64, 
    sha256 String, 
    written_at DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY batch_id
SETTINGS index_granularity = 8192
