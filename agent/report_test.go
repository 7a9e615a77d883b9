package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/schemas"
)

// reportServer records every POST and answers with the next status of its
// script (the last one repeats).
type reportServer struct {
	mu       sync.Mutex
	statuses []int
	got      []recordedPost
}

type recordedPost struct {
	auth, contentType string
	body              []byte
}

func (s *reportServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.got = append(s.got, recordedPost{r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b})
	code := s.statuses[min(len(s.got), len(s.statuses))-1]
	s.mu.Unlock()
	if code == http.StatusFound {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{"status":"error","message":"scripted"}`))
}

func (s *reportServer) posts() []recordedPost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recordedPost(nil), s.got...)
}

func TestHTTPReporter(t *testing.T) {
	report := schemas.AgentReport{ID: "answered_by", Type: schemas.ReportTypeAnsweredBy,
		At: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), AnsweredBy: schemas.AnsweredByMachine}
	for _, tt := range []struct {
		name     string
		statuses []int
		posts    int
		refused  int // the final status of a refusal; 0 = delivered
	}{
		{"delivered", []int{200}, 1, 0},
		{"accepted as a duplicate", []int{202}, 1, 0},
		{"retried after 503 and 429", []int{503, 429, 200}, 3, 0},
		{"post-call window closed: not retried", []int{409}, 1, 409},
		{"bad token: not retried", []int{401}, 1, 401},
		{"schema refusal: not retried", []int{422}, 1, 422},
		{"redirect not followed", []int{302}, 1, 302},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := &reportServer{statuses: tt.statuses}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			rep := NewHTTPReporter()
			rep.FirstRetry = time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := rep.Report(ctx, schemas.ReportChannel{URL: ts.URL + "/v1/agent/calls/c/reports", Token: "dsr1.tok"}, report)

			var refused *ReportError
			switch {
			case tt.refused == 0 && err != nil:
				t.Fatalf("Report: %v", err)
			case tt.refused != 0 && (!errors.As(err, &refused) || refused.StatusCode != tt.refused):
				t.Fatalf("Report error %v, want a refusal with HTTP %d", err, tt.refused)
			}
			posts := srv.posts()
			if len(posts) != tt.posts {
				t.Fatalf("%d posts, want %d", len(posts), tt.posts)
			}
			for _, p := range posts {
				if p.auth != "Bearer dsr1.tok" || p.contentType != "application/json" {
					t.Errorf("headers: Authorization %q, Content-Type %q", p.auth, p.contentType)
				}
				got, err := schemas.DecodeAgentReport(p.body)
				if err != nil {
					t.Fatalf("body %s: %v", p.body, err)
				}
				// Every attempt is the same report: the id is what makes a retry one event.
				if got.ID != report.ID || got.AnsweredBy != report.AnsweredBy {
					t.Errorf("posted %+v", got)
				}
			}
		})
	}
}

func TestHTTPReporterGivesUpAtDeadline(t *testing.T) {
	srv := &reportServer{statuses: []int{503}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	rep := NewHTTPReporter()
	rep.FirstRetry = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := rep.Report(ctx, schemas.ReportChannel{URL: ts.URL, Token: "t"}, schemas.AgentReport{ID: "hangup", Type: schemas.ReportTypeHangup, At: time.Now()})
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %s, want a give-up at the deadline", err, time.Since(start))
	}
	if n := len(srv.posts()); n < 2 {
		t.Fatalf("%d attempts, want retries until the deadline", n)
	}
}

// An invalid report is never sent: the agent's own bug must not reach
// Dialstream as a 422.
func TestHTTPReporterRefusesInvalidReport(t *testing.T) {
	srv := &reportServer{statuses: []int{200}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	err := NewHTTPReporter().Report(context.Background(), schemas.ReportChannel{URL: ts.URL, Token: "t"},
		schemas.AgentReport{ID: "x", Type: schemas.ReportTypeAnsweredBy, At: time.Now()})
	var ve *schemas.ValidationError
	if !errors.As(err, &ve) || len(srv.posts()) != 0 {
		t.Fatalf("err %v, %d posts; want a validation error and nothing sent", err, len(srv.posts()))
	}
}

// heldReporter holds every report until release is closed, as ingest does
// while the broker is down; it records what it delivered, in order.
type heldReporter struct {
	release chan struct{}
	mu      sync.Mutex
	got     []schemas.ReportType
}

func (h *heldReporter) Report(ctx context.Context, _ schemas.ReportChannel, r schemas.AgentReport) error {
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, r.Type)
	return nil
}

// A hangup's wait for its report is bounded; the reports it did not wait
// for are still delivered, in order, once they can be, and closing the
// queue waits for them.
func TestReportQueueFlushWithin(t *testing.T) {
	h := &heldReporter{release: make(chan struct{})}
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s := &service{cfg: Config{ReportTimeout: time.Minute}, m: m, reporter: h, callsCtx: t.Context()}
	q := newReportQueue(s, &schemas.ReportChannel{URL: "http://127.0.0.1:1/unused", Token: "t"}, slog.New(slog.DiscardHandler))
	q.send(schemas.AgentReport{Type: schemas.ReportTypeAnsweredBy, AnsweredBy: schemas.AnsweredByHuman})
	q.send(schemas.AgentReport{Type: schemas.ReportTypeHangup, Hangup: &schemas.ReportHangup{Reason: "done"}})
	if q.flushWithin(50 * time.Millisecond) {
		t.Fatal("flushWithin said the held reports were sent")
	}
	close(h.release)
	if !q.flushWithin(10 * time.Second) {
		t.Fatal("flushWithin: reports not sent after the release")
	}
	q.close()
	h.mu.Lock()
	defer h.mu.Unlock()
	if want := []schemas.ReportType{schemas.ReportTypeAnsweredBy, schemas.ReportTypeHangup}; !slices.Equal(h.got, want) {
		t.Fatalf("delivered %v, want %v", h.got, want)
	}
}
