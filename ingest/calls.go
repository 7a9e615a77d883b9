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

	"github.com/dialstream/dialstream/schemas"
)

// The call-state and control routes. Each answers from this replica's
// projection (store.go) after the same authentication as POST /v1/api/call
// (the group's authenticated middleware);
// a call of another workspace is answered exactly like a call that does not
// exist, in every route.

const (
	defaultListLimit = 50
	maxListLimit     = 200
	maxCancelReason  = 512 // the call.cancel.v1 schema's cap
)

// stateReady refuses to answer from a projection that is still loading: a
// call missing from it would be a wrong 404, not a missing call.
func (h *handler) stateReady() *apiError {
	if h.loaded == nil || h.loaded() {
		return nil
	}
	return &apiError{code: http.StatusServiceUnavailable, reason: reasonStateLoading, retryAfter: 1,
		message: "call state is still loading from Kafka on this replica; retry shortly"}
}

func callNotFound(id string) *apiError {
	id = schemas.Clip(strings.ToValidUTF8(id, ""), 64)
	return &apiError{code: http.StatusNotFound, reason: reasonUnknownCall, message: fmt.Sprintf("call %s not found", id)}
}

// getCall serves GET /v1/api/call/:callId.
func (h *handler) getCall(c *gin.Context) {
	ws := workspaceOf(c)
	if aerr := h.stateReady(); aerr != nil {
		h.fail(c, aerr)
		return
	}
	id := c.Param("callId")
	var out Call
	if !h.st.withCall(ws.ID, id, func(r *callRec) { out = r.full(ws.MaskPhoneNumbers) }) {
		h.fail(c, callNotFound(id))
		return
	}
	writeJSON(c, http.StatusOK, CallEnvelope{Status: "success", Call: out})
}

// listParams are the query parameters of GET /v1/api/calls.
var listParams = []string{"status", "outcome", "call_agent_id", "from", "to", "limit", "cursor"}

// listCalls serves GET /v1/api/calls.
func (h *handler) listCalls(c *gin.Context) {
	ws := workspaceOf(c)
	f, limit, ferrs := parseListQuery(c.Request.URL.RawQuery)
	if len(ferrs) > 0 {
		msg := "invalid query parameter " + ferrs[0].Field + ": " + ferrs[0].Message
		if len(ferrs) > 1 {
			msg = fmt.Sprintf("the request has %d invalid query parameters; see errors", len(ferrs))
		}
		h.fail(c, &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: msg, fields: ferrs})
		return
	}
	if aerr := h.stateReady(); aerr != nil {
		h.fail(c, aerr)
		return
	}
	out := CallList{Status: "success", Calls: make([]CallSummary, 0, limit)}
	next := h.st.list(ws.ID, f, limit, func(r *callRec) { out.Calls = append(out.Calls, r.summary(ws.MaskPhoneNumbers)) })
	if next != nil {
		out.NextCursor = encodeCursor(*next)
	}
	writeJSON(c, http.StatusOK, out)
}

// parseListQuery reads the list's query; unknown and repeated parameters
// are errors, so a misspelled filter never silently lists everything.
func parseListQuery(raw string) (listFilter, int, []FieldError) {
	var f listFilter
	limit := defaultListLimit
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return f, 0, []FieldError{{Field: "", Message: "the query string is not valid URL encoding: " + err.Error()}}
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := q[k]
		if !slices.Contains(listParams, k) {
			add(k, "unknown query parameter; the parameters are %s", strings.Join(listParams, ", "))
			continue
		}
		if len(vs) > 1 {
			add(k, "appears more than once; send each parameter once")
			continue
		}
		v := vs[0]
		switch k {
		case "status":
			if !slices.Contains(schemas.Statuses, schemas.Status(v)) {
				add(k, "must be one of queued, dialing, ringing, answered, ended; got %q", schemas.Clip(v, 64))
			}
			f.status = schemas.Status(v)
		case "outcome":
			if !slices.Contains(schemas.Outcomes, schemas.Outcome(v)) {
				add(k, "must be one of completed, busy, no_answer, declined, failed, canceled, rejected, expired, max_duration, voicemail, transferred, suppressed, outside_calling_hours, attempt_capped, destination_not_allowed; got %q", schemas.Clip(v, 64))
			}
			f.outcome = schemas.Outcome(v)
		case "call_agent_id":
			if !agentIDRE.MatchString(v) {
				add(k, "must be 1 to 64 letters, digits, _ or -")
			}
			f.agent = v
		case "from", "to":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				add(k, "must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z; got %q", schemas.Clip(v, 64))
			} else if k == "from" {
				f.from = t
			} else {
				f.to = t
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
			f.after = &key
		}
	}
	if !f.from.IsZero() && !f.to.IsZero() && !f.from.Before(f.to) {
		add("to", "must be later than from")
	}
	return f, limit, errs
}

