package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dialstream/dialstream/schemas"
)

// The webhook triggered by the agent: POST /v1/agent/calls/:callId/reports.
//
// An agent reports what happened on its call (who answered, the result and
// transcript, custom events, a hang-up, a transfer) with the bearer token
// its dispatch carried. The token is the only credential accepted here: it
// is an HMAC of the call, its workspace and an expiry under a secret only
// ingest and the dialer hold (schemas.VerifyReportToken), so it cannot be
// moved to another call, and a workspace API key, which an agent never
// needs, opens nothing on this route. An accepted report is written to the
// call's partition as a command (acks=all) before the 202; the dialer
// applies it in order with the call's life, and it reaches the client's
// callback_url as a call.agent_report webhook carrying the request's
// metadata. A retried report (same id) is one event: the dialer keeps the
// ids it applied.
//
// The refusals, each of which writes nothing: 401 for a missing, malformed,
// foreign, expired or revoked token (one message for all, so a probe learns
// nothing); 404 when the call is not known here; 409 once the call ended
// longer ago than the post-call window; 400 for a body that is not JSON;
// 415 for another content type; 413 above maxReportBytes; 422 naming each
// field the agent.report.v1 schema refuses.

const (
	routeAgentReports = "/v1/agent/calls/:callId/reports"
	// maxReportBytes caps a report body: a result with a long transcript
	// (the schema allows 500 lines of 4 KiB) fits, and the command stays
	// well under Kafka's default 1 MiB record.
	maxReportBytes = 512 << 10
)

const (
	reasonBadReportToken reason = "bad_report_token"
	reasonReportTooLate  reason = "report_after_window"
)

var reportCallIDRE = regexp.MustCompile(`^[0-9a-f]{24}$`)

// ReportResponse is the answer to an accepted report.
type ReportResponse struct {
	Status   string `json:"status"`
	Message  string `json:"message"`
	CallID   string `json:"callId"`
	ReportID string `json:"reportId"`
}

func badReportToken() *apiError {
	return &apiError{code: http.StatusUnauthorized, reason: reasonBadReportToken,
		header:  http.Header{"Www-Authenticate": []string{`Bearer realm="dialstream-agent-reports"`}},
		message: "a valid report token for this call is required (Authorization: Bearer <the dispatch's report.token>)"}
}

// agentReport serves POST /v1/agent/calls/:callId/reports.
func (h *handler) agentReport(c *gin.Context) {
	id := c.Param("callId")
	tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || len(h.cfg.AgentReportSecrets) == 0 || !reportCallIDRE.MatchString(id) {
		h.fail(c, badReportToken())
		return
	}
	ws, err := schemas.VerifyReportToken(h.cfg.AgentReportSecrets, strings.TrimSpace(tok), id, h.now())
	if err != nil {
		h.fail(c, badReportToken())
		return
	}
	body, aerr := h.readBodyUpTo(c, maxReportBytes)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	rep, err := schemas.DecodeAgentReport(body)
	if err != nil {
		var ve *schemas.ValidationError
		if errors.As(err, &ve) && !malformedJSON(ve) {
			h.fail(c, invalidFields(schemaFields(ve)))
			return
		}
		h.fail(c, &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: "the body is not a JSON object: " + schemas.Clip(err.Error(), 200)})
		return
	}
	r, aerr := h.loadCall(c.Request.Context(), ws, id, false)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	cur := r.full(false)
	now := h.now().UTC()
	if cur.Status == schemas.StatusEnded && now.After(cur.EndedAt.Add(h.cfg.AgentReportWindow)) {
		h.fail(c, &apiError{code: http.StatusConflict, reason: reasonReportTooLate,
			message: fmt.Sprintf("call %s ended at %s; reports are taken until %s after the end", id, cur.EndedAt.UTC().Format(time.RFC3339), h.cfg.AgentReportWindow)})
		return
	}
	cmd := schemas.AgentReportReceived{CallID: id, WorkspaceID: ws, ReceivedAt: now, Report: rep}
	rec, err := schemas.NewRecord(schemas.TopicRequested, id, schemas.Meta{Type: schemas.TypeAgentReportReceived, Source: EventSource, Subject: id, Time: now}, cmd)
	if err != nil {
		h.log.ErrorContext(c.Request.Context(), "build agent report record", "call_id", id, "workspace_id", ws, "error", err)
		h.fail(c, &apiError{code: http.StatusInternalServerError, reason: reasonInternal, message: "internal error"})
		return
	}
	if err := h.produceAll(c.Request.Context(), rec); err != nil {
		h.log.WarnContext(c.Request.Context(), "agent report not written: Kafka did not acknowledge", "call_id", id, "workspace_id", ws, "error", err.Error())
		h.fail(c, &apiError{code: http.StatusServiceUnavailable, reason: reasonKafkaUnavailable, retryAfter: 2,
			message: "the report was not written: Kafka did not acknowledge it; retry with the same report id (a retried report is one event)"})
		return
	}
	h.m.agentReports.WithLabelValues(string(rep.Type)).Inc()
	h.log.InfoContext(c.Request.Context(), "agent report accepted", "call_id", id, "workspace_id", ws, "report_id", rep.ID, "type", rep.Type)
	writeJSON(c, http.StatusAccepted, ReportResponse{Status: "success", CallID: id, ReportID: rep.ID,
		Message: fmt.Sprintf("report %s (%s) accepted for call %s", rep.ID, rep.Type, id)})
}

// malformedJSON tells a body that is not JSON at all from one the schema
// refuses: the validator reports the former without a field.
func malformedJSON(ve *schemas.ValidationError) bool {
	return len(ve.Fields) == 1 && ve.Fields[0].Field == "/" && strings.HasPrefix(ve.Fields[0].Message, "not valid JSON")
}
