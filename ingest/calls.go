package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/schemas"
)

// The call-state and control routes. Each answers from the call records
// database (records.go) after the same authentication as POST /v1/api/call
// (the group's authenticated middleware);
// a call of another workspace is answered exactly like a call that does not
// exist, in every route.

const (
	defaultListLimit = 50
	maxListLimit     = 200
	maxCancelReason  = 512 // the call.cancel.v1 schema's cap
)

func callNotFound(id string) *apiError {
	id = schemas.Clip(strings.ToValidUTF8(id, ""), 64)
	return &apiError{code: http.StatusNotFound, reason: reasonUnknownCall, message: fmt.Sprintf("call %s not found", id)}
}

// getCall serves GET /v1/api/call/:callId.
func (h *handler) getCall(c *gin.Context) {
	ws := workspaceOf(c)
	id := c.Param("callId")
	r, aerr := h.loadCall(c.Request.Context(), ws.ID, id, false)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	writeJSON(c, http.StatusOK, CallEnvelope{Status: "success", Call: r.full(ws.MaskPhoneNumbers)})
}

// listParams are the query parameters of GET /v1/api/calls.
var listParams = []string{"status", "outcome", "call_agent_id", "from", "to", "limit", "cursor"}

// listCalls serves GET /v1/api/calls.
func (h *handler) listCalls(c *gin.Context) {
	ws := workspaceOf(c)
	f, limit, ferrs := parseListQuery(c.Request.URL.RawQuery)
	if len(ferrs) > 0 {
		h.fail(c, badQuery(ferrs))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), recordsTimeout)
	defer cancel()
	err := h.own.wait(ctx)
	var calls []callrecords.Call
	var next *callrecords.Key
	if err == nil {
		calls, next, err = h.st.List(ctx, ws.ID, f, limit)
	}
	if err != nil {
		h.fail(c, h.recordsUnavailable(ctx, err))
		return
	}
	out := CallList{Status: "success", Calls: make([]CallSummary, 0, limit)}
	for i := range calls {
		r, err := recOf(&calls[i])
		if err != nil {
			h.fail(c, h.recordsUnavailable(ctx, err))
			return
		}
		out.Calls = append(out.Calls, r.summary(ws.MaskPhoneNumbers))
	}
	if next != nil {
		out.NextCursor = encodeCursor(*next)
	}
	writeJSON(c, http.StatusOK, out)
}

// queryParam is one parameter of a query string.
type queryParam struct{ key, value string }

// readQuery reads a query of the known parameters, each sent at most once,
// in key order; every unknown or repeated parameter is an error, so a
// misspelled filter never silently selects everything.
func readQuery(raw string, known []string) ([]queryParam, []FieldError) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, []FieldError{{Field: "", Message: "the query string is not valid URL encoding: " + err.Error()}}
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var (
		out  []queryParam
		errs []FieldError
	)
	for _, k := range keys {
		switch {
		case !slices.Contains(known, k):
			errs = append(errs, FieldError{Field: k, Message: "unknown query parameter; the parameters are " + strings.Join(known, ", ")})
		case len(q[k]) > 1:
			errs = append(errs, FieldError{Field: k, Message: "appears more than once; send each parameter once"})
		default:
			out = append(out, queryParam{k, q[k][0]})
		}
	}
	return out, errs
}

// sortByField orders one error per parameter by the parameter's name, the
// order the query's errors have always been listed in.
func sortByField(errs []FieldError) {
	slices.SortStableFunc(errs, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
}

// badQuery is the 400 for a query's field errors.
func badQuery(ferrs []FieldError) *apiError {
	msg := "invalid query parameter " + ferrs[0].Field + ": " + ferrs[0].Message
	if len(ferrs) > 1 {
		msg = fmt.Sprintf("the request has %d invalid query parameters; see errors", len(ferrs))
	}
	return &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: msg, fields: ferrs}
}

