package callrecords

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// Key orders calls: requested_at (Unix ns), then call id. GET
// /v1/api/calls lists newest first and its cursor is the key of a page's
// last call.
type Key struct {
	At int64
	ID string
}

// Less reports whether k sorts before o.
func (k Key) Less(o Key) bool {
	if k.At != o.At {
		return k.At < o.At
	}
	return k.ID < o.ID
}

// Call is one call's record: the raw records the API renders (request,
// cancel, events) and the summary columns the list filters on.
type Call struct {
	ID          string
	WorkspaceID string
	Key         Key
	// Agent is the first call_agent_id seen (request, else event): the
	// list's call_agent_id filter.
	Agent string
	// Status is the status of the event with the highest sequence
	// ("queued" before the first); Outcome that of the ended event.
	Status  schemas.Status
	Outcome schemas.Outcome
	// Request is the call.requested record the dialer acts on; nil when
	// not known (older than the topics' retention when the recorder
	// started). A scheduled call whose request is not known (not released
	// yet: Status "scheduled") has the request inside its call.scheduled
	// record here instead, with Request.Scheduled set.
	Request *Request
	// Cancel is the data of the call's first call.cancel record, nil when
	// none.
	Cancel []byte
	// Events are the lifecycle events in sequence order, one per sequence.
	Events []Event
	// StartAt is the start_at of the call's call.scheduled record: nil for
	// a call that was never scheduled. It stays once the call is released.
	StartAt *time.Time
}

// Request is a call.requested record.
type Request struct {
	// Data is the record's value: the CloudEvent data, a
	// schemas.CallRequested, as it was written.
	Data      []byte
	Partition int32
	Offset    int64
	// Local: an ingest replica's own acknowledged write, not yet read back
	// from Kafka by the recorder (same partition and offset).
	Local bool
	// Scheduled: Data is the request inside the call's call.scheduled
	// record, and Partition/Offset are that record's on
	// dialstream.campaigns.commands, not the requested topic's.
	Scheduled bool
}

// Event is a lifecycle event record.
type Event struct {
	ID       string // ce_id: the webhook-id of its deliveries
	Sequence int
	Status   schemas.Status
	// Value and Headers are the record as it is on the events topic (its
	// key is the call id): Value is the schemas.CallEvent JSON.
	Value   []byte
	Headers []kgo.RecordHeader
}

// Record rebuilds the event's record on the events topic, keyed by callID
// (what redeliver sends again).
func (e *Event) Record(callID string) *kgo.Record {
	return &kgo.Record{Topic: schemas.TopicEvents, Key: []byte(callID), Value: e.Value, Headers: slices.Clone(e.Headers)}
}

// Delivery is one webhook delivery attempt.
type Delivery struct {
	Partition int32
	Offset    int64
	// Data is the record's value: a schemas.WebhookAttempt.
	Data []byte
}

// MaxDeliveries bounds the attempts Deliveries returns (the newest): the
// default schedule makes at most 8 per event, but redeliveries add more
// without limit.
const MaxDeliveries = 200

const callColumns = `call_id, workspace_id, sort_at, call_agent_id, status, outcome,
	request, request_partition, request_offset, request_local, cancel`

func scanCall(sc interface{ Scan(...any) error }) (Call, error) {
	var (
		c          Call
		status     string
		outcome    string
		req        []byte
		part       sql.NullInt64
		off        sql.NullInt64
		local      int
		cancelData []byte
	)
	err := sc.Scan(&c.ID, &c.WorkspaceID, &c.Key.At, &c.Agent, &status, &outcome, &req, &part, &off, &local, &cancelData)
	if err != nil {
		return c, err
	}
	c.Key.ID = c.ID
	c.Status, c.Outcome = schemas.Status(status), schemas.Outcome(outcome)
	if req != nil {
		c.Request = &Request{Data: req, Partition: int32(part.Int64), Offset: off.Int64, Local: local == 1}
	}
	c.Cancel = cancelData
	return c, nil
}

// Get returns workspace ws's call id with its events; false when there is
// no such call in that workspace (missing and foreign look alike).
func (s *Store) Get(ctx context.Context, ws, id string) (*Call, bool, error) {
	var c Call
	found := true
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = scanCall(tx.QueryRowContext(ctx, `SELECT `+callColumns+` FROM calls
			WHERE call_id = $1 AND workspace_id = $2 AND visible = 1`, text(id), text(ws)))
		if errors.Is(err, sql.ErrNoRows) {
			found = false
			return nil
		}
		if err != nil {
			return err
		}
		return s.loadDetails(ctx, tx, []*Call{&c})
	})
	if err != nil {
		return nil, false, fmt.Errorf("callrecords: get call %s: %w", id, err)
	}
	if !found {
		return nil, false, nil
	}
	return &c, true, nil
}

