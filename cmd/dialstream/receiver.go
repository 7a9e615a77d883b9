package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/ops"
	"github.com/dialstream/dialstream/internal/registry"
)

func init() {
	commands["receiver"] = command{"a webhook receiver that verifies and records every delivery (RECEIVER_HTTP_ADDR, DIALSTREAM_REGISTRY)", runReceiver, true}
}

// runReceiver serves the webhook inspector as a stand-alone callback_url for
// the container tests: every POST is verified with the registry's webhook
// secrets and recorded. GET / is the inspector (the last inspectorSize
// deliveries); GET /deliveries is every delivery, oldest first, up to
// RECEIVER_MAX_DELIVERIES, for a checker that must see them all. Like the
// inspector it shows every workspace's deliveries to whoever can reach it: a
// test tool, not a service.
func runReceiver(ctx context.Context, _ []string) error {
	l := envconfig.New()
	addr := l.String("RECEIVER_HTTP_ADDR", "127.0.0.1:8090")
	regPath := l.Required("DIALSTREAM_REGISTRY")
	maxDeliveries := l.Int("RECEIVER_MAX_DELIVERIES", 50000, 1, 10_000_000)
	log := loadLogger(l, "json")
	if err := l.Err(); err != nil {
		return err
	}
	reg, err := registry.Load(regPath)
	if err != nil {
		return err
	}
	rr := &recordingReceiver{insp: newInspector(reg), max: maxDeliveries}
	log.Info("webhook receiver listening", slog.String("addr", addr), slog.Int("max_deliveries", maxDeliveries))
	err = serve(ctx, rr.server(addr))
	log.Info("webhook receiver stopped", slog.Int("deliveries", rr.count()))
	if err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	return nil
}

// recordingReceiver keeps every delivery the inspector verified, past the
// inspector's own window. POSTs are handed to the inspector one at a time, so
// the inspector's newest entry is the one just received; the body is read
// before the lock, so a slow sender holds up nobody.
type recordingReceiver struct {
	insp *inspector
	max  int

	mu      sync.Mutex
	lastN   int
	log     []inspectedDelivery
	dropped int
}

// server serves GET /deliveries from the recorder and everything else from
// the inspector (POSTs through the recorder), next to the ops endpoints.
func (rr *recordingReceiver) server(addr string) *ops.Server {
	return &ops.Server{Addr: addr, Routes: map[string]http.Handler{
		"GET /deliveries": http.HandlerFunc(rr.serveLog),
		"/":               rr,
	}}
}

func (rr *recordingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rr.insp.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, inspectorMaxBody+1))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.insp.ServeHTTP(w, r)
	ds := rr.insp.deliveries("")
	if len(ds) == 0 || ds[0].N <= rr.lastN {
		return // refused before it was recorded (too large)
	}
	rr.lastN = ds[0].N
	if len(rr.log) >= rr.max {
		rr.dropped++
		return
	}
	rr.log = append(rr.log, ds[0])
}

func (rr *recordingReceiver) count() int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return len(rr.log) + rr.dropped
}

// serveLog answers GET /deliveries: {"deliveries":[...oldest first],
// "dropped":n}. dropped counts deliveries received after the log was full,
// so a reader knows when it is not seeing everything.
func (rr *recordingReceiver) serveLog(w http.ResponseWriter, _ *http.Request) {
	rr.mu.Lock()
	out := struct {
		Deliveries []inspectedDelivery `json:"deliveries"`
		Dropped    int                 `json:"dropped"`
	}{append([]inspectedDelivery{}, rr.log...), rr.dropped}
	rr.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(out)
}
