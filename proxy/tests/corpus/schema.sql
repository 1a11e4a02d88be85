-- The guard tests' schema, in ClickHouse 18.16 and in chdb 26.9. analytics.salaries and
-- secret.vault are denied to every test role; their marker values (987654321987,
-- 98765432123, VAULT-7f3a9c) must never reach a client.
-- Statements are separated by lines holding only `;;`.
CREATE DATABASE analytics
;;
CREATE TABLE analytics.events (day Date, ts DateTime, user_id UInt64, event String, country String, amount Float64, duration UInt32, tags Array(String), attrs Nested(key String, value String), payload String) ENGINE = MergeTree PARTITION BY toYYYYMM(day) ORDER BY (day, user_id, intHash32(user_id)) SAMPLE BY intHash32(user_id) SETTINGS index_granularity = 64
;;
INSERT INTO analytics.events SELECT toDate('2025-03-01') + number % 5, toDateTime('2025-03-01 00:00:00') + number * 3600, number % 7, ['view', 'click', 'buy'][number % 3 + 1], ['FR', 'DE', 'US', 'JP'][number % 4 + 1], number * 1.5, number % 60, [toString(number % 3), 'x'], ['k', 'v'], [toString(number), 'y'], concat('{"a":', toString(number), ',"b":"s', toString(number % 2), '"}') FROM system.numbers LIMIT 60
;;
CREATE TABLE analytics.users (id UInt64, name String, email String, signup Date, plan String, settings String) ENGINE = ReplacingMergeTree ORDER BY id
;;
INSERT INTO analytics.users SELECT number, concat('user', toString(number)), concat('u', toString(number), '@example.com'), toDate('2024-01-01') + number * 30, ['free', 'pro'][number % 2 + 1], 'dark' FROM system.numbers LIMIT 7
;;
CREATE TABLE analytics.daily (day Date, country String, hits AggregateFunction(count), users AggregateFunction(uniq, UInt64)) ENGINE = AggregatingMergeTree ORDER BY (day, country)
;;
INSERT INTO analytics.daily SELECT day, country, countState(), uniqState(user_id) FROM analytics.events GROUP BY day, country
;;
CREATE TABLE analytics.scratch (id UInt64, note String, at DateTime) ENGINE = MergeTree ORDER BY id
;;
CREATE TABLE analytics.salaries (user_id UInt64, amount UInt64) ENGINE = MergeTree ORDER BY user_id
;;
INSERT INTO analytics.salaries VALUES (1, 987654321987)
;;
CREATE DATABASE secret
;;
CREATE TABLE secret.vault (user_id UInt64, amount UInt64, note String) ENGINE = MergeTree ORDER BY user_id
;;
INSERT INTO secret.vault VALUES (2, 98765432123, 'VAULT-7f3a9c')