// parseListQuery reads the list's query.
func parseListQuery(raw string) (callrecords.Filter, int, []FieldError) {
	var f callrecords.Filter
	limit := defaultListLimit
	params, errs := readQuery(raw, listParams)
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	for _, p := range params {
		k, v := p.key, p.value
		switch k {
		case "status":
			if !slices.Contains(schemas.Statuses, schemas.Status(v)) {
				add(k, "must be one of queued, dialing, ringing, answered, ended; got %q", schemas.Clip(v, 64))
			}
			f.Status = schemas.Status(v)
		case "outcome":
			if !slices.Contains(schemas.Outcomes, schemas.Outcome(v)) {
				add(k, "must be one of completed, busy, no_answer, declined, failed, canceled, rejected, expired, max_duration, voicemail, transferred, suppressed, outside_calling_hours, attempt_capped, destination_not_allowed; got %q", schemas.Clip(v, 64))
			}
			f.Outcome = schemas.Outcome(v)
		case "call_agent_id":
			if !agentIDRE.MatchString(v) {
				add(k, "must be 1 to 64 letters, digits, _ or -")
			}
			f.Agent = v
		case "from", "to":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				add(k, "must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z; got %q", schemas.Clip(v, 64))
			} else if k == "from" {
				f.From = t
			} else {
				f.To = t
			}
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxListLimit {
				add(k, "must be an integer from 1 to %d; got %q", maxListLimit, schemas.Clip(v, 64))
			}
			limit = n
		case "cursor":
			key, ok := decodeCursor(v)
			if !ok {
				add(k, "is not a cursor this API returned; pass next_cursor from the previous page as it is")
			}
			f.After = &key
		}
	}
	sortByField(errs)
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		add("to", "must be later than from")
	}
	return f, limit, errs
}

// The cursor is the key of the last call of a page: its requested_at and
// id. It is opaque to clients (base64url), and carries no filter, so a
// client may keep or change its filters between pages.
func encodeCursor(k callrecords.Key) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(k.At, 10) + "." + k.ID))
}

func decodeCursor(s string) (callrecords.Key, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return callrecords.Key{}, false
	}
	at, id, ok := strings.Cut(string(b), ".")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || !callIDPattern.MatchString(id) {
		return callrecords.Key{}, false
	}
	return callrecords.Key{At: n, ID: id}, true
}

// cancelCall serves POST /v1/api/call/:callId/cancel: it writes a
// dialstream.call.cancel.v1 command next to the call's request (key = call
// id, acks=all), which the dialer applies in order: a queued call ends
// canceled without being dialed, a live one is hung up. 202 means the
// command is durable; the call's end follows as its ended event.
func (h *handler) cancelCall(c *gin.Context) {
	ws := workspaceOf(c)
	if aerr := h.admit(ws); aerr != nil {
		h.fail(c, aerr)
		return
	}
	members, aerr := h.optionalBody(c, []string{"reason"})
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	var reason string
	if raw, ok := members["reason"]; ok && !isNull(raw) {
		s, ok := jsonString(raw)
		switch {
		case !ok:
			aerr = invalidFields([]FieldError{{Field: "reason", Message: "must be a string, got " + jsonKind(raw)}})
		case utf8.RuneCountInString(s) > maxCancelReason:
			aerr = invalidFields([]FieldError{{Field: "reason", Message: fmt.Sprintf("must be at most %d characters", maxCancelReason)}})
		}
		reason = s
	}
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	id := c.Param("callId")
	r, aerr := h.loadCall(c.Request.Context(), ws.ID, id, false)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	cur := r.full(ws.MaskPhoneNumbers)
	if cur.Status == schemas.StatusEnded {
		h.fail(c, &apiError{code: http.StatusConflict, reason: reasonCallEnded, call: &cur,
			message: fmt.Sprintf("call %s already ended with outcome %s; there is nothing to cancel", id, cur.Outcome)})
		return
	}
	cc := schemas.CallCancel{CallID: id, WorkspaceID: ws.ID, Reason: reason, RequestedAt: time.Now().UTC()}
	rec, err := schemas.NewRecord(schemas.TopicRequested, id, schemas.Meta{Type: schemas.TypeCallCancel, Source: EventSource, Subject: id}, cc)
	if err != nil {
		h.log.ErrorContext(c.Request.Context(), "build call.cancel record", "call_id", id, "workspace_id", ws.ID, "error", err)
		h.fail(c, &apiError{code: http.StatusInternalServerError, reason: reasonInternal, message: "internal error"})
		return
	}
	recs := []*kgo.Record{rec}
	if r.scheduled || h.scheduled.has(ws.ID, id) {
		srec, err := scheduledCancelRecord(&cc)
		if err != nil {
			h.log.ErrorContext(c.Request.Context(), "build call.cancel record for the scheduler", "call_id", id, "workspace_id", ws.ID, "error", err)
			h.fail(c, &apiError{code: http.StatusInternalServerError, reason: reasonInternal, message: "internal error"})
			return
		}
		recs = append(recs, srec)
	}
	if err := h.produceAll(c.Request.Context(), recs...); err != nil {
		h.log.WarnContext(c.Request.Context(), "cancel not written: Kafka did not acknowledge", "call_id", id, "workspace_id", ws.ID, "error", err.Error())
		h.fail(c, &apiError{code: http.StatusServiceUnavailable, reason: reasonKafkaUnavailable, retryAfter: 2,
			message: fmt.Sprintf("the cancel was not written: Kafka did not acknowledge it within %s; retry later (a repeated cancel is harmless)", h.cfg.Kafka.ProduceTimeout)})
		return
	}
	// The cancel is durable: its answer shows cancel_requested_at, as the
	// call will once the recorder reads the cancel back. A database that
	// fails now only delays that (logged); it must not turn a written
	// cancel into an error the client would retry.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), recordsTimeout)
	defer cancel()
	if _, err := h.st.PutCancel(wctx, &cc, rec.Value); err != nil {
		h.log.WarnContext(wctx, "cancel written to Kafka but not to the call records yet; the recorder adds it", "call_id", id, "workspace_id", ws.ID, "error", err.Error())
	}
	if r, aerr := h.loadCall(wctx, ws.ID, id, false); aerr == nil {
		cur = r.full(ws.MaskPhoneNumbers)
	} else if cur.CancelRequestedAt.IsZero() {
		cur.CancelRequestedAt = cc.RequestedAt
	}
	h.log.InfoContext(c.Request.Context(), "call cancel requested", "call_id", id, "workspace_id", ws.ID, "status", cur.Status)
	writeJSON(c, http.StatusAccepted, CancelResponse{Status: "success", Call: cur,
		Message: fmt.Sprintf("cancel of call %s requested; the call ends with outcome canceled unless it ends otherwise first", id)})
}

