package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/schemas"
)

// The call-state routes (get, list, cancel, deliveries, redeliver,
// export) read the call records database (internal/callrecords), which
// the recorder fills from Kafka and keeps for CALL_RECORDS_RETENTION.
// Ingest itself writes only what makes read-your-writes hold: its own
// acknowledged cancel, and its own acknowledged request when a read needs
// it before the recorder has written it (ownwrites.go). Nothing of the
// history is held in ingest's memory, so a replica starts at once, answers
// for every call of the retention, and answers every replica alike.
//
// The database keeps the records as they were written, not a rendering of
// them (callrecords/doc.go), and this file turns a stored call back into
// the callRec that view.go has always rendered: the answers are byte for
// byte what the in-memory projection this replaced gave.

// callRec is one call as the view renders it.
type callRec struct {
	id     string
	req    *requestFacts
	events []storedEvent // ascending sequence, one per sequence
	// outcome is the ended event's.
	outcome    schemas.Outcome
	deliveries []schemas.WebhookAttempt
	cancelAt   time.Time
	// scheduled: the call came from a call.scheduled record (start_at),
	// so its cancel must reach the scheduler too.
	scheduled bool
	// waiting: the scheduler has not released it yet (the only request
	// known is the one inside its call.scheduled record).
	waiting bool
}

// requestFacts is the call's request as the dialer took it.
type requestFacts struct {
	req       schemas.CallRequested
	partition int32
	offset    int64
}

// storedEvent is one lifecycle event of a call, with its record.
type storedEvent struct {
	id     string // ce_id: the webhook-id receivers saw
	seq    int
	status schemas.Status
	// at is occurred_at as written (its zone offset included): the view
	// renders some times without .UTC().
	at  time.Time
	rec callrecords.Event
}

// status is the status of the latest lifecycle event, the agent's reports
// passed over.
func (c *callRec) status() schemas.Status {
	for i := len(c.events) - 1; i >= 0; i-- {
		if s := c.events[i].status; s.Lifecycle() {
			return s
		}
	}
	if c.waiting {
		return statusScheduled
	}
	return schemas.StatusQueued
}

// statusScheduled is a call's status while the scheduler holds it: not a
// lifecycle status (no event says it), only the API's view.
const statusScheduled schemas.Status = "scheduled"

// decode returns a stored event's data.
func (e *storedEvent) decode() (schemas.CallEvent, error) {
	var ev schemas.CallEvent
	err := json.Unmarshal(e.rec.Value, &ev)
	return ev, err
}

// eventTypes maps a status to its CloudEvent type, without building the
// string for every event.
var eventTypes = func() map[schemas.Status]string {
	m := map[schemas.Status]string{}
	for _, s := range schemas.EventStatuses {
		m[s] = s.Type()
	}
	return m
}()

var callIDPattern = regexp.MustCompile(`^[0-9a-f]{24}$`)

// recOf turns a stored call into what the view renders, decoding the
// stored bytes with the types the projection used, so every value (zone
// offsets included) is the one it held.
func recOf(c *callrecords.Call) (*callRec, error) {
	r := &callRec{id: c.ID, outcome: c.Outcome, scheduled: c.StartAt != nil, waiting: c.Request != nil && c.Request.Scheduled}
	if c.Request != nil {
		rf := &requestFacts{partition: c.Request.Partition, offset: c.Request.Offset}
		if err := json.Unmarshal(c.Request.Data, &rf.req); err != nil {
			return nil, fmt.Errorf("ingest: stored request of call %s: %w", c.ID, err)
		}
		r.req = rf
	}
	if c.Cancel != nil {
		var cc schemas.CallCancel
		if err := json.Unmarshal(c.Cancel, &cc); err != nil {
			return nil, fmt.Errorf("ingest: stored cancel of call %s: %w", c.ID, err)
		}
		r.cancelAt = cc.RequestedAt
	}
	r.events = make([]storedEvent, 0, len(c.Events))
	for _, e := range c.Events {
		var at struct {
			OccurredAt time.Time `json:"occurred_at"`
		}
		if err := json.Unmarshal(e.Value, &at); err != nil {
			return nil, fmt.Errorf("ingest: stored event %s: %w", e.ID, err)
		}
		r.events = append(r.events, storedEvent{id: e.ID, seq: e.Sequence, status: e.Status, at: at.OccurredAt, rec: e})
	}
	return r, nil
}

// recordsTimeout bounds one database call of a route: past it the answer
// is a 503, not a request hanging on a database that does not answer.
const recordsTimeout = 10 * time.Second

// recordsUnavailable is the answer when the database fails: the call may
// well exist, so it must not be a 404.
func (h *handler) recordsUnavailable(ctx context.Context, err error) *apiError {
	h.log.WarnContext(ctx, "call records database failed", "error", err.Error())
	return &apiError{code: http.StatusServiceUnavailable, reason: reasonRecordsUnavailable, retryAfter: 2,
		message: "the call records database did not answer; retry shortly"}
}

// loadCall reads workspace ws's call id (with its deliveries when asked);
// a 404 when there is no such call in that workspace (missing and foreign
// look alike, to the byte).
func (h *handler) loadCall(ctx context.Context, ws, id string, deliveries bool) (*callRec, *apiError) {
	ctx, cancel := context.WithTimeout(ctx, recordsTimeout)
	defer cancel()
	if !callIDPattern.MatchString(id) {
		return nil, callNotFound(id) // no call has such an id: spare the database the question
	}
	if err := h.own.wait(ctx); err != nil {
		return nil, h.recordsUnavailable(ctx, err)
	}
	c, ok, err := h.st.Get(ctx, ws, id)
	if err != nil {
		return nil, h.recordsUnavailable(ctx, err)
	}
	if !ok {
		return nil, callNotFound(id)
	}
	r, err := recOf(c)
	if err != nil {
		return nil, h.recordsUnavailable(ctx, err)
	}
	if deliveries {
		ds, _, err := h.st.Deliveries(ctx, ws, id)
		if err != nil {
			return nil, h.recordsUnavailable(ctx, err)
		}
		for _, d := range ds {
			var a schemas.WebhookAttempt
			if err := json.Unmarshal(d.Data, &a); err != nil {
				return nil, h.recordsUnavailable(ctx, fmt.Errorf("ingest: stored delivery attempt of call %s: %w", id, err))
			}
			r.deliveries = append(r.deliveries, a)
		}
	}
	return r, nil
}
