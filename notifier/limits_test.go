package notifier

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// A receiver that hangs and one that answers with an endless body do not
// exhaust the notifier: the hanging one holds at most its per-host share of
// slots until the timeout fires, the endless body is cut after the byte cap,
// and a healthy receiver gets its events meanwhile, long before any timeout.
func TestSlowReceiversDoNotHoldUpOthers(t *testing.T) {
	const timeout = time.Second
	var hanging, maxHanging atomic.Int32
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice when the notifier hangs up.
		_, _ = io.Copy(io.Discard, r.Body)
		n := hanging.Add(1)
		defer hanging.Add(-1)
		for {
			m := maxHanging.Load()
			if n <= m || maxHanging.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)

	var endlessDone sync.WaitGroup
	var written atomic.Int64
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		endlessDone.Add(1)
		defer endlessDone.Done()
		w.WriteHeader(http.StatusOK)
		chunk := []byte(strings.Repeat("x", 32<<10))
		for {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return // the notifier closed the connection
			}
		}
	}))
	defer endless.Close()
	good := newReceiver(t, nil)

	e := newEnv(t, func(c *Config) {
		c.Timeout = timeout
		c.MaxInFlightPerHost = 2
		c.MaxResponseBytes = 1024
		c.RetrySchedule = []time.Duration{0, 100 * time.Millisecond}
	})
	// Warm up: the group has joined once this is delivered.
	good.allTaken(t, 20*time.Second, e.emit(event(callID(), "ws_a", 1, schemas.StatusQueued, good.URL+"/warmup")))

	var evs []schemas.CallEvent
	hangCalls := []string{callID(), callID(), callID()}
	for _, c := range hangCalls {
		evs = append(evs, event(c, "ws_a", 1, schemas.StatusQueued, hang.URL))
	}
	endlessCalls := []string{callID(), callID()}
	for _, c := range endlessCalls {
		evs = append(evs, event(c, "ws_a", 1, schemas.StatusQueued, endless.URL))
	}
	for range 6 {
		evs = append(evs, event(callID(), "ws_a", 1, schemas.StatusQueued, good.URL))
	}
	start := time.Now()
	ids := e.emit(evs...)
	good.allTaken(t, 20*time.Second, ids[len(ids)-6:])
	if took := time.Since(start); took >= timeout*8/10 {
		t.Fatalf("healthy receiver served after %s: it waited for the hanging one (timeout %s)", took, timeout)
	} else {
		t.Logf("6 healthy deliveries in %s while a receiver hangs", took.Round(time.Millisecond))
	}

	// Endless bodies: success (2xx), cut at the cap, connection closed.
	for _, c := range endlessCalls {
		c := c
		testutil.Eventually(t, 10*time.Second, "endless-body delivery logged", func() bool {
			as := e.attempts(c)
			return len(as) == 1 && as[0].Result == schemas.WebhookSuccess && as[0].DurationSeconds < timeout.Seconds()
		})
	}
	endlessDone.Wait() // returns only because the notifier hung up
	t.Logf("endless receiver wrote %d KiB before the notifier hung up (cap 1 KiB read; the rest sat in socket buffers)", written.Load()>>10)

	// Hanging receiver: each attempt times out, moves to the retry topic,
	// and ends in the DLQ; never more than 2 at once.
	dlq := e.waitKeys(schemas.TopicWebhookDLQ, hangCalls, 20*time.Second)
	for _, c := range hangCalls {
		r := dlq[c][0]
		if header(r, kafkax.HeaderDLQErrorClass) != string(DLQExhausted) || !strings.Contains(header(r, kafkax.HeaderDLQError), "Timeout") {
			t.Errorf("DLQ %s: %s", header(r, kafkax.HeaderDLQErrorClass), header(r, kafkax.HeaderDLQError))
		}
	}
	if m := maxHanging.Load(); m > 2 {
		t.Fatalf("%d requests hung at once, per-host cap is 2", m)
	}
	testutil.Eventually(t, 5*time.Second, "nothing in flight", func() bool {
		return e.metric("dialstream_notifier_in_flight") == 0
	})
}

// A flood of events for a receiver that does not answer: the notifier holds
// at most MaxInFlight requests and about 2 x PartitionBuffer records per
// partition (then pauses fetching), and delivers everything once the
// receiver answers.
func TestFloodIsBounded(t *testing.T) {
	const events, buffer, inFlight = 300, 10, 4
	gate := make(chan struct{})
	rc := newReceiver(t, func(int, *http.Request, http.ResponseWriter) int {
		<-gate
		return http.StatusNoContent
	})
	e := newEnv(t, func(c *Config) {
		c.MaxInFlight, c.MaxInFlightPerHost, c.PartitionBuffer = inFlight, inFlight, buffer
		c.Timeout = 30 * time.Second
	})
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release) // runs before the notifier and the receiver stop
	var evs []schemas.CallEvent
	for range events {
		evs = append(evs, event(callID(), "ws_a", 1, schemas.StatusQueued, rc.URL))
	}
	ids := e.emit(evs...)
	testutil.Eventually(t, 20*time.Second, "the in-flight cap reached", func() bool {
		return e.metric("dialstream_notifier_in_flight") == inFlight
	})
	// Sample the held records for a while: fetching must have paused.
	maxHeld, samples := 0.0, 0
	testutil.Eventually(t, 5*time.Second, "30 samples", func() bool {
		maxHeld = max(maxHeld, e.metric("dialstream_notifier_buffered_records"))
		samples++
		return samples == 30
	})
	if limit := float64(e.cfg.Kafka.Partitions * 2 * buffer); maxHeld > limit {
		t.Fatalf("held %v records, bound is %v", maxHeld, limit)
	}
	if got := rc.count(); got != inFlight {
		t.Fatalf("%d requests open, cap is %d", got, inFlight)
	}
	t.Logf("flood of %d: %d requests open, at most %v records held", events, inFlight, maxHeld)
	release()
	rc.allTaken(t, 30*time.Second, ids)
}
