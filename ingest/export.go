package ingest

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/schemas"
)

// GET /v1/api/calls/export streams a workspace's calls requested in a time
// range, oldest first, for reconciliation with a CRM: NDJSON (one call per
// line, the very object GET /v1/api/call/:callId answers under "call") or
// CSV (one row per call, the list's summary columns). It is read in
// batches (callrecords.Store.Export), so neither ingest's memory nor one
// database transaction grows with the range.
//
// The status line goes out before the first call is read: a database that
// fails midway cannot become a 503 any more, so the connection is cut
// (http.ErrAbortHandler): the client sees a truncated transfer (no final
// chunk), never a file that merely looks complete.

// exportParams are the query parameters of the export.
var exportParams = []string{"format", "from", "to"}

// exportWriteWindow is how long the server may take to write each batch
// of the export; the server's WriteTimeout, made for short answers, would
// cut a long export short, so each batch extends the deadline.
const exportWriteWindow = time.Minute

// exportColumns are the CSV's columns, the names of the list's fields.
var exportColumns = []string{"callId", "status", "outcome", "to", "call_agent_id", "roomName", "jobId", "callback_url",
	"sequence", "requested_at", "queued_at", "dialing_at", "ringing_at", "answered_at", "ended_at", "cancel_requested_at",
	"ended_by", "reason", "sip_status_code", "sip_status", "disconnect_reason", "ring_duration_seconds", "talk_duration_seconds"}

// exportQuery is a parsed export request.
type exportQuery struct {
	format   string // csv or ndjson
	from, to time.Time
}

func parseExportQuery(raw string) (exportQuery, []FieldError) {
	var q exportQuery
	params, errs := readQuery(raw, exportParams)
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	hasFormat := false
	for _, p := range params {
		k, v := p.key, p.value
		switch k {
		case "format":
			hasFormat = true
			if v != "csv" && v != "ndjson" {
				add(k, "must be csv or ndjson; got %q", schemas.Clip(v, 64))
			}
			q.format = v
		case "from", "to":
			t, err := time.Parse(time.RFC3339Nano, v)
			switch {
			case err != nil:
				add(k, "must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z; got %q", schemas.Clip(v, 64))
			case k == "from":
				q.from = t
			default:
				q.to = t
			}
		}
	}
	sortByField(errs)
	if !hasFormat && !slices.ContainsFunc(errs, func(e FieldError) bool { return e.Field == "format" }) {
		add("format", "required: csv or ndjson")
	}
	if !q.from.IsZero() && !q.to.IsZero() && !q.from.Before(q.to) {
		add("to", "must be later than from")
	}
	return q, errs
}

// exportCalls serves GET /v1/api/calls/export.
func (h *handler) exportCalls(c *gin.Context) {
	ws := workspaceOf(c)
	q, ferrs := parseExportQuery(c.Request.URL.RawQuery)
	if len(ferrs) > 0 {
		h.fail(c, badQuery(ferrs))
		return
	}
	ctx := c.Request.Context()
	// The first database answer decides the status: a database that is
	// down gets a 503 like every other route, before anything is written.
	pctx, cancel := context.WithTimeout(ctx, recordsTimeout)
	err := h.own.wait(pctx)
	if err == nil {
		err = h.st.Ping(pctx)
	}
	cancel()
	if err != nil {
		h.fail(c, h.recordsUnavailable(ctx, err))
		return
	}
	rc := http.NewResponseController(c.Writer)
	extend := func() {
		if err := rc.SetWriteDeadline(time.Now().Add(exportWriteWindow)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			h.log.DebugContext(ctx, "export: write deadline not extended", "error", err.Error())
		}
	}
	extend()
	name := "calls-" + ws.ID + "." + q.format
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Header("Cache-Control", "no-store")
	if q.format == "csv" {
		c.Header("Content-Type", "text/csv; charset=utf-8")
	} else {
		c.Header("Content-Type", "application/x-ndjson")
	}
	c.Status(http.StatusOK)
	bw := bufio.NewWriterSize(c.Writer, 32<<10)
	var cw *csv.Writer
	if q.format == "csv" {
		cw = csv.NewWriter(bw)
		_ = cw.Write(exportColumns)
	}
	n := 0
	err = h.st.Export(ctx, ws.ID, q.from, q.to, func(sc *callrecords.Call) error {
		r, err := recOf(sc)
		if err != nil {
			return err
		}
		if cw != nil {
			if err := cw.Write(csvRow(r.summary(ws.MaskPhoneNumbers))); err != nil {
				return err
			}
		} else {
			b, err := json.Marshal(r.full(ws.MaskPhoneNumbers))
			if err != nil {
				return err
			}
			bw.Write(b)
			if err := bw.WriteByte('\n'); err != nil {
				return err
			}
		}
		if n++; n%callrecords.ExportBatch == 0 {
			extend()
			if cw != nil {
				cw.Flush()
			}
			return bw.Flush()
		}
		return nil
	})
	if cw != nil {
		cw.Flush()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		if ctx.Err() == nil {
			h.log.WarnContext(ctx, "export cut short", "workspace_id", ws.ID, "calls_written", n, "error", err.Error())
		}
		panic(http.ErrAbortHandler) // see above: never a truncated file that looks complete
	}
	h.log.InfoContext(ctx, "calls exported", "workspace_id", ws.ID, "format", q.format, "calls", n)
}

// csvRow is a call's summary in exportColumns' order; an absent value is
// an empty cell, times are RFC 3339 in UTC.
func csvRow(s CallSummary) []string {
	t := func(v time.Time) string {
		if v.IsZero() {
			return ""
		}
		return v.UTC().Format(time.RFC3339Nano)
	}
	f := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'f', -1, 64)
	}
	code := ""
	if s.SIPStatusCode != 0 {
		code = strconv.Itoa(s.SIPStatusCode)
	}
	return []string{s.CallID, string(s.Status), string(s.Outcome), s.To, s.CallAgentID, s.RoomName, s.JobID, s.CallbackURL,
		strconv.Itoa(s.Sequence), t(s.RequestedAt), t(s.QueuedAt), t(s.DialingAt), t(s.RingingAt), t(s.AnsweredAt), t(s.EndedAt),
		t(s.CancelRequestedAt), string(s.EndedBy), s.Reason, code, s.SIPStatus, s.DisconnectReason,
		f(s.RingDurationSeconds), f(s.TalkDurationSeconds)}
}
