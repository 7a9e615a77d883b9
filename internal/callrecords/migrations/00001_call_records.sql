-- The call records: one schema for PostgreSQL and SQLite. Only types and
-- statements both engines take: TEXT, SMALLINT/INTEGER/BIGINT, DOUBLE
-- PRECISION, BYTEA (SQLite keeps a BLOB as it is in any column), and
-- instants as BIGINT Unix nanoseconds (exact, ordered, no time-zone type
-- that the two engines read differently; Grafana's $__unixEpochNano*
-- macros take them as they are). Raw JSON is BYTEA, never PostgreSQL's
-- jsonb: jsonb reorders keys and drops duplicates, and the API renders
-- metadata byte for byte as the client sent it. IF NOT EXISTS lets two
-- processes that open one SQLite file at once both migrate (PostgreSQL
-- takes an advisory lock instead).

-- +goose Up
CREATE TABLE IF NOT EXISTS calls (
    call_id           TEXT     NOT NULL PRIMARY KEY,
    workspace_id      TEXT     NOT NULL,
    -- The list's key: requested_at in Unix ns, and how sure it is
    -- (sort_rank: 0 a guess from the first record seen, 1 this replica's
    -- own request, 2 the request read from Kafka, 3 the dialer's
    -- requested_at). It is also the retention's clock.
    sort_at           BIGINT   NOT NULL,
    sort_rank         SMALLINT NOT NULL,
    -- 1 once the request or an event is known; delivery attempts alone
    -- do not make a call exist for the API.
    visible           SMALLINT NOT NULL DEFAULT 0,
    call_agent_id     TEXT     NOT NULL DEFAULT '',
    to_number         TEXT     NOT NULL DEFAULT '',
    -- status of the event with the highest sequence; outcome of the
    -- ended event.
    status            TEXT     NOT NULL DEFAULT 'queued',
    last_sequence     INTEGER  NOT NULL DEFAULT 0,
    outcome           TEXT     NOT NULL DEFAULT '',
    answered_at       BIGINT,
    ended_at          BIGINT,
    ring_seconds      DOUBLE PRECISION,
    talk_seconds      DOUBLE PRECISION,
    -- The call.requested data as written to Kafka, and where: jobId.
    request           BYTEA,
    request_partition INTEGER,
    request_offset    BIGINT,
    request_local     SMALLINT NOT NULL DEFAULT 0,
    -- The first call.cancel data.
    cancel            BYTEA,
    updated_at        BIGINT   NOT NULL
);

-- GET /v1/api/calls newest first and its cursor; the export's time range;
-- a workspace purge.
CREATE INDEX IF NOT EXISTS calls_list ON calls (workspace_id, sort_at, call_id);
-- The list's filters. Most calls end, so the status index holds only the
-- calls still going (status=ended walks calls_list), and the outcome index
-- only the calls that ended.
CREATE INDEX IF NOT EXISTS calls_by_agent ON calls (workspace_id, call_agent_id, sort_at, call_id);
CREATE INDEX IF NOT EXISTS calls_by_outcome ON calls (workspace_id, outcome, sort_at, call_id) WHERE outcome <> '';
CREATE INDEX IF NOT EXISTS calls_live ON calls (workspace_id, status, sort_at, call_id) WHERE status <> 'ended';
-- The retention's delete, across workspaces.
CREATE INDEX IF NOT EXISTS calls_by_age ON calls (sort_at);

CREATE TABLE IF NOT EXISTS call_events (
    call_id      TEXT    NOT NULL,
    sequence     INTEGER NOT NULL,
    event_id     TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    occurred_at  BIGINT  NOT NULL,
    -- The record as it is on dialstream.calls.events: its value (the
    -- CloudEvent data) and its headers (ce_*, traceparent) as JSON.
    data         BYTEA   NOT NULL,
    headers      BYTEA   NOT NULL,
    PRIMARY KEY (call_id, sequence)
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    call_id         TEXT    NOT NULL,
    -- Where the attempt is on dialstream.webhooks.deliveries: its identity
    -- (an attempt has no id of its own) and the log order of one call's
    -- attempts, which share a partition.
    kafka_partition INTEGER NOT NULL,
    kafka_offset    BIGINT  NOT NULL,
    event_id        TEXT    NOT NULL,
    result          TEXT    NOT NULL,
    attempted_at    BIGINT  NOT NULL,
    data            BYTEA   NOT NULL,
    PRIMARY KEY (call_id, kafka_partition, kafka_offset)
);

-- The recorder's position: written in the transaction of the rows read
-- up to it, so rows and position never disagree.
CREATE TABLE IF NOT EXISTS consumed_offsets (
    group_id        TEXT    NOT NULL,
    topic           TEXT    NOT NULL,
    kafka_partition INTEGER NOT NULL,
    next_offset     BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (group_id, topic, kafka_partition)
);

-- +goose Down
DROP TABLE IF EXISTS consumed_offsets;
DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS call_events;
DROP TABLE IF EXISTS calls;