// deliveries serves GET /v1/api/call/:callId/deliveries.
func (h *handler) deliveries(c *gin.Context) {
	ws := workspaceOf(c)
	id := c.Param("callId")
	r, aerr := h.loadCall(c.Request.Context(), ws.ID, id, true)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	writeJSON(c, http.StatusOK, DeliveryList{Status: "success", CallID: id, Deliveries: r.deliveryViews()})
}

// redeliver serves POST /v1/api/call/:callId/redeliver: the call's events
// (all, or the one named by event_id or sequence) go again to the
// notifier's redelivery topic as the original CloudEvent records, which it
// delivers with a fresh retry budget and their original webhook-id.
func (h *handler) redeliver(c *gin.Context) {
	ws := workspaceOf(c)
	if aerr := h.admit(ws); aerr != nil {
		h.fail(c, aerr)
		return
	}
	members, aerr := h.optionalBody(c, []string{"event_id", "sequence"})
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	var eventID string
	var seq int
	var ferrs []FieldError
	if raw, ok := members["event_id"]; ok && !isNull(raw) {
		s, ok := jsonString(raw)
		if !ok || s == "" || len(s) > 256 {
			ferrs = append(ferrs, FieldError{Field: "event_id", Message: "must be a non-empty string of at most 256 bytes: the id of one of the call's events"})
		}
		eventID = s
	}
	if raw, ok := members["sequence"]; ok && !isNull(raw) {
		n, err := strconv.Atoi(string(raw))
		if err != nil || n < 1 {
			ferrs = append(ferrs, FieldError{Field: "sequence", Message: "must be an integer >= 1: the sequence number of one of the call's events"})
		}
		seq = n
	}
	if len(ferrs) == 0 && eventID != "" && seq != 0 {
		ferrs = append(ferrs, FieldError{Field: "sequence", Message: "send event_id or sequence, not both"})
	}
	if len(ferrs) > 0 {
		h.fail(c, invalidFields(ferrs))
		return
	}
	id := c.Param("callId")
	r, aerr := h.loadCall(c.Request.Context(), ws.ID, id, false)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	var (
		recs     []*kgo.Record
		picked   []RedeliveredEvent
		callback string
	)
	total := len(r.events)
	if total > 0 {
		if ev, err := r.events[total-1].decode(); err == nil {
			callback = ev.CallbackURL
		}
	}
	for _, e := range r.events {
		if (eventID != "" && e.id != eventID) || (seq != 0 && e.seq != seq) {
			continue
		}
		recs = append(recs, schemas.RedeliveryRecord(e.rec.Record(r.id)))
		picked = append(picked, RedeliveredEvent{EventID: e.id, EventType: eventTypes[e.status], Sequence: e.seq, EventStatus: e.status})
	}
	switch {
	case total == 0:
		h.fail(c, &apiError{code: http.StatusConflict, reason: reasonNothingToRedeliver,
			message: fmt.Sprintf("call %s has no lifecycle events yet; there is nothing to redeliver", id)})
		return
	case callback == "":
		h.fail(c, &apiError{code: http.StatusConflict, reason: reasonNothingToRedeliver,
			message: fmt.Sprintf("call %s has no callback_url; its events are not delivered anywhere", id)})
		return
	case len(recs) == 0 && eventID != "":
		h.fail(c, &apiError{code: http.StatusNotFound, reason: reasonUnknownEvent,
			message: fmt.Sprintf("call %s has no event %s", id, schemas.Clip(eventID, 256)),
			fields:  []FieldError{{Field: "event_id", Message: "not an event of this call"}}})
		return
	case len(recs) == 0:
		h.fail(c, &apiError{code: http.StatusNotFound, reason: reasonUnknownEvent,
			message: fmt.Sprintf("call %s has no event with sequence %d", id, seq),
			fields:  []FieldError{{Field: "sequence", Message: "not the sequence of an event of this call"}}})
		return
	}
	for _, r := range recs {
		r.Context = h.redeliveryTrace(c.Request.Context(), r)
	}
	if err := h.produceAll(c.Request.Context(), recs...); err != nil {
		h.log.WarnContext(c.Request.Context(), "redelivery not written: Kafka did not acknowledge", "call_id", id, "workspace_id", ws.ID, "error", err.Error())
		h.fail(c, &apiError{code: http.StatusServiceUnavailable, reason: reasonKafkaUnavailable, retryAfter: 2,
			message: fmt.Sprintf("the redelivery was not written: Kafka did not acknowledge it within %s; retry later (receivers de-duplicate on webhook-id, so a repeat is harmless)", h.cfg.Kafka.ProduceTimeout)})
		return
	}
	h.log.InfoContext(c.Request.Context(), "call events queued for redelivery", "call_id", id, "workspace_id", ws.ID, "events", len(picked))
	noun := "events"
	if len(picked) == 1 {
		noun = "event"
	}
	writeJSON(c, http.StatusAccepted, RedeliverResponse{Status: "success", CallID: id, Events: picked,
		Message: fmt.Sprintf("%d %s of call %s queued for redelivery with their original webhook-id", len(picked), noun, id)})
}

