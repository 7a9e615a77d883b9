// Package ops is the one operations endpoint every Dialstream service serves:
// GET /healthz (the process answers), GET /readyz (it can do its job now) and
// GET /metrics (its registry), plus any routes the service adds (the dialer's
// LiveKit webhook, dev-mode pages).
//
// /readyz answers in one format for every service, so probes, compose
// healthchecks and operators read them alike:
//
//	200 {"status":"ready"}
//	503 {"status":"not_ready","reason":"kafka: not reachable"}
//
// A service states readiness as checks; the first one that fails is the reason.
// Checks run on every probe, so each must be cheap or cache its own answer.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/internal/obs"
)

// Check reports why the service is not ready, or nil.
type Check func(ctx context.Context) error

// Server is a service's operations endpoint.
type Server struct {
	// Addr is where it listens; ignored when Listener is set.
	Addr     string
	Listener net.Listener
	// Metrics is served at /metrics; nil serves an empty registry.
	Metrics prometheus.Gatherer
	// Ready holds the readiness checks, all of which must pass.
	Ready []Check
	// Routes are extra handlers by http.ServeMux pattern ("POST /livekit/webhook").
	Routes map[string]http.Handler

	srv *http.Server
	ln  net.Listener
}

// Status is the body of /readyz.
type Status struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// Handler returns the mux: useful to tests that drive it with httptest.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, Status{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.check(r.Context()); err != nil {
			writeStatus(w, http.StatusServiceUnavailable, Status{Status: "not_ready", Reason: err.Error()})
			return
		}
		writeStatus(w, http.StatusOK, Status{Status: "ready"})
	})
	var g prometheus.Gatherer = prometheus.NewRegistry()
	if s.Metrics != nil {
		g = s.Metrics
	}
	mux.Handle("GET /metrics", obs.MetricsHandler(g))
	for pattern, h := range s.Routes {
		mux.Handle(pattern, h)
	}
	return mux
}

func (s *Server) check(ctx context.Context) error {
	for _, c := range s.Ready {
		if err := c(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Start binds (unless a Listener was given) and serves in the background. The
// returned channel yields an error if serving stops on its own; Shutdown
// stops it without one.
func (s *Server) Start() (<-chan error, error) {
	s.ln = s.Listener
	if s.ln == nil {
		ln, err := net.Listen("tcp", s.Addr)
		if err != nil {
			return nil, fmt.Errorf("ops: listen %s: %w", s.Addr, err)
		}
		s.ln = ln
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			served <- err
		}
	}()
	return served, nil
}

// ListenAddr returns the address it listens on, once started.
func (s *Server) ListenAddr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops serving, waiting at most timeout for requests in flight.
func (s *Server) Shutdown(timeout time.Duration) error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

func writeStatus(w http.ResponseWriter, code int, st Status) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}
