package ingest

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/schemas"
)

// maxImportBytes caps a CSV import: about 100,000 rows.
const maxImportBytes = 4 << 20

// ImportResult is the answer of a CSV import.
type ImportResult struct {
	Status   string `json:"status"` // always "success"
	Imported int    `json:"imported"`
}

// importSuppressions lists every row of a text/csv body "number,reason"
// (reason optional, default manual; a first row "number,reason" is a
// header). All or nothing: if any row is bad, every bad row is reported
// with its row number and nothing is written.
func (h *handler) importSuppressions(c *gin.Context) {
	ws := workspaceOf(c)
	if !h.suppressionsReady(c) {
		return
	}
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "text/csv" {
		h.fail(c, &apiError{code: http.StatusUnsupportedMediaType, reason: reasonUnsupportedMedia,
			message: "Content-Type must be text/csv, got " + fmt.Sprintf("%q", c.GetHeader("Content-Type")),
			header:  http.Header{"Accept-Post": {"text/csv"}}})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxImportBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(c, &apiError{code: http.StatusRequestEntityTooLarge, reason: reasonBodyTooLarge,
				message: fmt.Sprintf("the CSV is larger than %d bytes; split it into several imports", maxImportBytes)})
			return
		}
		h.fail(c, &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: "could not read the body: " + err.Error()})
		return
	}
	rd := csv.NewReader(bytes.NewReader(body))
	rd.FieldsPerRecord = -1
	now := time.Now().UTC().Truncate(time.Second)
	var recs []*kgo.Record
	var entries []schemas.Suppression
	var bad []FieldError
	for row := 1; ; row++ {
		f, err := rd.Read()
		if err == io.EOF {
			break
		}
		field := fmt.Sprintf("row %d", row)
		if err != nil {
			bad = append(bad, FieldError{Field: field, Message: "is not valid CSV: " + err.Error()})
			break
		}
		if row == 1 && len(f) >= 1 && strings.EqualFold(strings.TrimSpace(f[0]), "number") {
			continue
		}
		if len(f) < 1 || len(f) > 2 {
			bad = append(bad, FieldError{Field: field, Message: fmt.Sprintf("must have 1 or 2 columns (number,reason); has %d", len(f))})
			continue
		}
		number, msg := normalizePhone(f[0], h.lim.defaultRegion, h.lim.allowTest)
		if msg != "" {
			bad = append(bad, FieldError{Field: field, Message: "number " + msg})
			continue
		}
		r := schemas.ReasonManual
		if len(f) == 2 && strings.TrimSpace(f[1]) != "" {
			r = schemas.SuppressionReason(strings.TrimSpace(f[1]))
			if !slices.Contains(schemas.SuppressionReasons, r) {
				bad = append(bad, FieldError{Field: field, Message: fmt.Sprintf("reason must be one of %s; got %q", reasonWords(), f[1])})
				continue
			}
		}
		s := schemas.Suppression{WorkspaceID: ws.ID, Number: number, Reason: r, Source: schemas.SourceImport, AddedAt: now}
		rec, err := compliance.SuppressionRecord(s, EventSource)
		if err != nil {
			bad = append(bad, FieldError{Field: field, Message: err.Error()})
			continue
		}
		recs, entries = append(recs, rec), append(entries, s)
	}
	if len(bad) > 0 {
		h.fail(c, &apiError{code: http.StatusUnprocessableEntity, reason: reasonInvalidField, fields: bad,
			message: fmt.Sprintf("%d rows are invalid; nothing was imported", len(bad))})
		return
	}
	// A number listed twice in one file keeps its last row, as when the
	// rows were written one by one: the chunks are written concurrently, so
	// only the last row of each number is sent.
	rows := len(recs)
	recs, entries = lastPerNumber(recs, entries)
	for start := 0; start < len(recs); start += importChunk {
		end := min(start+importChunk, len(recs))
		if aerr := h.importChunk(c.Request.Context(), recs[start:end], entries[start:end]); aerr != nil {
			aerr.message = fmt.Sprintf("%d of %d numbers were imported before Kafka stopped acknowledging; import the file again (rows already listed are only rewritten)", start, len(recs))
			h.fail(c, aerr)
			return
		}
	}
	writeJSON(c, http.StatusOK, ImportResult{Status: "success", Imported: rows})
}

// exportSuppressions answers the workspace's whole list as text/csv
// "number,reason,added_at", in number order.
func (h *handler) exportSuppressions(c *gin.Context) {
	ws := workspaceOf(c)
	if !h.suppressionsReady(c) {
		return
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"number", "reason", "added_at"})
	for _, e := range h.cfg.Suppressions.Entries(ws.ID, "", 0) {
		_ = w.Write([]string{e.Number, string(e.Reason), e.AddedAt.UTC().Format(time.RFC3339)})
	}
	w.Flush()
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

// importChunk is how many rows of an import are written at once: their
// records go to Kafka together (one round trip, not one per row), then the
// import waits until the list has read back the last of them on each
// partition, so the rows are in effect before the next chunk, and all of
// them before the 200.
const importChunk = 1000

func (h *handler) importChunk(ctx context.Context, recs []*kgo.Record, entries []schemas.Suppression) *apiError {
	if err := h.produceAll(ctx, recs...); err != nil {
		h.log.WarnContext(ctx, "suppression import not written", "error", err)
		return &apiError{code: http.StatusServiceUnavailable, reason: reasonKafkaUnavailable, retryAfter: 1}
	}
	if h.supWait == nil {
		for _, s := range entries {
			if err := h.cfg.Suppressions.Add(s.WorkspaceID, s.Number, s.Reason, s.AddedAt); err != nil && !errors.Is(err, compliance.ErrNotReady) {
				h.log.ErrorContext(ctx, "apply suppression locally", "error", err)
			}
		}
		return nil
	}
	last := map[int32]int64{}
	for _, r := range recs {
		if o, ok := last[r.Partition]; !ok || r.Offset > o {
			last[r.Partition] = r.Offset
		}
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.Kafka.ProduceTimeout)
	defer cancel()
	for p, off := range last {
		if err := h.supWait(pctx, p, off); err != nil {
			h.log.WarnContext(ctx, "suppression import written but not yet read back", "error", err)
			return &apiError{code: http.StatusServiceUnavailable, reason: reasonComplianceLoading, retryAfter: 1}
		}
	}
	return nil
}

// lastPerNumber keeps, for each number, its last row, in file order.
func lastPerNumber(recs []*kgo.Record, entries []schemas.Suppression) ([]*kgo.Record, []schemas.Suppression) {
	last := make(map[string]int, len(entries))
	for i, e := range entries {
		last[e.Number] = i
	}
	if len(last) == len(entries) {
		return recs, entries
	}
	outR, outE := make([]*kgo.Record, 0, len(last)), make([]schemas.Suppression, 0, len(last))
	for i, e := range entries {
		if last[e.Number] == i {
			outR, outE = append(outR, recs[i]), append(outE, e)
		}
	}
	return outR, outE
}
