INSERT INTO {db}.decisions (event_id, time, time_ms, received_at, received_at_ms, source, dataset, decision,
    principal, principal_type, roles, client_ip, country, asn, user_agent, resource, action, policy, reason,
    status, zone, host, path, tenant, spool_seq, raw_sha256, batch_id)
SELECT
    lower(hex(cityHash64(n, 'bench-event'))) AS event_id,
    toDateTime(intDiv(t_ms, 1000), 'UTC') AS time,
    t_ms AS time_ms,
    toDateTime(intDiv(r_ms, 1000), 'UTC') AS received_at,
    r_ms AS received_at_ms,
    'logpush' AS source,
    arrayElement(['access_requests', 'http_requests', 'gateway_http', 'firewall_events'], 1 + n % 4) AS dataset,
    if(h % 100 < 6, 'deny', 'allow') AS decision,
    if(h % 50 = 0, '', concat('user', toString(p), '@example.com')) AS principal,
    if(h % 50 = 0, 'anonymous', if(p % 10 = 0, 'service', 'user')) AS principal_type,
    [concat('role', toString(p % 7))] AS roles,
    concat('10.', toString(p % 250), '.', toString(intDiv(p, 250)), '.', toString(h % 3)) AS client_ip,
    if(h % 5000 = 7, 'RU', arrayElement(['US', 'DE', 'GB', 'FR', 'NL', 'JP', 'BR', 'IN'], 1 + p % 8)) AS country,
    toUInt32(64500 + p % 40) AS asn,
    'Mozilla/5.0 (bench)' AS user_agent,
    concat('clickhouse:db', toString(p % 20), '.t', toString(intDiv(h, 100) % 40)) AS resource,
    'select' AS action,
    'bench-policy' AS policy,
    '' AS reason,
    toUInt16(if(h % 100 < 6, 403, 200)) AS status,
    'example.com' AS zone,
    'bi.example.com' AS host,
    '/query' AS path,
    'default' AS tenant,
    toUInt64(0) AS spool_seq,
    '' AS raw_sha256,
    concat('bench-', toString(intDiv(n, 2000))) AS batch_id
FROM
(
    SELECT
        number AS n,
        cityHash64(number, 'bench') AS h,
        -- 2000 principals, some far busier than others
        toUInt64(pow(cityHash64(number, 'who') % 2000, 2) / 2000) AS p,
        toInt64({start_ms} + intDiv(number * {span_ms}, {rows})) AS t_ms,
        -- most arrive within two minutes, one in a hundred hours late
        t_ms + toInt64(if(h % 100 = 42, 3600000 * (1 + h % 5), h % 120000)) AS r_ms
    FROM numbers({rows})
)
