package ingest

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// FieldError locates one problem in a request body. Field is the JSON name
// of the top-level field, or "dynamic_variables.<key>" for one variable.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Status  string       `json:"status"` // always "error"
	Message string       `json:"message"`
	Errors  []FieldError `json:"errors,omitempty"`
	// Call is the call a refusal is about, where it explains the refusal:
	// cancelling a call that already ended (409) shows it with its outcome.
	Call *Call `json:"call,omitempty"`
	// Rule is the compliance rule that refused a call (422): suppressed,
	// destination_not_allowed, outside_calling_hours.
	Rule string `json:"rule,omitempty"`
	// NextAllowedAt is, for outside_calling_hours, the earliest instant
	// (RFC 3339) at which the same call would pass.
	NextAllowedAt string `json:"next_allowed_at,omitempty"`
}

// CallResponse is the body of an accepted POST /v1/api/call.
type CallResponse struct {
	Status   string `json:"status"` // always "success"
	Message  string `json:"message"`
	CallID   string `json:"callId"`
	RoomName string `json:"roomName"`
	// JobID is "<partition>-<offset>" of the call's record in
	// dialstream.calls.requested: with the topic name it names exactly one
	// Kafka record, the job the dialer consumes.
	JobID string `json:"jobId"`
}

// reason says why a request was refused; it labels
// dialstream_ingest_calls_rejected_total, so the set is closed.
type reason string

const (
	reasonMalformed          reason = "malformed_request"
	reasonUnauthenticated    reason = "unauthenticated"
	reasonForbidden          reason = "forbidden"
	reasonRateLimited        reason = "rate_limited"
	reasonUnsupportedMedia   reason = "unsupported_media_type"
	reasonBodyTooLarge       reason = "body_too_large"
	reasonInvalidField       reason = "invalid_field"
	reasonUnknownAgent       reason = "unknown_agent"
	reasonIdempotencyBusy    reason = "idempotency_in_flight"
	reasonIdempotencyReused  reason = "idempotency_key_reused"
	reasonKafkaUnavailable   reason = "kafka_unavailable"
	reasonMethodNotAllowed   reason = "method_not_allowed"
	reasonNotFoundRoute      reason = "no_such_route"
	reasonInternal           reason = "internal"
	reasonIdempotencyInvalid reason = "invalid_idempotency_key"
	reasonUnknownCall        reason = "unknown_call"
	reasonCallEnded          reason = "call_ended"
	reasonRecordsUnavailable reason = "records_unavailable"
	reasonUnknownEvent       reason = "unknown_event"
	reasonNothingToRedeliver reason = "nothing_to_redeliver"
	reasonComplianceRefused  reason = "compliance_refused"
	reasonComplianceLoading  reason = "compliance_loading"
	reasonUnknownCampaign    reason = "unknown_campaign"
	reasonCampaignEnded      reason = "campaign_ended"
	reasonTooManyStreams     reason = "too_many_streams"
	reasonStreamUnavailable  reason = "stream_unavailable"
)

var reasons = []reason{reasonMalformed, reasonUnauthenticated, reasonForbidden, reasonRateLimited,
	reasonUnsupportedMedia, reasonBodyTooLarge, reasonInvalidField, reasonUnknownAgent, reasonIdempotencyBusy,
	reasonIdempotencyReused, reasonKafkaUnavailable, reasonMethodNotAllowed, reasonNotFoundRoute, reasonInternal,
	reasonIdempotencyInvalid, reasonUnknownCall, reasonCallEnded, reasonRecordsUnavailable, reasonUnknownEvent,
	reasonNothingToRedeliver, reasonComplianceRefused, reasonComplianceLoading, reasonUnknownSuppression,
	reasonBadReportToken, reasonReportTooLate, reasonOverloaded, reasonUnknownCampaign, reasonCampaignEnded,
	reasonTooManyStreams, reasonStreamUnavailable}

// apiError is a refusal on its way to the client.
type apiError struct {
	code       int
	reason     reason
	message    string
	fields     []FieldError
	retryAfter int // seconds; 0 = no Retry-After header
	header     http.Header
	call       *Call
	rule       string
	nextAt     string
}

func (e *apiError) Error() string { return e.message }

func writeJSON(c *gin.Context, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types reach here; they always marshal
		code, b = http.StatusInternalServerError, []byte(`{"status":"error","message":"internal error"}`)
	}
	c.Data(code, "application/json; charset=utf-8", b)
}

func (h *handler) fail(c *gin.Context, e *apiError) {
	for k, vs := range e.header {
		for _, v := range vs {
			c.Writer.Header().Add(k, v)
		}
	}
	if e.retryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(e.retryAfter))
	}
	h.m.rejected.WithLabelValues(string(e.reason)).Inc()
	writeJSON(c, e.code, ErrorResponse{Status: "error", Message: e.message, Errors: e.fields, Call: e.call, Rule: e.rule, NextAllowedAt: e.nextAt})
	c.Abort()
}
