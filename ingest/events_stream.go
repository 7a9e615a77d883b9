package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// GET /v1/api/events/stream: the workspace's call events as they happen,
// as Server-Sent Events (events_hub.go says where they come from and why).
//
//	: stream open
//
//	id: 9e3fec641caeb095874a890a-5
//	data: {"callId":"9e3fec641caeb095874a890a","id":"...","type":"dialstream.call.ended.v1","status":"ended","outcome":"busy",...}
//
//	: heartbeat
//
//	event: close
//	data: {"reason":"slow_consumer"}
//
// Each call event is one message of the default type, its id the event's
// CloudEvent id (the webhook-id of its deliveries), so a client can
// de-duplicate against its webhooks. A comment line every streamHeartbeat
// keeps proxies from closing an idle stream and lets the client tell a
// quiet workspace from a dead connection. The server ends a stream with an
// "event: close" message saying why: slow_consumer (the client fell
// streamQueue events behind) or shutdown; the client reconnects, and what
// happened in between is in GET /v1/api/calls.

const (
	// streamHeartbeat is the default gap between heartbeat comments.
	streamHeartbeat = 15 * time.Second
	// streamWriteTimeout bounds one write to the client. The server's
	// WriteTimeout is for a request's whole answer, which a stream does
	// not have; a client that takes no bytes for this long is gone.
	streamWriteTimeout = 10 * time.Second
	// streamRetryAfter is the Retry-After of a 429: streams end when
	// their clients go, which takes seconds, not milliseconds.
	streamRetryAfter = 5
)

// StreamEvent is the data of one message of the stream: a lifecycle event
// or agent report as GET /v1/api/call/:callId lists it, with the call's id,
// number (masked in a mask_phone_numbers workspace) and agent, and its
// campaign, contact and attempt when a campaign placed it.
type StreamEvent struct {
	CallID string `json:"callId"`
	CallEventView
	To          string `json:"to,omitempty"`
	CallAgentID string `json:"call_agent_id,omitempty"`
	CampaignID  string `json:"campaign_id,omitempty"`
	ContactID   string `json:"contact_id,omitempty"`
	Attempt     int    `json:"attempt,omitempty"`
}

// streamEvent is ev as a stream of its workspace shows it.
func streamEvent(ev *schemas.CallEvent, id, typ string, mask bool) StreamEvent {
	v := CallEventView{ID: id, Type: typ, Sequence: ev.Sequence, Status: ev.Status, OccurredAt: ev.OccurredAt.UTC(),
		Outcome: ev.Outcome, EndedBy: ev.EndedBy, Reason: ev.Reason, Errors: ev.Errors,
		SIPStatusCode: ev.SIPStatusCode, SIPStatus: ev.SIPStatus, DisconnectReason: ev.DisconnectReason,
		RingDurationSeconds: ev.RingDurationSeconds, TalkDurationSeconds: ev.TalkDurationSeconds,
		AnsweredBy: ev.AnsweredBy, Report: ev.Report, ReportReceivedAt: ev.ReportReceivedAt}
	to := ev.To
	if mask && to != "" {
		to = obs.MaskPhone(to)
	}
	return StreamEvent{CallID: ev.CallID, CallEventView: v, To: to, CallAgentID: ev.CallAgentID,
		CampaignID: ev.CampaignID, ContactID: ev.ContactID, Attempt: ev.Attempt}
}

// sseFrame is one event's message; its data is one line (JSON escapes
// every line break), so no field can inject another.
func (h *handler) sseFrame(ev *schemas.CallEvent, id, typ string) []byte {
	mask := false
	if ws, ok := h.reg.Workspace(ev.WorkspaceID); ok {
		mask = ws.MaskPhoneNumbers
	}
	b, _ := json.Marshal(streamEvent(ev, id, typ, mask))
	out := make([]byte, 0, len(b)+len(id)+16)
	if id != "" && validSSEField(id) {
		out = append(append(append(out, "id: "...), id...), '\n')
	}
	out = append(append(append(out, "data: "...), b...), "\n\n"...)
	return out
}