// loadDetails fills what calls keep in other tables, a query per table:
// their events, and what a scheduled call was scheduled with.
func (s *Store) loadDetails(ctx context.Context, tx *sql.Tx, calls []*Call) error {
	if len(calls) == 0 {
		return nil
	}
	byID := make(map[string]*Call, len(calls))
	ids := make([]string, len(calls))
	for i, c := range calls {
		byID[c.ID] = c
		ids[i] = c.ID
	}
	in, args := inList(ids)
	if err := loadEvents(ctx, tx, byID, in, args); err != nil {
		return err
	}
	return loadScheduled(ctx, tx, byID, in, args)
}

// loadEvents fills the events of the calls byID (in, args: their ids).
func loadEvents(ctx context.Context, tx *sql.Tx, byID map[string]*Call, in string, args []any) error {
	rows, err := tx.QueryContext(ctx, `SELECT call_id, sequence, event_id, status, data, headers FROM call_events
		WHERE call_id IN (`+in+`) ORDER BY call_id, sequence`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, status string
			e          Event
			hb         []byte
		)
		if err := rows.Scan(&id, &e.Sequence, &e.ID, &status, &e.Value, &hb); err != nil {
			return err
		}
		e.Status = schemas.Status(status)
		if e.Headers, err = decodeHeaders(hb); err != nil {
			return err
		}
		if c := byID[id]; c != nil {
			c.Events = append(c.Events, e)
		}
	}
	return rows.Err()
}

// Filter selects calls of one workspace. Zero fields select everything.
type Filter struct {
	Status  schemas.Status
	Outcome schemas.Outcome
	Agent   string
	From    time.Time // requested_at >= From
	To      time.Time // requested_at < To
	// After is the cursor: only calls strictly older than it.
	After *Key
}

// List returns up to limit of workspace ws's calls matching f, newest
// first by Key, each with its events, and the key of the last one when
// more follow. The order is total and a call's key does not change once
// its request is known, so paging by "strictly older than the last key"
// never repeats a call and never skips one that was there when the first
// page was read; calls that arrive meanwhile are newer than the cursor and
// show on a new first page.
func (s *Store) List(ctx context.Context, ws string, f Filter, limit int) ([]Call, *Key, error) {
	q, args := listQuery(ws, f, limit+1)
	var (
		out  []Call
		next *Key
	)
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		if out, err = queryCalls(ctx, tx, q, args...); err != nil {
			return err
		}
		if len(out) > limit {
			out = out[:limit]
			k := out[limit-1].Key
			next = &k
		}
		return s.loadDetails(ctx, tx, pointers(out))
	})
	if err != nil {
		return nil, nil, fmt.Errorf("callrecords: list calls of workspace %s: %w", ws, err)
	}
	return out, next, nil
}

// listQuery builds the list's SELECT. Each filter takes the index made
// for it (migrations/00001): status other than ended walks calls_live,
// outcome walks calls_by_outcome (the "<> ”" terms name those partial
// indexes to both planners), the rest walks calls_list.
func listQuery(ws string, f Filter, limit int) (string, []any) {
	var b strings.Builder
	args := []any{text(ws)}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	b.WriteString(`SELECT ` + callColumns + ` FROM calls WHERE workspace_id = $1 AND visible = 1`)
	if f.Status != "" {
		b.WriteString(` AND status = ` + arg(string(f.Status)))
		if f.Status != schemas.StatusEnded {
			b.WriteString(` AND status <> 'ended'`)
		}
	}
	if f.Outcome != "" {
		b.WriteString(` AND outcome = ` + arg(string(f.Outcome)) + ` AND outcome <> ''`)
	}
	if f.Agent != "" {
		b.WriteString(` AND call_agent_id = ` + arg(text(f.Agent)))
	}
	if !f.From.IsZero() {
		b.WriteString(` AND sort_at >= ` + arg(f.From.UnixNano()))
	}
	if !f.To.IsZero() {
		b.WriteString(` AND sort_at < ` + arg(f.To.UnixNano()))
	}
	if f.After != nil {
		at := arg(f.After.At)
		b.WriteString(` AND sort_at <= ` + at + ` AND (sort_at < ` + at + ` OR call_id < ` + arg(text(f.After.ID)) + `)`)
	}
	b.WriteString(` ORDER BY sort_at DESC, call_id DESC LIMIT ` + arg(limit))
	return b.String(), args
}

func queryCalls(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]Call, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Call
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func pointers(cs []Call) []*Call {
	out := make([]*Call, len(cs))
	for i := range cs {
		out[i] = &cs[i]
	}
	return out
}

