package callrecords

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// The writes. Each one is a statement that decides on the row as the
// database holds it at that moment (INSERT ... ON CONFLICT DO UPDATE ...
// WHERE ...), never a read, a decision in Go and a write back: so the
// recorder and an ingest replica writing the same call at once (its own
// request, for read-your-writes) cannot undo each other, on PostgreSQL as
// on SQLite. The rules are ingest's in-memory projection's, one for one
// (ingest/store.go before the store existed); see doc.go.

// Ranks of a call's list key (calls.sort_rank): a key only gives way to a
// higher rank, so a call moves in the list at most a few times, and only
// when its first record seen is not its request.
const (
	rankGuess   = 0 // occurred_at or attempted_at of the first record seen
	rankLocal   = 1 // requested_at of an ingest replica's own request, not yet read back
	rankRequest = 2 // requested_at of the call's first record in the requested topic
	rankDialer  = 3 // requested_at on the call's lifecycle events: what the dialer took
)

// keySet is the SET part that moves a call's key to (newAt, newRank) when
// the rank says so: a higher rank always wins; among guesses the earlier
// time wins. new* are SQL expressions (excluded.x in an upsert, $n in an
// UPDATE).
func keySet(newAt, newRank string) string {
	return `sort_at = CASE WHEN ` + newAt + ` <> calls.sort_at AND (` + newRank + ` > calls.sort_rank OR (` +
		newRank + ` = 0 AND calls.sort_rank = 0 AND ` + newAt + ` < calls.sort_at)) THEN ` + newAt + ` ELSE calls.sort_at END,
		sort_rank = CASE WHEN ` + newRank + ` > calls.sort_rank THEN ` + newRank + ` ELSE calls.sort_rank END`
}

// requestReplaces: a request record replaces the one held only when there
// is none, or it is earlier in the same partition (the dialer acts on the
// first), or it is the same record read back from Kafka after this
// replica's own acknowledgement. A request from another partition (a call
// id reused by a direct producer) changes nothing.
func requestReplaces(part, off, local string) string {
	return `(calls.request IS NULL OR (calls.request_partition = ` + part + ` AND (` + off + ` < calls.request_offset OR (` +
		off + ` = calls.request_offset AND calls.request_local = 1 AND ` + local + ` = 0))))`
}

// keyChanges is true when keySet would change the key: the other rows
// are left alone (on PostgreSQL an UPDATE that changes nothing still
// writes a row version, and most records change no key).
func keyChanges(newAt, newRank string) string {
	return `((` + newAt + ` <> calls.sort_at AND (` + newRank + ` > calls.sort_rank OR (` + newRank +
		` = 0 AND calls.sort_rank = 0 AND ` + newAt + ` < calls.sort_at))) OR ` + newRank + ` > calls.sort_rank)`
}

