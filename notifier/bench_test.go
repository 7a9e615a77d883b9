package notifier

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// BenchmarkThroughput gives the figures of the notifier's overhead, in one
// run: webhooks/s delivered to one local receiver by the notifier (embedded
// broker, consumer group, signing, delivery log written and acknowledged
// before each commit) and by a bare http.Client posting the same bodies to
// the same receiver, plainly (no signing, no Kafka), from as many goroutines
// as the notifier's per-host cap. Both are timed the same way, at the
// receiver, from the first request to the last; the events are in the
// broker before the notifier starts, so neither the test's producer nor the
// group join is timed. Bounded: 20,000 events per figure (2,500 against the
// 10 ms receiver).
//
//	go test ./notifier -run '^$' -bench '^BenchmarkThroughput$' -benchtime 1x
//
// notifier/bare is the ratio of the first two figures; the 10ms_receiver
// pair is the same comparison against a receiver that takes 10 ms to answer. On a machine whose
// cores other work shares, the rates move with that work; the CPU time per
// webhook of each window (the whole process: sender, receiver and, for the
// notifier, the broker) does much less, and its ratio is what the rates'
// ratio tends to when the process has the cores to itself. With
// NOTIFIER_BENCH_CPUPROFILE=<prefix>, the CPU profiles of the two timed
// windows (whole process: notifier, broker and receiver, or bare client and
// receiver) go to <prefix>.notifier.pprof and <prefix>.bare.pprof.
func BenchmarkThroughput(b *testing.B) {
	// 20,000 events keep each CPU-bound window over a second here (5,000
	// made it 0.3 s, and its ratio swung 0.40-0.51 between quiet runs);
	// the 10 ms receiver's windows, bound by latency, take 2,500.
	const events, slowEvents = 20000, 2500
	m := newMeter(b)
	conc := Config{}.withDefaults().MaxInFlightPerHost
	for range b.N {
		evs := benchEvents(events, 1, m.URL)
		n := notifierRate(b, m, evs)
		nCPU := m.cpuPerRequest
		bare := bareRate(b, m, evs, conc)
		bareCPU := m.cpuPerRequest
		b.ReportMetric(n, "notifier_webhooks/s")
		b.ReportMetric(bare, "bare_client_webhooks/s")
		b.ReportMetric(n/bare, "notifier/bare")
		b.ReportMetric(float64(nCPU.Microseconds()), "notifier_cpu_us/webhook")
		b.ReportMetric(float64(bareCPU.Microseconds()), "bare_cpu_us/webhook")
		b.ReportMetric(bareRate(b, m, evs, 1), "bare_sequential_webhooks/s")
		b.ReportMetric(notifierRate(b, m, benchEvents(events, 5, m.URL)), "notifier_5_per_call_webhooks/s")
		b.ReportMetric(float64(conc), "concurrency")

		// A receiver that takes 10 ms, as a real endpoint does: both sides
		// are bound by concurrency x latency (1,600/s), not by CPU.
		m.delay.Store(int64(10 * time.Millisecond))
		slow := benchEvents(slowEvents, 1, m.URL)
		b.ReportMetric(notifierRate(b, m, slow), "notifier_10ms_receiver_webhooks/s")
		b.ReportMetric(bareRate(b, m, slow, conc), "bare_10ms_receiver_webhooks/s")
		m.delay.Store(0)
	}
}

// meter is the receiver of the throughput figures: it answers 204 and times
// the requests from the first to the want-th.
type meter struct {
	*httptest.Server
	want, got   atomic.Int64
	delay       atomic.Int64 // ns each answer takes
	first, last atomic.Int64 // unix ns; last is 0 until the want-th request
	profiles    []string     // names of the next windows to profile, in order
	// cpuPerRequest is the process's CPU time over the last window divided
	// by its requests (sender, receiver and, for the notifier, the broker).
	cpuPerRequest time.Duration
}

func newMeter(b *testing.B) *meter {
	m := &meter{profiles: []string{"notifier", "bare"}}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if d := m.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d)) // the receiver's own work, not a wait for a condition
		}
		switch m.got.Add(1) {
		case 1:
			m.first.Store(time.Now().UnixNano())
		case m.want.Load():
			m.last.Store(time.Now().UnixNano())
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(m.Close)
	return m
}

// measure readies the meter for n requests, calls run to send them, and
// returns the rate they arrived at.
func (m *meter) measure(b *testing.B, n int, run func()) float64 {
	m.want.Store(int64(n))
	m.got.Store(0)
	m.last.Store(0)
	stop := m.profile(b)
	cpu0 := cpuTime(b)
	run()
	testutil.Eventually(b, 120*time.Second, "every request at the receiver", func() bool { return m.last.Load() != 0 })
	m.cpuPerRequest = (cpuTime(b) - cpu0) / time.Duration(n)
	stop()
	return float64(n-1) / time.Duration(m.last.Load()-m.first.Load()).Seconds()
}

// cpuTime is the CPU time this process has used (user and system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profile starts the CPU profile of the next window named in m.profiles,
// if NOTIFIER_BENCH_CPUPROFILE asks for it, and returns its stop.
func (m *meter) profile(b *testing.B) (stop func()) {
	prefix := os.Getenv("NOTIFIER_BENCH_CPUPROFILE")
	if prefix == "" || len(m.profiles) == 0 {
		return func() {}
	}
	f, err := os.Create(prefix + "." + m.profiles[0] + ".pprof")
	if err != nil {
		b.Fatal(err)
	}
	m.profiles = m.profiles[1:]
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// benchEvents makes n events to url, perCall events of each call.
func benchEvents(n, perCall int, url string) []schemas.CallEvent {
	var evs []schemas.CallEvent
	for len(evs) < n {
		call := callID()
		for seq := 1; seq <= perCall && len(evs) < n; seq++ {
			evs = append(evs, event(call, "ws_a", seq, schemas.Statuses[seq-1], url))
		}
	}
	return evs
}

// notifierRate writes evs to a fresh broker, then starts a notifier on it and
// returns the webhooks/s the meter saw.
func notifierRate(b *testing.B, m *meter, evs []schemas.CallEvent) float64 {
	broker := startBroker(b)
	cfg := baseConfig(b, broker)
	cfg.Logger = nil
	e := &testEnv{t: b, broker: broker, cfg: cfg, cl: topicsClient(b, broker, cfg.Kafka, cfg.RetrySchedule)}
	e.emit(evs...)
	rate := m.measure(b, len(evs), e.start)
	e.stop()
	return rate
}

// bareRate posts each event's webhook body with a plain http.Client from conc
// goroutines and returns the webhooks/s the meter saw.
func bareRate(b *testing.B, m *meter, evs []schemas.CallEvent, conc int) float64 {
	bodies := make([][]byte, len(evs))
	for i := range evs {
		var err error
		if bodies[i], err = buildBody(schemas.EventID(evs[i].CallID, evs[i].Sequence), evs[i].Status.Type(), &evs[i], false); err != nil {
			b.Fatal(err)
		}
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	defer cl.CloseIdleConnections()
	return m.measure(b, len(bodies), func() {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(bodies) {
						return
					}
					req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, m.URL, bytes.NewReader(bodies[i]))
					req.Header.Set("Content-Type", "application/json")
					resp, err := cl.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
	})
}
