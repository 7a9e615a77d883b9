package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/schemas"
)

// The do-not-call list routes. Each workspace sees and changes only its own
// list: the table is keyed by workspace, so another workspace's number is
// simply absent (404), never "forbidden". A write is answered only after
// Kafka acknowledged it (acks=all) and this process's table holds it, so a
// call right after a 2xx PUT is refused (read-your-writes).

// Suppression is one listed number as the API shows it.
type Suppression struct {
	Number  string `json:"number"`
	Reason  string `json:"reason"`
	AddedAt string `json:"added_at"`
}

// SuppressionList is a page of GET /v1/api/suppressions.
type SuppressionList struct {
	Suppressions []Suppression `json:"suppressions"`
	// NextCursor, when present, fetches the next page (numbers sort in a
	// fixed order, so pages never skip or repeat an entry that stays).
	NextCursor string `json:"next_cursor,omitempty"`
}

const (
	reasonUnknownSuppression reason = "unknown_suppression"
	maxSuppressionPage              = 1000
	defaultSuppressionPage          = 100
)

func suppressionView(e compliance.Entry) Suppression {
	return Suppression{Number: e.Number, Reason: string(e.Reason), AddedAt: e.AddedAt.UTC().Format(time.RFC3339)}
}

// suppressionsReady answers 503 while the list is loading: a read would be
// incomplete, and a write could not be read back.
func (h *handler) suppressionsReady(c *gin.Context) bool {
	if h.cfg.Suppressions.Ready() {
		return true
	}
	h.fail(c, &apiError{code: http.StatusServiceUnavailable, reason: reasonComplianceLoading, retryAfter: 1,
		message: "the do-not-call list is still loading; retry shortly"})
	return false
}

// pathNumber normalizes the {number} path parameter as POST /v1/api/call
// normalizes "to".
func (h *handler) pathNumber(c *gin.Context) (string, bool) {
	n, msg := normalizePhone(c.Param("number"), h.lim.defaultRegion, h.lim.allowTest)
	if msg != "" {
		h.fail(c, invalidFields([]FieldError{{Field: "number", Message: msg}}))
		return "", false
	}
	return n, true
}

// putSuppression lists a number (or changes its reason): 200 with the entry.
func (h *handler) putSuppression(c *gin.Context) {
	ws := workspaceOf(c)
	if !h.suppressionsReady(c) {
		return
	}
	number, ok := h.pathNumber(c)
	if !ok {
		return
	}
	body, aerr := h.readBody(c)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			h.fail(c, &apiError{code: http.StatusBadRequest, reason: reasonMalformed,
				message: "the body must be a JSON object {\"reason\": ...}: " + err.Error()})
			return
		}
	}
	r := schemas.ReasonManual
	if in.Reason != "" {
		r = schemas.SuppressionReason(in.Reason)
		if !slices.Contains(schemas.SuppressionReasons, r) {
			h.fail(c, invalidFields([]FieldError{{Field: "reason", Message: fmt.Sprintf("must be one of %s; got %q", reasonWords(), in.Reason)}}))
			return
		}
	}
	s := schemas.Suppression{WorkspaceID: ws.ID, Number: number, Reason: r, Source: schemas.SourceAPI, AddedAt: h.now().UTC().Truncate(time.Second)}
	rec, err := compliance.SuppressionRecord(s, EventSource)
	if err != nil {
		h.log.ErrorContext(c.Request.Context(), "build suppression record", "workspace_id", ws.ID, "error", err)
		h.fail(c, &apiError{code: http.StatusInternalServerError, reason: reasonInternal, message: "internal error"})
		return
	}
	if aerr := h.writeSuppression(c.Request.Context(), rec, func() error {
		return h.cfg.Suppressions.Add(ws.ID, number, r, s.AddedAt)
	}); aerr != nil {
		h.fail(c, aerr)
		return
	}
	writeJSON(c, http.StatusOK, Suppression{Number: number, Reason: string(r), AddedAt: s.AddedAt.Format(time.RFC3339)})
}