// validSSEField: a line of the stream must hold no line break.
func validSSEField(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\r' {
			return false
		}
	}
	return true
}

// streamEvents serves GET /v1/api/events/stream.
func (h *handler) streamEvents(c *gin.Context) {
	ws := workspaceOf(c)
	params, ferrs := readQuery(c.Request.URL.RawQuery, []string{"campaign_id"})
	campaign := ""
	for _, p := range params {
		if !callIDPattern.MatchString(p.value) {
			ferrs = append(ferrs, FieldError{Field: "campaign_id", Message: "must be a campaign id: 24 lowercase hex"})
		}
		campaign = p.value
	}
	if len(ferrs) > 0 {
		h.fail(c, badQuery(ferrs))
		return
	}
	ctx := c.Request.Context()
	sub, err := h.events.subscribe(ctx, ws.ID, campaign)
	switch {
	case errors.Is(err, errStreamsFull):
		h.fail(c, &apiError{code: http.StatusTooManyRequests, reason: reasonTooManyStreams, retryAfter: streamRetryAfter,
			message: fmt.Sprintf("workspace %s has its limit of %d event streams open on this server; close one, or retry after %ds", ws.ID, h.events.perWorkspace, streamRetryAfter)})
		return
	case errors.Is(err, errStreamsMax):
		// A 503, not the workspace's 429: the workspace is within its
		// share, this replica is full; another replica may have room.
		h.fail(c, &apiError{code: http.StatusServiceUnavailable, reason: reasonTooManyStreams, retryAfter: streamRetryAfter,
			message: fmt.Sprintf("this server has its limit of %d event streams open; retry after %ds", h.events.max, streamRetryAfter)})
		return
	case errors.Is(err, errStreamsClosed):
		h.fail(c, &apiError{code: http.StatusServiceUnavailable, reason: reasonStreamUnavailable, retryAfter: 1,
			message: "this server is not serving event streams now (shutting down); retry"})
		return
	case err != nil:
		h.log.WarnContext(ctx, "event stream not opened", "workspace_id", ws.ID, "error", err.Error())
		h.fail(c, &apiError{code: http.StatusServiceUnavailable, reason: reasonKafkaUnavailable, retryAfter: 2,
			message: "the event stream could not be opened: Kafka did not answer; retry later"})
		return
	}
	defer h.events.unsubscribe(sub)

	rc := http.NewResponseController(c.Writer)
	// The server's ReadTimeout would end the request's context while the
	// stream is still wanted (the connection's background read times out);
	// a stream reads nothing after its headers. Not every writer supports
	// deadlines (tests' recorders): then there is no server timeout either.
	_ = rc.SetReadDeadline(time.Time{})
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := c.Writer.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	hd := c.Writer.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // nginx: pass each message on at once
	c.Status(http.StatusOK)
	if !write([]byte(": stream open\n\n")) {
		return
	}
	h.log.InfoContext(ctx, "event stream opened", "workspace_id", ws.ID, "campaign_id", campaign)
	beat := time.NewTicker(h.events.heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-sub.frames:
			if !write(f) {
				return
			}
		case <-beat.C:
			if !write([]byte(": heartbeat\n\n")) {
				return
			}
		case <-sub.ended:
			h.log.InfoContext(ctx, "event stream ended by the server", "workspace_id", ws.ID, "reason", sub.why)
			// At shutdown the events already queued still go out (a
			// queue's worth at most); a slow client's are what it could
			// not take.
			for sub.why == closeShutdown && len(sub.frames) > 0 {
				if !write(<-sub.frames) {
					return
				}
			}
			write([]byte(`event: close` + "\n" + `data: {"reason":"` + sub.why + `"}` + "\n\n"))
			return
		}
	}
}