var (
	// A call, created when absent, re-keyed by the key rules when they
	// say so. Whether the record may be taken in is the next statement's
	// to check (inCall): the first record of a call fixes its workspace,
	// as the dialer's first request does, and a call id of another
	// workspace is not touched here.
	sqlEnsureCall = `INSERT INTO calls (call_id, workspace_id, sort_at, sort_rank, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (call_id) DO UPDATE SET ` + keySet("excluded.sort_at", "excluded.sort_rank") + `, updated_at = excluded.updated_at
		WHERE calls.workspace_id = excluded.workspace_id AND ` + keyChanges("excluded.sort_at", "excluded.sort_rank")
	// The same for a record whose time is past the retention: only a call
	// that still exists is touched, none is created.
	sqlTouchCall = `UPDATE calls SET ` + keySet("CAST($3 AS BIGINT)", "CAST($4 AS SMALLINT)") + `, updated_at = $5
		WHERE call_id = $1 AND workspace_id = $2 AND ` + keyChanges("CAST($3 AS BIGINT)", "CAST($4 AS SMALLINT)")
	// inCall makes an insert of an event or attempt conditional on its
	// call existing in its workspace ($1 call id, $8 workspace).
	inCall = ` WHERE EXISTS (SELECT 1 FROM calls WHERE call_id = $1 AND workspace_id = $8)`

	sqlPutRequest = `INSERT INTO calls (call_id, workspace_id, sort_at, sort_rank, visible, call_agent_id, to_number,
			request, request_partition, request_offset, request_local, updated_at)
		VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (call_id) DO UPDATE SET ` + keySet("excluded.sort_at", "excluded.sort_rank") + `,
			visible = 1,
			call_agent_id = CASE WHEN calls.call_agent_id = '' THEN excluded.call_agent_id ELSE calls.call_agent_id END,
			to_number = excluded.to_number,
			request = excluded.request, request_partition = excluded.request_partition,
			request_offset = excluded.request_offset, request_local = excluded.request_local,
			status = CASE WHEN calls.status = 'scheduled' THEN 'queued' ELSE calls.status END,
			updated_at = excluded.updated_at
		WHERE calls.workspace_id = excluded.workspace_id AND ` +
		requestReplaces("excluded.request_partition", "excluded.request_offset", "excluded.request_local")
	sqlTouchRequest = `UPDATE calls SET ` + keySet("CAST($3 AS BIGINT)", "CAST($4 AS SMALLINT)") + `,
			visible = 1,
			call_agent_id = CASE WHEN calls.call_agent_id = '' THEN $5 ELSE calls.call_agent_id END,
			to_number = $6, request = $7, request_partition = $8, request_offset = $9, request_local = $10,
			status = CASE WHEN status = 'scheduled' THEN 'queued' ELSE status END, updated_at = $11
		WHERE call_id = $1 AND workspace_id = $2 AND ` +
		requestReplaces("CAST($8 AS INTEGER)", "CAST($9 AS BIGINT)", "CAST($10 AS SMALLINT)")

	sqlPutCancel = `UPDATE calls SET cancel = $3, updated_at = $4 WHERE call_id = $1 AND workspace_id = $2 AND cancel IS NULL`

	sqlInsertEvent = `INSERT INTO call_events (call_id, sequence, event_id, status, occurred_at, data, headers)
		SELECT $1, $2, $3, $4, $5, $6, $7` + inCall + ` ON CONFLICT (call_id, sequence) DO NOTHING`
	// The call's summary, after a new event: the status of the highest
	// sequence, the outcome and end facts of the ended event, the agent and
	// number when the request did not give them.
	sqlEventSummary = `UPDATE calls SET
			status = CASE WHEN CAST($3 AS INTEGER) > last_sequence AND $4 <> 'agent_report' THEN $4 ELSE status END,
			last_sequence = CASE WHEN CAST($3 AS INTEGER) > last_sequence THEN CAST($3 AS INTEGER) ELSE last_sequence END,
			visible = 1,
			outcome = CASE WHEN $4 = 'ended' THEN $5 ELSE outcome END,
			answered_at = CASE WHEN $4 = 'answered' THEN CAST($6 AS BIGINT) ELSE answered_at END,
			ended_at = CASE WHEN $4 = 'ended' THEN CAST($6 AS BIGINT) ELSE ended_at END,
			ring_seconds = CASE WHEN $4 = 'ended' THEN CAST($7 AS DOUBLE PRECISION) ELSE ring_seconds END,
			talk_seconds = CASE WHEN $4 = 'ended' THEN CAST($8 AS DOUBLE PRECISION) ELSE talk_seconds END,
			call_agent_id = CASE WHEN call_agent_id = '' THEN $9 ELSE call_agent_id END,
			to_number = CASE WHEN to_number = '' THEN $10 ELSE to_number END,
			updated_at = $11
		WHERE call_id = $1 AND workspace_id = $2`

	sqlInsertAttempt = `INSERT INTO webhook_deliveries (call_id, kafka_partition, kafka_offset, event_id, result, attempted_at, data)
		SELECT $1, $2, $3, $4, $5, $6, $7` + inCall + ` ON CONFLICT (call_id, kafka_partition, kafka_offset) DO NOTHING`

	sqlAdvanceOffset = `UPDATE consumed_offsets SET next_offset = $4, updated_at = $5
		WHERE group_id = $1 AND topic = $2 AND kafka_partition = $3 AND next_offset = $6`
	sqlFirstOffset = `INSERT INTO consumed_offsets (group_id, topic, kafka_partition, next_offset, updated_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id, topic, kafka_partition) DO NOTHING`
)

// ErrOffsetMoved: the stored position of a partition is not where the
// writer believed it was, so another consumer wrote it meanwhile (this one
// lost the partition in a rebalance and does not know yet). Its
// transaction is rolled back whole: the rows it would have written are the
// other consumer's to write.
var ErrOffsetMoved = errors.New("callrecords: the stored offset moved: another consumer owns the partition")

// NoOffset is what Offsets reports, and Advance takes as from, for a
// partition without a stored position.
const NoOffset int64 = -1

// Writer writes inside one transaction (Store.Write).
type Writer struct {
	s     *Store
	tx    *sql.Tx
	now   int64
	stmts map[string]*sql.Stmt
}