// Deliveries returns the webhook attempts of workspace ws's call id in log
// order (the newest MaxDeliveries); false when there is no such call in
// that workspace.
func (s *Store) Deliveries(ctx context.Context, ws, id string) ([]Delivery, bool, error) {
	var out []Delivery
	found := true
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM calls WHERE call_id = $1 AND workspace_id = $2 AND visible = 1`, text(id), text(ws)).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			found = false
			return nil
		}
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT kafka_partition, kafka_offset, data FROM webhook_deliveries
			WHERE call_id = $1 ORDER BY kafka_partition DESC, kafka_offset DESC LIMIT $2`, text(id), MaxDeliveries)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d Delivery
			if err := rows.Scan(&d.Partition, &d.Offset, &d.Data); err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, false, fmt.Errorf("callrecords: deliveries of call %s: %w", id, err)
	}
	slices.Reverse(out)
	return out, found, nil
}

// ExportBatch is how many calls Export reads per query.
const ExportBatch = 500

// Export calls fn with each of workspace ws's calls requested in [from,
// to) (a zero bound is open), oldest first, each with its events, reading
// ExportBatch calls per query (a snapshot of its own each: an export of a
// million calls holds no transaction open, and the recorder keeps
// writing). It stops at fn's first error and returns it.
func (s *Store) Export(ctx context.Context, ws string, from, to time.Time, fn func(*Call) error) error {
	var after *Key
	for {
		var page []Call
		err := s.readTx(ctx, func(tx *sql.Tx) error {
			q, args := exportQuery(ws, from, to, after)
			var err error
			if page, err = queryCalls(ctx, tx, q, args...); err != nil {
				return err
			}
			return s.loadDetails(ctx, tx, pointers(page))
		})
		if err != nil {
			return fmt.Errorf("callrecords: export calls of workspace %s: %w", ws, err)
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < ExportBatch {
			return nil
		}
		after = &page[len(page)-1].Key
	}
}

// exportQuery selects the next ExportBatch calls after the key `after`
// (nil: from the start of the range), on calls_list.
func exportQuery(ws string, from, to time.Time, after *Key) (string, []any) {
	var b strings.Builder
	args := []any{text(ws)}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	b.WriteString(`SELECT ` + callColumns + ` FROM calls WHERE workspace_id = $1 AND visible = 1`)
	if !from.IsZero() {
		b.WriteString(` AND sort_at >= ` + arg(from.UnixNano()))
	}
	if !to.IsZero() {
		b.WriteString(` AND sort_at < ` + arg(to.UnixNano()))
	}
	if after != nil {
		at := arg(after.At)
		b.WriteString(` AND sort_at >= ` + at + ` AND (sort_at > ` + at + ` OR call_id > ` + arg(text(after.ID)) + `)`)
	}
	b.WriteString(` ORDER BY sort_at, call_id LIMIT ` + arg(ExportBatch))
	return b.String(), args
}

// RequestsAt returns which offsets in [from, to] of partition of
// dialstream.calls.requested the calls hold as their request (a record
// the recorder passed over without writing it has none). Ingest asks it of
// the calls it accepted once the recorder's offsets have passed them; one
// range of the calls_by_request index answers it (the position is written
// with the request, and only with it).
func (s *Store) RequestsAt(ctx context.Context, partition int32, from, to int64) (map[int64]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT request_offset FROM calls
		WHERE request_partition = $1 AND request_offset >= $2 AND request_offset <= $3`, partition, from, to)
	if err != nil {
		return nil, fmt.Errorf("callrecords: requests at %d:%d-%d: %w", partition, from, to, err)
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var off int64
		if err := rows.Scan(&off); err != nil {
			return nil, fmt.Errorf("callrecords: requests at %d:%d-%d: %w", partition, from, to, err)
		}
		out[off] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("callrecords: requests at %d:%d-%d: %w", partition, from, to, err)
	}
	return out, nil
}

// Offsets returns the stored positions of group: the next offset to read,
// per topic and partition. A partition without one is absent.
func (s *Store) Offsets(ctx context.Context, group string) (map[string]map[int32]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT topic, kafka_partition, next_offset FROM consumed_offsets WHERE group_id = $1`, group)
	if err != nil {
		return nil, fmt.Errorf("callrecords: offsets of group %s: %w", group, err)
	}
	defer rows.Close()
	out := map[string]map[int32]int64{}
	for rows.Next() {
		var (
			topic string
			p     int32
			next  int64
		)
		if err := rows.Scan(&topic, &p, &next); err != nil {
			return nil, fmt.Errorf("callrecords: offsets of group %s: %w", group, err)
		}
		if out[topic] == nil {
			out[topic] = map[int32]int64{}
		}
		out[topic][p] = next
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("callrecords: offsets of group %s: %w", group, err)
	}
	return out, nil
}
