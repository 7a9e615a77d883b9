-- The position of each call's request record (dialstream.calls.requested
-- partition and offset), for ingest's read-your-writes (Store.RequestsAt):
-- it asks which of the records it acknowledged the calls hold, by range,
-- after the recorder's offsets passed them. One lookup per call by its
-- random id cost ingest a twentieth of its CPU under load; offsets within
-- a partition grow, so these entries append and a range is a few
-- neighbouring pages of this index alone (request_partition and
-- request_offset are written with request, and only with it: a call known
-- only from its events has them NULL).

-- +goose Up
CREATE INDEX IF NOT EXISTS calls_by_request ON calls (request_partition, request_offset);

-- +goose Down
DROP INDEX IF EXISTS calls_by_request;
