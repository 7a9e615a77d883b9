package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/schemas"
)

// Reporter delivers one agent report to a call's report channel. It returns
// once Dialstream has the report, or with the reason it never will.
type Reporter interface {
	Report(ctx context.Context, ch schemas.ReportChannel, r schemas.AgentReport) error
}

// HTTPReporter POSTs reports to the channel's URL with the channel's bearer
// token, as agent.report.v1 JSON, and retries what may succeed later.
//
// A retry is safe because a report keeps its id: Dialstream turns one id
// into one event, so a report whose response was lost is not doubled. What
// is not retried is what cannot change by waiting: 4xx other than 408 and
// 429 (401 a bad token, 409 the post-call window closed, 413, 422).
type HTTPReporter struct {
	Client *http.Client
	// FirstRetry is the first wait between attempts; it doubles up to 5s.
	// The caller's context bounds the whole.
	FirstRetry time.Duration
}

var _ Reporter = (*HTTPReporter)(nil)

// NewHTTPReporter returns a reporter with a client that does not follow
// redirects (a report is for the URL the dialer named, nowhere else).
func NewHTTPReporter() *HTTPReporter {
	return &HTTPReporter{
		Client: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		FirstRetry: 200 * time.Millisecond,
	}
}

// ReportError is a refusal that retrying cannot change.
type ReportError struct {
	StatusCode int
	Body       string
}

func (e *ReportError) Error() string {
	return fmt.Sprintf("report refused: HTTP %d: %s", e.StatusCode, e.Body)
}

// retryable says whether an HTTP status may succeed on another attempt.
func retryable(code int) bool { return code == 408 || code == 429 || code >= 500 }

// maxErrorBody caps how much of a refusal's body is read and kept.
const maxErrorBody = 4 << 10

func (h *HTTPReporter) Report(ctx context.Context, ch schemas.ReportChannel, r schemas.AgentReport) error {
	body, err := r.Encode()
	if err != nil {
		return err
	}
	wait := backoff.Doubling{Next: h.FirstRetry, Max: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		retryAfter, err := h.post(ctx, ch, body)
		if err == nil {
			return nil
		}
		var refused *ReportError
		if errors.As(err, &refused) {
			return err
		}
		if retryAfter > 0 {
			wait.Next = min(retryAfter, wait.Max)
		}
		if !wait.Wait(ctx) {
			return fmt.Errorf("report %s %s: gave up after %d attempts: %w", r.Type, r.ID, attempt, err)
		}
	}
}

// post makes one attempt. A nil error is a 2xx; a *ReportError is final;
// anything else may be retried, after retryAfter when the server said so.
func (h *HTTPReporter) post(ctx context.Context, ch schemas.ReportChannel, body []byte) (retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.URL, bytes.NewReader(body))
	if err != nil {
		return 0, &ReportError{Body: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ch.Token)
	resp, err := h.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return 0, nil
	case retryable(resp.StatusCode):
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retryAfter = time.Duration(s) * time.Second
		}
		return retryAfter, fmt.Errorf("HTTP %d", resp.StatusCode)
	default:
		return 0, &ReportError{StatusCode: resp.StatusCode, Body: schemas.Clip(string(b), 512)}
	}
}

// reportQueue sends one call's reports in order, off the call's goroutine:
// the agent keeps talking while a report is on its way, and Dialstream still
// sees answered_by before result before hangup.
type reportQueue struct {
	s    *service
	ch   *schemas.ReportChannel
	log  *slog.Logger
	q    chan queuedReport
	done chan struct{}
}

// queuedReport is a report to send, or (flushed set) a marker whose channel
// closes once everything before it was sent.
type queuedReport struct {
	r       schemas.AgentReport
	flushed chan struct{}
}

func newReportQueue(s *service, ch *schemas.ReportChannel, log *slog.Logger) *reportQueue {
	q := &reportQueue{s: s, ch: ch, log: log, q: make(chan queuedReport, 16), done: make(chan struct{})}
	go q.loop()
	return q
}

// send queues a report, stamping its id and time. The id is the report's
// type: the reference agent sends each type at most once per call, so the id
// is stable if a report is retried, or sent again by an agent that takes
// over the job.
func (q *reportQueue) send(r schemas.AgentReport) {
	r.ID, r.At = string(r.Type), time.Now().UTC()
	q.q <- queuedReport{r: r}
}

// flushWithin says whether every report queued so far was delivered or
// given up within d. Past d the reports go on in the
// background, under their own ReportTimeout.
func (q *reportQueue) flushWithin(d time.Duration) bool {
	f := make(chan struct{})
	q.q <- queuedReport{flushed: f}
	return within(f, d)
}

// close sends what is queued and stops.
func (q *reportQueue) close() {
	close(q.q)
	<-q.done
}

func (q *reportQueue) loop() {
	defer close(q.done)
	for qr := range q.q {
		if qr.flushed != nil {
			close(qr.flushed)
			continue
		}
		q.deliver(qr.r)
	}
}

// deliver sends one report. Its context is not the call's: the result of a
// call that just ended is worth sending, and ReportTimeout bounds it. It is
// the calls' parent, so a shutdown waits for reports no longer than for
// calls (DrainTimeout).
func (q *reportQueue) deliver(r schemas.AgentReport) {
	if q.ch == nil {
		q.s.m.reports.WithLabelValues(string(r.Type), string(reportNoChannel)).Inc()
		return
	}
	ctx, cancel := context.WithTimeout(q.s.callsCtx, q.s.cfg.ReportTimeout)
	defer cancel()
	if err := q.s.reporter.Report(ctx, *q.ch, r); err != nil {
		q.s.m.reports.WithLabelValues(string(r.Type), string(reportFailed)).Inc()
		q.log.Warn("agent: report not delivered", "type", r.Type, "err", err)
		return
	}
	q.s.m.reports.WithLabelValues(string(r.Type), string(reportDelivered)).Inc()
}