// The cursor is the key of the last call of a page: its requested_at and
// id. It is opaque to clients (base64url), and carries no filter, so a
// client may keep or change its filters between pages.
func encodeCursor(k callKey) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(k.at, 10) + "." + k.id))
}

func decodeCursor(s string) (callKey, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return callKey{}, false
	}
	at, id, ok := strings.Cut(string(b), ".")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || !callIDPattern.MatchString(id) {
		return callKey{}, false
	}
	return callKey{at: n, id: id}, true
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
	if aerr == nil {
		aerr = h.stateReady()
	}
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	id := c.Param("callId")
	var cur Call
	if !h.st.withCall(ws.ID, id, func(r *callRec) { cur = r.full(ws.MaskPhoneNumbers) }) {
		h.fail(c, callNotFound(id))
		return
	}
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
	if err := h.produceAll(c.Request.Context(), rec); err != nil {
		h.log.WarnContext(c.Request.Context(), "cancel not written: Kafka did not acknowledge", "call_id", id, "workspace_id", ws.ID, "error", err.Error())
		h.fail(c, &apiError{code: http.StatusServiceUnavailable, reason: reasonKafkaUnavailable, retryAfter: 2,
			message: fmt.Sprintf("the cancel was not written: Kafka did not acknowledge it within %s; retry later (a repeated cancel is harmless)", h.cfg.Kafka.ProduceTimeout)})
		return
	}
	h.st.putCancel(&cc)
	h.st.withCall(ws.ID, id, func(r *callRec) { cur = r.full(ws.MaskPhoneNumbers) })
	h.log.InfoContext(c.Request.Context(), "call cancel requested", "call_id", id, "workspace_id", ws.ID, "status", cur.Status)
	writeJSON(c, http.StatusAccepted, CancelResponse{Status: "success", Call: cur,
		Message: fmt.Sprintf("cancel of call %s requested; the call ends with outcome canceled unless it ends otherwise first", id)})
}

// deliveries serves GET /v1/api/call/:callId/deliveries.
func (h *handler) deliveries(c *gin.Context) {
	ws := workspaceOf(c)
	if aerr := h.stateReady(); aerr != nil {
		h.fail(c, aerr)
		return
	}
	id := c.Param("callId")
	var out []Delivery
	if !h.st.withCall(ws.ID, id, func(r *callRec) { out = r.deliveryViews() }) {
		h.fail(c, callNotFound(id))
		return
	}
	writeJSON(c, http.StatusOK, DeliveryList{Status: "success", CallID: id, Deliveries: out})
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
	if aerr := h.stateReady(); aerr != nil {
		h.fail(c, aerr)
		return
	}
	id := c.Param("callId")
	var (
		recs     []*kgo.Record
		picked   []RedeliveredEvent
		callback string
		total    int
	)
	found := h.st.withCall(ws.ID, id, func(r *callRec) {
		total = len(r.events)
		if n := len(r.events); n > 0 {
			if ev, err := r.events[n-1].decode(); err == nil {
				callback = ev.CallbackURL
			}
		}
		for _, e := range r.events {
			if (eventID != "" && e.id != eventID) || (seq != 0 && e.seq != seq) {
				continue
			}
			recs = append(recs, schemas.RedeliveryRecord(e.rec.record(schemas.TopicEvents, r.id)))
			picked = append(picked, RedeliveredEvent{EventID: e.id, EventType: eventTypes[e.status], Sequence: e.seq, EventStatus: e.status})
		}
	})
	switch {
	case !found:
		h.fail(c, callNotFound(id))
		return
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
