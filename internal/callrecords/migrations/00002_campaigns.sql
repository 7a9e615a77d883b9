-- Campaigns (issue 15): the scheduler's state of each campaign and
-- contact, read from the compacted dialstream.campaigns.state, and the
-- scheduled single calls read from dialstream.campaigns.commands. The
-- rules of 00001 hold: types both engines take, instants as BIGINT Unix
-- nanoseconds, raw JSON as BYTEA kept as written, IF NOT EXISTS.

-- +goose Up
CREATE TABLE IF NOT EXISTS campaigns (
    -- A campaign id is unique across workspaces (the scheduler keys its
    -- state by it alone); the first record fixes the workspace.
    campaign_id  TEXT   NOT NULL PRIMARY KEY,
    workspace_id TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    status       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    -- Set once completed or canceled: the retention's clock.
    finished_at  BIGINT,
    -- The scheduler.state.v1 record's value (a schemas.CampaignState),
    -- counters included: the reads return it as stored.
    state        BYTEA  NOT NULL
);

-- GET /v1/api/campaigns newest first and its cursor, with and without a
-- status; a workspace purge.
CREATE INDEX IF NOT EXISTS campaigns_list ON campaigns (workspace_id, created_at, campaign_id);
CREATE INDEX IF NOT EXISTS campaigns_by_status ON campaigns (workspace_id, status, created_at, campaign_id);
-- The retention's delete, across workspaces.
CREATE INDEX IF NOT EXISTS campaigns_by_finish ON campaigns (finished_at);

CREATE TABLE IF NOT EXISTS campaign_contacts (
    campaign_id  TEXT    NOT NULL,
    contact_id   TEXT    NOT NULL,
    workspace_id TEXT    NOT NULL,
    number       TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    -- The last attempt's outcome ('' before the first ends).
    outcome      TEXT    NOT NULL DEFAULT '',
    attempts     INTEGER NOT NULL DEFAULT 0,
    -- The CSV line (or 1-based array index) it came from; 0 when unknown.
    csv_row      INTEGER NOT NULL DEFAULT 0,
    next_due_at  BIGINT,
    updated_at   BIGINT  NOT NULL,
    -- The scheduler.state.v1 record's value (a schemas.ContactState).
    state        BYTEA   NOT NULL,
    -- The primary key is also the contacts page's order (by contact id)
    -- and a tombstone's delete (its key names no workspace).
    PRIMARY KEY (campaign_id, contact_id)
);

-- The contacts page filtered by status; the export (CSV row order); the
-- upload's duplicate check (numbers already in the campaign); a
-- workspace purge, which must reach contacts whose campaign row is gone.
CREATE INDEX IF NOT EXISTS campaign_contacts_by_status ON campaign_contacts (campaign_id, status, contact_id);
CREATE INDEX IF NOT EXISTS campaign_contacts_by_row ON campaign_contacts (campaign_id, csv_row, contact_id);
CREATE INDEX IF NOT EXISTS campaign_contacts_by_number ON campaign_contacts (campaign_id, number, contact_id);
CREATE INDEX IF NOT EXISTS campaign_contacts_by_workspace ON campaign_contacts (workspace_id, campaign_id);

-- A call scheduled for later (call.scheduled on
-- dialstream.campaigns.commands) exists, with status 'scheduled', before
-- the scheduler releases its request: this row keeps the request inside
-- the call.scheduled record, where that record is (the job ingest answered
-- with) and start_at, which stays after the release. A table of its own,
-- not columns added to calls: SQLite has no ADD COLUMN IF NOT EXISTS, and
-- two processes opening one SQLite file at once both migrate.
CREATE TABLE IF NOT EXISTS scheduled_calls (
    call_id         TEXT    NOT NULL PRIMARY KEY,
    start_at        BIGINT  NOT NULL,
    request         BYTEA   NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE IF EXISTS scheduled_calls;
DROP TABLE IF EXISTS campaign_contacts;
DROP TABLE IF EXISTS campaigns;
