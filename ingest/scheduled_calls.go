package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/schemas"
)

// Scheduled single calls: POST /v1/api/call with start_at, or with
// defer_to_calling_hours. The call is not written to calls.requested: a
// call.scheduled record (key = call id, the whole request inside) goes to
// dialstream.campaigns.commands, and the scheduler writes the request at
// start_at (with the deferral, not before the callee's calling hours allow
// it). The answer is the seed's, with status "scheduled"; its jobId names
// the call.scheduled record on the commands topic.

// maxScheduleAhead bounds start_at: a call booked further out is more likely
// a mistake (a year typed wrong) than a plan, and the scheduler holds every
// waiting call in its state.
const maxScheduleAhead = 30 * 24 * time.Hour

// checkStartAt refuses a start_at in the past or too far ahead.
func checkStartAt(t, now time.Time) []FieldError {
	switch {
	case !t.After(now):
		return []FieldError{{Field: "start_at", Message: "must be in the future; leave start_at out to call now"}}
	case t.Sub(now) > maxScheduleAhead:
		return []FieldError{{Field: "start_at", Message: fmt.Sprintf("must be at most %d days ahead", int(maxScheduleAhead/(24*time.Hour)))}}
	}
	return nil
}

// scheduledStart is when a scheduled call is due; false for a call placed
// now. defer_to_calling_hours alone means "now, or as soon as the hours
// allow".
func scheduledStart(req *callRequest, now time.Time) (time.Time, bool) {
	switch {
	case req.StartAt != nil:
		return *req.StartAt, true
	case req.DeferToCallingHours:
		return now, true
	}
	return time.Time{}, false
}

// deferrable reports whether a compliance refusal does not apply to a
// scheduled call: its calling hours are judged when it is due (by the
// scheduler under defer_to_calling_hours, else by the dialer at the dial),
// not now. Suppression and destination refusals hold whenever it is due.
func deferrable(req *callRequest, aerr *apiError) bool {
	_, scheduled := scheduledStart(req, time.Time{})
	return scheduled && aerr.rule == string(schemas.OutcomeOutsideCallingHours)
}

func scheduledRecord(data *schemas.CallRequested, startAt time.Time, deferToHours bool) (*kgo.Record, *schemas.CallScheduled, error) {
	cs := &schemas.CallScheduled{Request: *data, StartAt: startAt, DeferToCallingHours: deferToHours, ScheduledAt: data.RequestedAt}
	rec, err := schemas.NewRecord(schemas.TopicCampaignCommands, data.CallID,
		schemas.Meta{Type: schemas.TypeCallScheduled, Source: EventSource, Subject: data.CallID}, cs)
	return rec, cs, err
}

// putOwnScheduled writes this replica's acknowledged call.scheduled into
// the call records, as the recorder will (status scheduled), for
// read-your-writes. Unlike a request it is written at once, not group
// committed: scheduled calls are few, and a failure costs only
// read-your-writes (the record is durable; the recorder adds it).
func (h *handler) putOwnScheduled(ctx context.Context, cs *schemas.CallScheduled, rec *kgo.Record, logAttrs []any) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordsTimeout)
	defer cancel()
	err := h.st.Write(wctx, func(w *callrecords.Writer) error {
		_, err := w.PutScheduled(wctx, cs, rec.Value, rec.Partition, rec.Offset)
		return err
	})
	if err != nil {
		h.log.WarnContext(ctx, "scheduled call written to Kafka but not to the call records yet; the recorder adds it", append(logAttrs, "error", err.Error())...)
	}
}

func scheduledMessage(req *callRequest, to string, startAt time.Time) string {
	msg := fmt.Sprintf("Outbound call job scheduled for agent %s to number %s at %s", req.CallAgentID, to, startAt.UTC().Format(time.RFC3339))
	if req.DeferToCallingHours {
		msg += ", or the next time the workspace's calling hours allow it"
	}
	return msg
}

// cancelRecord is the call.cancel for the scheduler: before the release it
// makes the scheduler release the call already canceled; after, it is
// forwarded behind the release. Written next to the dialer's cancel, which
// covers a call the scheduler released already.
func scheduledCancelRecord(cc *schemas.CallCancel) (*kgo.Record, error) {
	return schemas.NewRecord(schemas.TopicCampaignCommands, cc.CallID,
		schemas.Meta{Type: schemas.TypeCallCancel, Source: EventSource, Subject: cc.CallID}, cc)
}

// ownScheduled remembers the calls this replica scheduled (bounded, oldest
// forgotten first), so their cancel reaches the scheduler even before the
// call records show the call as scheduled.
type ownScheduled struct {
	mu    sync.Mutex
	ws    map[string]string
	order []string
}

const maxOwnScheduled = 100_000

func newOwnScheduled() *ownScheduled { return &ownScheduled{ws: map[string]string{}} }

func (o *ownScheduled) add(callID, ws string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.ws[callID]; ok {
		return
	}
	o.ws[callID] = ws
	o.order = append(o.order, callID)
	if len(o.order) > maxOwnScheduled {
		delete(o.ws, o.order[0])
		o.order = o.order[1:]
	}
}

func (o *ownScheduled) has(ws, callID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ws[callID] == ws
}
