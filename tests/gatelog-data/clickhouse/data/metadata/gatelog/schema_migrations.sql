ATTACH TABLE schema_migrations
(
    version UInt32, 
    name String, 
    checksum String, 
    profile String, 
    applied_at DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree
ORDER BY version
SETTINGS index_granularity = 8192