// deleteSuppression takes a number off the list: 204, or 404 if it was not
// on this workspace's list.
func (h *handler) deleteSuppression(c *gin.Context) {
	ws := workspaceOf(c)
	if !h.suppressionsReady(c) {
		return
	}
	number, ok := h.pathNumber(c)
	if !ok {
		return
	}
	if _, listed, _ := h.cfg.Suppressions.Lookup(ws.ID, number); !listed {
		h.fail(c, notListed(number))
		return
	}
	if aerr := h.writeSuppression(c.Request.Context(), compliance.RemovalRecord(ws.ID, number), func() error {
		h.cfg.Suppressions.Remove(ws.ID, number)
		return nil
	}); aerr != nil {
		h.fail(c, aerr)
		return
	}
	c.Status(http.StatusNoContent)
}

// getSuppression shows one listed number.
func (h *handler) getSuppression(c *gin.Context) {
	ws := workspaceOf(c)
	if !h.suppressionsReady(c) {
		return
	}
	number, ok := h.pathNumber(c)
	if !ok {
		return
	}
	e, listed, _ := h.cfg.Suppressions.Lookup(ws.ID, number)
	if !listed {
		h.fail(c, notListed(number))
		return
	}
	writeJSON(c, http.StatusOK, suppressionView(e))
}

// listSuppressions pages through the workspace's list in number order;
// cursor is the last number of the previous page.
func (h *handler) listSuppressions(c *gin.Context) {
	ws := workspaceOf(c)
	if !h.suppressionsReady(c) {
		return
	}
	var fs []FieldError
	limit := defaultSuppressionPage
	if v, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSuppressionPage {
			fs = append(fs, FieldError{Field: "limit", Message: fmt.Sprintf("must be an integer from 1 to %d; got %q", maxSuppressionPage, v)})
		}
		limit = n
	}
	after := ""
	if v, ok := c.GetQuery("cursor"); ok {
		n, msg := normalizePhone(v, "", true)
		if msg != "" {
			fs = append(fs, FieldError{Field: "cursor", Message: "is not a cursor this API returned: the number " + msg})
		}
		after = n
	}
	if len(fs) > 0 {
		h.fail(c, &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: "invalid query parameters", fields: fs})
		return
	}
	es := h.cfg.Suppressions.Entries(ws.ID, after, limit+1)
	out := SuppressionList{Suppressions: make([]Suppression, 0, min(len(es), limit))}
	for i, e := range es {
		if i == limit {
			out.NextCursor = es[i-1].Number
			break
		}
		out.Suppressions = append(out.Suppressions, suppressionView(e))
	}
	writeJSON(c, http.StatusOK, out)
}

// writeSuppression produces rec (acks=all) and then makes this process's
// table reflect it before the client hears 2xx: it waits for the follower
// to apply the record's offset when Run follows the topic, and applies it
// directly otherwise (a handler without a follower).
func (h *handler) writeSuppression(ctx context.Context, rec *kgo.Record, local func() error) *apiError {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.Kafka.ProduceTimeout)
	defer cancel()
	res, _, _ := produce(pctx, h.p, rec)
	if res.err != nil {
		h.log.WarnContext(ctx, "suppression not written", "error", res.err)
		return &apiError{code: http.StatusServiceUnavailable, reason: reasonKafkaUnavailable, retryAfter: 1,
			message: "the do-not-call list was not changed: Kafka did not acknowledge the write; retry"}
	}
	if h.supWait != nil {
		if err := h.supWait(pctx, res.rec.Partition, res.rec.Offset); err != nil {
			h.log.WarnContext(ctx, "suppression written but not yet read back", "error", err)
			return &apiError{code: http.StatusServiceUnavailable, reason: reasonComplianceLoading, retryAfter: 1,
				message: "the change was written but is not yet in effect here; repeat the same request to confirm"}
		}
		return nil
	}
	if err := local(); err != nil && !errors.Is(err, compliance.ErrNotReady) {
		h.log.ErrorContext(ctx, "apply suppression locally", "error", err)
	}
	return nil
}

func notListed(number string) *apiError {
	return &apiError{code: http.StatusNotFound, reason: reasonUnknownSuppression,
		message: number + " is not on this workspace's do-not-call list"}
}

func reasonWords() string {
	ws := make([]string, len(schemas.SuppressionReasons))
	for i, r := range schemas.SuppressionReasons {
		ws[i] = string(r)
	}
	return strings.Join(ws, ", ")
}