// Write runs fn in one transaction, committed when fn returns nil and
// rolled back otherwise: the recorder's rows and its offsets together, or
// nothing.
func (s *Store) Write(ctx context.Context, fn func(w *Writer) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("callrecords: begin: %w", err)
	}
	w := &Writer{s: s, tx: tx, now: s.opts.Now().UnixNano(), stmts: map[string]*sql.Stmt{}}
	defer func() {
		for _, st := range w.stmts {
			_ = st.Close()
		}
	}()
	if err := fn(w); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("callrecords: commit: %w", err)
	}
	return nil
}

// exec runs one of the statements above, prepared once per transaction,
// or once for the Store and once on each connection for hotWrites (a
// recorder batch runs each thousands of times, and preparing them again for
// every batch was a twentieth of its CPU).
func (w *Writer) exec(ctx context.Context, query string, args ...any) (int64, error) {
	st := w.stmts[query]
	if st == nil {
		if shared := w.s.prepared[query]; shared != nil {
			st = w.tx.StmtContext(ctx, shared)
		} else {
			var err error
			if st, err = w.tx.PrepareContext(ctx, query); err != nil {
				return 0, err
			}
		}
		w.stmts[query] = st
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// hotWrites are the statements of the recorder's every record.
var hotWrites = []string{sqlEnsureCall, sqlTouchCall, sqlPutRequest, sqlTouchRequest, sqlPutCancel,
	sqlInsertEvent, sqlEventSummary, sqlInsertAttempt, sqlAdvanceOffset, sqlFirstOffset}

// prepareWrites prepares hotWrites for the Store, before any transaction:
// preparing one inside a transaction would take a second connection while
// the transaction holds one, and with every connection of the pool in a
// writer queued for SQLite's write lock, the lock's holder would wait for
// a connection that never comes.
func (s *Store) prepareWrites(ctx context.Context) error {
	s.prepared = make(map[string]*sql.Stmt, len(hotWrites))
	for _, q := range hotWrites {
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("callrecords: prepare: %w", err)
		}
		s.prepared[q] = st
	}
	return nil
}

// fresh reports whether a call keyed at t may be created: it is within the
// retention.
func (w *Writer) fresh(t int64) bool {
	return w.s.opts.Retention <= 0 || w.now-t <= w.s.opts.Retention.Nanoseconds()
}

// ensureCall creates or re-keys the call; a call past the retention is
// not created.
func (w *Writer) ensureCall(ctx context.Context, id, ws string, at int64, rank int) error {
	q := sqlEnsureCall
	if !w.fresh(at) {
		q = sqlTouchCall
	}
	_, err := w.exec(ctx, q, text(id), text(ws), at, rank, w.now)
	return err
}

// PutRequest records a call.requested record: data is its value (the
// CloudEvent data as written), read at partition/offset of the requested
// topic, or (local) acknowledged to the ingest replica that wrote it and
// not yet read back. The call's first record in the topic is the one the
// dialer acts on; a later duplicate (a retry that reached another replica)
// changes nothing. It reports whether the store changed.
func (w *Writer) PutRequest(ctx context.Context, r *schemas.CallRequested, data []byte, partition int32, offset int64, local bool) (bool, error) {
	rank, loc := rankRequest, 0
	if local {
		rank, loc = rankLocal, 1
	}
	at := r.RequestedAt.UnixNano()
	q := sqlPutRequest
	if !w.fresh(at) {
		q = sqlTouchRequest
	}
	n, err := w.exec(ctx, q, text(r.CallID), text(r.WorkspaceID), at, rank, text(r.CallAgentID), text(r.To), data, partition, offset, loc, w.now)
	if err != nil {
		return false, fmt.Errorf("callrecords: put request of call %s: %w", r.CallID, err)
	}
	return n > 0, nil
}

// PutCancel notes the first cancel of a call (data is the call.cancel
// data). A cancel naming another workspace, or a call not known, is
// ignored, as the dialer ignores it.
func (w *Writer) PutCancel(ctx context.Context, c *schemas.CallCancel, data []byte) (bool, error) {
	n, err := w.exec(ctx, sqlPutCancel, text(c.CallID), text(c.WorkspaceID), data, w.now)
	if err != nil {
		return false, fmt.Errorf("callrecords: put cancel of call %s: %w", c.CallID, err)
	}
	return n > 0, nil
}

// PutEvent adds a lifecycle event: id is its ce_id, value and headers the
// record as it is on the events topic, ev its decoded value. An event whose
// sequence the call already has changes nothing (the dialer re-emits an
// event with the same sequence and id).
func (w *Writer) PutEvent(ctx context.Context, ev *schemas.CallEvent, id string, value []byte, headers []kgo.RecordHeader) (bool, error) {
	at, rank := ev.OccurredAt.UnixNano(), rankGuess
	if ev.RequestedAt != nil {
		at, rank = ev.RequestedAt.UnixNano(), rankDialer
	}
	if err := w.ensureCall(ctx, ev.CallID, ev.WorkspaceID, at, rank); err != nil {
		return false, wrapErr("put event", ev.CallID, err)
	}
	hb, err := encodeHeaders(headers)
	if err != nil {
		return false, wrapErr("put event", ev.CallID, err)
	}
	occurred := ev.OccurredAt.UnixNano()
	n, err := w.exec(ctx, sqlInsertEvent, text(ev.CallID), ev.Sequence, text(id), text(string(ev.Status)), occurred, value, hb, text(ev.WorkspaceID))
	if err != nil || n == 0 {
		return false, wrapErr("put event", ev.CallID, err)
	}
	var outcome any = ""
	if ev.Status == schemas.StatusEnded {
		outcome = text(string(ev.Outcome))
	}
	_, err = w.exec(ctx, sqlEventSummary, text(ev.CallID), text(ev.WorkspaceID), ev.Sequence, text(string(ev.Status)), outcome,
		occurred, nullFloat(ev.RingDurationSeconds), nullFloat(ev.TalkDurationSeconds), text(ev.CallAgentID), text(ev.To), w.now)
	if err != nil {
		return false, wrapErr("put event", ev.CallID, err)
	}
	return true, nil
}

// PutAttempt adds a webhook delivery attempt read at partition/offset of
// the deliveries topic (its identity: a replay changes nothing). Attempts
// alone do not make a call visible.
func (w *Writer) PutAttempt(ctx context.Context, a *schemas.WebhookAttempt, data []byte, partition int32, offset int64) (bool, error) {
	if err := w.ensureCall(ctx, a.CallID, a.WorkspaceID, a.AttemptedAt.UnixNano(), rankGuess); err != nil {
		return false, wrapErr("put delivery attempt", a.CallID, err)
	}
	n, err := w.exec(ctx, sqlInsertAttempt, text(a.CallID), partition, offset, text(a.EventID), text(string(a.Result)),
		a.AttemptedAt.UnixNano(), data, text(a.WorkspaceID))
	if err != nil {
		return false, wrapErr("put delivery attempt", a.CallID, err)
	}
	return n > 0, nil
}

// Advance moves the stored position of group on topic/partition from
// `from` (what the writer last read or wrote there; NoOffset when nothing
// was stored) to next, the offset after the last record this transaction
// wrote. Any other stored value fails the transaction with ErrOffsetMoved.
func (w *Writer) Advance(ctx context.Context, group, topic string, partition int32, from, next int64) error {
	var n int64
	var err error
	if from == NoOffset {
		n, err = w.exec(ctx, sqlFirstOffset, group, topic, partition, next, w.now)
	} else {
		n, err = w.exec(ctx, sqlAdvanceOffset, group, topic, partition, next, w.now, from)
	}
	if err != nil {
		return fmt.Errorf("callrecords: store offset %s/%d: %w", topic, partition, err)
	}
	if n != 1 {
		return fmt.Errorf("%w (%s/%d, expected %d)", ErrOffsetMoved, topic, partition, from)
	}
	return nil
}

// text makes a string from a record storable in a TEXT column on both
// engines: PostgreSQL refuses invalid UTF-8 and NUL, and a value it
// refuses would fail its whole batch again at every retry. JSON decoding
// already replaced invalid UTF-8; this covers headers and "\u0000".
func text(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func wrapErr(what, callID string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("callrecords: %s of call %s: %w", what, callID, err)
}

func nullFloat(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// PutRequest is Writer.PutRequest in a transaction of its own: what an
// ingest replica calls once Kafka acknowledged its request (local=true), so
// the call is visible there at once, before the recorder reads it back.
func (s *Store) PutRequest(ctx context.Context, r *schemas.CallRequested, data []byte, partition int32, offset int64, local bool) (bool, error) {
	var changed bool
	err := s.Write(ctx, func(w *Writer) error {
		var err error
		changed, err = w.PutRequest(ctx, r, data, partition, offset, local)
		return err
	})
	return changed, err
}

// PutCancel is Writer.PutCancel in a transaction of its own: what ingest
// calls once Kafka acknowledged a cancel, so its answer shows
// cancel_requested_at.
func (s *Store) PutCancel(ctx context.Context, c *schemas.CallCancel, data []byte) (bool, error) {
	var changed bool
	err := s.Write(ctx, func(w *Writer) error {
		var err error
		changed, err = w.PutCancel(ctx, c, data)
		return err
	})
	return changed, err
}
