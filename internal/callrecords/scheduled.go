package callrecords

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// Scheduled single calls (call.scheduled, issue 15). The call exists from
// its call.scheduled record on, with status "scheduled", so GET
// /v1/api/call/:id and the list show it while it waits for start_at. Its
// released call.requested and the dialer's events then make it an
// ordinary call, in whatever order the recorder reads them: the two
// arrive on different topics, so "scheduled" is only ever set on a call
// with neither a request nor an event, and a request or an event always
// replaces it. The scheduler's own state of the call (s/<call>) adds
// nothing: a call canceled before its release is still released, with
// canceled_at, and ended by the dialer.

var (
	// The call, created when absent: agent and number from the scheduled
	// request when none is known, status "scheduled" while it has no
	// request and no event, and the list key a guess (the scheduled
	// request's requested_at) that the released request's replaces.
	sqlScheduleCall = `INSERT INTO calls (call_id, workspace_id, sort_at, sort_rank, visible, call_agent_id, to_number, status, updated_at)
		VALUES ($1, $2, $3, $4, 1, $5, $6, 'scheduled', $7)
		ON CONFLICT (call_id) DO UPDATE SET ` + keySet("excluded.sort_at", "excluded.sort_rank") + `,
			visible = 1,
			call_agent_id = CASE WHEN calls.call_agent_id = '' THEN excluded.call_agent_id ELSE calls.call_agent_id END,
			to_number = CASE WHEN calls.to_number = '' THEN excluded.to_number ELSE calls.to_number END,
			status = CASE WHEN calls.request IS NULL AND calls.last_sequence = 0 THEN 'scheduled' ELSE calls.status END,
			updated_at = excluded.updated_at
		WHERE calls.workspace_id = excluded.workspace_id`
	sqlTouchScheduledCall = `UPDATE calls SET ` + keySet("CAST($3 AS BIGINT)", "CAST($4 AS SMALLINT)") + `,
			visible = 1,
			call_agent_id = CASE WHEN call_agent_id = '' THEN $5 ELSE call_agent_id END,
			to_number = CASE WHEN to_number = '' THEN $6 ELSE to_number END,
			status = CASE WHEN request IS NULL AND last_sequence = 0 THEN 'scheduled' ELSE status END,
			updated_at = $7
		WHERE call_id = $1 AND workspace_id = $2`
	// The schedule kept is the first in its partition, as a request's is
	// (the scheduler acts on the first call.scheduled of a call id).
	sqlPutScheduled = `INSERT INTO scheduled_calls (call_id, start_at, request, kafka_partition, kafka_offset)
		SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM calls WHERE call_id = $1 AND workspace_id = $6)
		ON CONFLICT (call_id) DO UPDATE SET start_at = excluded.start_at, request = excluded.request,
			kafka_partition = excluded.kafka_partition, kafka_offset = excluded.kafka_offset
		WHERE scheduled_calls.kafka_partition = excluded.kafka_partition AND excluded.kafka_offset < scheduled_calls.kafka_offset`
)

// PutScheduled records a call.scheduled record read at partition/offset of
// dialstream.campaigns.commands: data is its value (the CloudEvent data, a
// schemas.CallScheduled as written), sc the decoded value. The request
// inside it is kept byte for byte (a client's metadata as sent). It
// reports whether the store changed.
func (w *Writer) PutScheduled(ctx context.Context, sc *schemas.CallScheduled, data []byte, partition int32, offset int64) (bool, error) {
	var raw struct {
		Request json.RawMessage `json:"request"`
	}
	r := &sc.Request
	if err := json.Unmarshal(data, &raw); err != nil || len(raw.Request) == 0 {
		return false, fmt.Errorf("callrecords: put schedule of call %s: the data holds no request", r.CallID)
	}
	at := r.RequestedAt.UnixNano()
	q := sqlScheduleCall
	if !w.fresh(at) {
		q = sqlTouchScheduledCall
	}
	if _, err := w.exec(ctx, q, text(r.CallID), text(r.WorkspaceID), at, rankGuess, text(r.CallAgentID), text(r.To), w.now); err != nil {
		return false, wrapErr("put schedule", r.CallID, err)
	}
	n, err := w.exec(ctx, sqlPutScheduled, text(r.CallID), sc.StartAt.UnixNano(), []byte(raw.Request), partition, offset, text(r.WorkspaceID))
	if err != nil {
		return false, wrapErr("put schedule", r.CallID, err)
	}
	return n > 0, nil
}

// PutScheduled is Writer.PutScheduled in a transaction of its own: what an
// ingest replica may call once Kafka acknowledged a call.scheduled it
// wrote, so the call is visible there at once.
func (s *Store) PutScheduled(ctx context.Context, sc *schemas.CallScheduled, data []byte, partition int32, offset int64) (bool, error) {
	var changed bool
	err := s.Write(ctx, func(w *Writer) error {
		var err error
		changed, err = w.PutScheduled(ctx, sc, data, partition, offset)
		return err
	})
	return changed, err
}

// loadScheduled fills StartAt of the calls byID that were scheduled, and
// Request from the schedule where the released request is not known.
func loadScheduled(ctx context.Context, tx *sql.Tx, byID map[string]*Call, in string, args []any) error {
	rows, err := tx.QueryContext(ctx, `SELECT call_id, start_at, request, kafka_partition, kafka_offset FROM scheduled_calls
		WHERE call_id IN (`+in+`)`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id      string
			startAt int64
			r       = Request{Scheduled: true}
		)
		if err := rows.Scan(&id, &startAt, &r.Data, &r.Partition, &r.Offset); err != nil {
			return err
		}
		c := byID[id]
		if c == nil {
			continue
		}
		t := time.Unix(0, startAt).UTC()
		c.StartAt = &t
		if c.Request == nil {
			c.Request = &r
		}
	}
	return rows.Err()
}