// optionalBody reads a body that may be absent (no body, or only
// whitespace) or a JSON object with only the known members; the same
// rules as POST /v1/api/call's body otherwise (415, 413, 400, 422).
func (h *handler) optionalBody(c *gin.Context, known []string) (map[string]json.RawMessage, *apiError) {
	if c.Request.ContentLength == 0 {
		return nil, nil
	}
	if c.GetHeader("Content-Type") == "" {
		// No type: fine if there is nothing to type.
		b, err := io.ReadAll(io.LimitReader(c.Request.Body, h.cfg.MaxBodyBytes+1))
		if err == nil && len(bytes.TrimSpace(b)) == 0 {
			return nil, nil
		}
		_, aerr := h.readBody(c)
		return nil, aerr
	}
	body, aerr := h.readBody(c)
	if aerr != nil {
		return nil, aerr
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	var probe json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: syntaxMessage(err)}
	}
	members, dups, ok := readObject(probe)
	if !ok {
		return nil, &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: "request body must be a JSON object, got " + jsonKind(probe)}
	}
	var errs []FieldError
	for _, k := range dups {
		errs = append(errs, FieldError{Field: k, Message: "appears more than once; send each field once"})
	}
	out := make(map[string]json.RawMessage, len(members))
	for _, m := range members {
		if !slices.Contains(known, m.key) {
			errs = append(errs, FieldError{Field: m.key, Message: "unknown field; the fields are " + strings.Join(known, ", ")})
			continue
		}
		out[m.key] = m.val
	}
	if len(errs) > 0 {
		return nil, invalidFields(errs)
	}
	return out, nil
}

// produceAll writes recs with acks=all and waits for every acknowledgement,
// for at most the produce timeout; a client hanging up does not cut it
// short.
func (h *handler) produceAll(ctx context.Context, recs ...*kgo.Record) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.Kafka.ProduceTimeout)
	defer cancel()
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			res, timedOut, _ := produce(pctx, h.p, r)
			h.m.observeProduce(start, res.err, timedOut)
			errs[i] = res.err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
