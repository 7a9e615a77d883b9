package notifier

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// BenchmarkThroughput gives the figures of the notifier's overhead: webhooks/s
// delivered to one local receiver by the notifier (embedded broker, consumer
// group, signing, delivery log, commits) and by a bare http.Client loop
// posting the same signed bodies to the same receiver with the same
// concurrency (the per-host cap), in one run. Bounded: 5000 events per
// round.
//
//	go test ./notifier -run '^$' -bench Throughput -benchtime 1x
func BenchmarkThroughput(b *testing.B) {
	const events = 5000
	var got atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	for range b.N {
		for _, perCall := range []int{1, 5} {
			e := newEnv(b, func(c *Config) { c.Logger = nil })
			conc := e.cfg.withDefaults().MaxInFlightPerHost
			var evs []schemas.CallEvent
			for len(evs) < events {
				call := callID()
				for seq := 1; seq <= perCall; seq++ {
					st := schemas.Statuses[seq-1]
					evs = append(evs, event(call, "ws_a", seq, st, rcv.URL))
				}
			}
			// Warm up (group joined, connections open), then measure.
			got.Store(0)
			e.emit(event(callID(), "ws_a", 1, schemas.StatusQueued, rcv.URL))
			testutil.Eventually(b, 20*time.Second, "warm-up", func() bool { return got.Load() == 1 })
			got.Store(0)
			start := time.Now()
			e.emit(evs...)
			testutil.Eventually(b, 60*time.Second, "all deliveries", func() bool { return got.Load() >= events })
			rate := float64(events) / time.Since(start).Seconds()
			e.stop()
			if perCall == 1 {
				b.ReportMetric(rate, "notifier_webhooks/s")
			} else {
				b.ReportMetric(rate, "notifier_5_per_call_webhooks/s")
			}

			if perCall == 1 {
				got.Store(0)
				b.ReportMetric(bareLoop(b, rcv.URL, evs, conc), "bare_client_webhooks/s")
				got.Store(0)
				b.ReportMetric(bareLoop(b, rcv.URL, evs, 1), "bare_sequential_webhooks/s")
				b.ReportMetric(float64(conc), "concurrency")
			}
		}
	}
}

// bareLoop posts each event's signed body with a plain http.Client from conc
// goroutines and returns webhooks/s.
func bareLoop(b *testing.B, url string, evs []schemas.CallEvent, conc int) float64 {
	keys, _ := signingKeys([]string{secretA})
	bodies := make([][]byte, len(evs))
	for i := range evs {
		bodies[i], _ = buildBody(schemas.EventID(evs[i].CallID, evs[i].Sequence), evs[i].Status.Type(), &evs[i], false)
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	defer cl.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				Sign(req.Header, keys, schemas.EventID(evs[i].CallID, evs[i].Sequence), time.Now(), bodies[i])
				resp, err := cl.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	return float64(len(bodies)) / time.Since(start).Seconds()
}
