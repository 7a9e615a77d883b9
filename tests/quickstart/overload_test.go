package quickstart

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/tests/testbin"
)

// Overload, as a user meets it: ingest offered twice what it has just been
// measured to serve. What must hold (README, "Overload"): every request is
// answered within its timeout, never a hung connection; a refusal is a 503
// (replica at its in-flight limit) or 429 (workspace rate) with Retry-After;
// the process's memory stays bounded; and every call that got its 202 is
// dialed, exactly once, while a refused request dials nothing.
//
// The whole pipeline runs in `dialstream dev` (embedded broker, real
// livekit-server, phonesim); the load comes from this process over
// loopback, bounded in count and time. The calls go to 100 busy numbers
// (486 at once), so thousands of them are dialed in a couple of minutes.

const (
	// overloadMaxInFlight is ingest's INGEST_MAX_IN_FLIGHT here: small
	// enough that a burst of a few seconds at twice the capacity reaches
	// it on any machine (the default, 512, takes longer to fill; the
	// mechanism is the same).
	overloadMaxInFlight = 64
	calibrateFor        = time.Second
	calibrateClients    = 32
	overloadFor         = 2 * time.Second
	// overloadMaxRequests bounds the burst whatever the calibration says.
	overloadMaxRequests = 12_000
	// answerTimeout is the client's patience: an answer slower than this
	// is a hung connection.
	answerTimeout = 10 * time.Second
	// overloadRSSBound is the bound on the dev process's memory during the
	// burst and the dials after it: the whole pipeline idles near 150 MiB;
	// what overload may add is INGEST_MAX_IN_FLIGHT bodies and the queued
	// calls' state, a few MiB.
	overloadRSSBound = 768 << 20
)

type answer struct {
	code       int
	retryAfter string
	took       time.Duration
	room       string
	err        error
}

func TestOverloadHeld(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline and dials thousands of calls")
	}
	reg := devRegistryWith(t, map[string]string{
		"limits: {max_concurrent_calls: 5, calls_per_second: 2, burst: 5, requests_per_second: 1000}": "limits: {max_concurrent_calls: 60, calls_per_second: 60, burst: 60, requests_per_second: 100000}",
	})
	phonesim := testbin.FreeAddr(t)
	dev := testbin.StartDev(t, map[string]string{"PHONESIM_HTTP_ADDR": phonesim, "DIALSTREAM_REGISTRY": reg,
		"INGEST_MAX_IN_FLIGHT": strconv.Itoa(overloadMaxInFlight), "LOG_LEVEL": "warn"})
	url := "http://" + dev.Ingest + "/v1/api/call"
	tr := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: answerTimeout}
	var seq int
	var seqMu sync.Mutex
	post := func() answer {
		seqMu.Lock()
		seq++
		n := seq
		seqMu.Unlock()
		body := fmt.Sprintf(`{"to":"+155501%02d486","call_agent_id":"a1b2c3d4e5f6a7b8c9d0e1f2","callback_url":"http://%s/hooks/ws_demo","dynamic_variables":{"firstName":"Ada"}}`,
			n%100, dev.Inspector)
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-workspace-id", "ws_demo")
		req.Header.Set("Authorization", "Bearer dsk_demo_local")
		start := time.Now()
		r, err := hc.Do(req)
		a := answer{took: time.Since(start), err: err}
		if err != nil {
			return a
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		a.took, a.code, a.retryAfter, a.err = time.Since(start), r.StatusCode, r.Header.Get("Retry-After"), err
		if r.StatusCode == http.StatusAccepted {
			var ok struct {
				RoomName string `json:"roomName"`
			}
			if json.Unmarshal(b, &ok) != nil || ok.RoomName == "" {
				a.err = fmt.Errorf("202 without a roomName: %.200s", b)
			}
			a.room = ok.RoomName
		}
		return a
	}

	// The memory of the dev process (every service, the broker, phonesim)
	// through ingest's /metrics, sampled until the test has its answer.
	rss := sampleRSS(t, "http://"+dev.Ingest+"/metrics")

	// 1. Capacity: closed loop, calibrateClients at once, for calibrateFor.
	var calib []answer
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(calibrateFor)
	for range calibrateClients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				a := post()
				mu.Lock()
				calib = append(calib, a)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	served := 0
	for _, a := range calib {
		if a.code == http.StatusAccepted {
			served++
		}
	}
	capacity := float64(served) / calibrateFor.Seconds()
	if served < 50 {
		t.Fatalf("calibration: only %d of %d requests accepted in %v; answers %v", served, len(calib), calibrateFor, tally(calib))
	}

	// 2. Overload: open loop at twice that rate for overloadFor. Each
	// request is sent on time whatever the earlier ones are doing.
	rate := 2 * capacity
	n := min(overloadMaxRequests, int(rate*overloadFor.Seconds()))
	interval := time.Duration(float64(time.Second) / rate)
	answers := make([]answer, n)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // the open loop's clock, not a wait for a condition
		}
		wg.Go(func() { answers[i] = post() })
	}
	sent := time.Since(start)
	wg.Wait()
	t.Logf("capacity %.0f req/s (%d clients, closed loop); overload: %d requests at %.0f req/s offered (%.0f req/s sent) for %v",
		capacity, calibrateClients, n, rate, float64(n)/sent.Seconds(), sent.Round(time.Millisecond))
	t.Logf("overload answers: %s", summarize(answers))

	// What a client sees: an answer to every request, in time; a refusal
	// says when to come back.
	refused := 0
	for i, a := range answers {
		switch {
		case a.err != nil:
			t.Fatalf("request %d: no answer after %v: %v (a hung or dropped connection)", i, a.took.Round(time.Millisecond), a.err)
		case a.code == http.StatusAccepted:
		case a.code == http.StatusServiceUnavailable || a.code == http.StatusTooManyRequests:
			refused++
			if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 {
				t.Fatalf("request %d: %d with Retry-After %q; want whole seconds >= 1", i, a.code, a.retryAfter)
			}
		default:
			t.Fatalf("request %d: answered %d; under overload an answer is 202, 503 or 429", i, a.code)
		}
	}
	// Proof the burst overloaded ingest: it refused some of it.
	if refused == 0 {
		t.Fatalf("no request of %d at %.0f req/s was refused: the burst did not reach ingest's limit of %d in flight, so it proves nothing",
			n, rate, overloadMaxInFlight)
	}

	// 3. Every 202 is dialed, once; nothing else is.
	want := map[string]bool{}
	for _, a := range slices.Concat(calib, answers) {
		if a.code == http.StatusAccepted {
			want[a.room] = true
		}
	}
	var byRoom map[string]int
	testutil.EventuallyWhy(t, 8*time.Minute, "every accepted call dialed", func() (bool, string) {
		var out struct {
			ByRoom map[string]int `json:"byRoom"`
		}
		getJSON(t, "http://"+phonesim+"/dials", &out)
		byRoom = out.ByRoom
		dialed := 0
		for room := range want {
			if byRoom[room] > 0 {
				dialed++
			}
		}
		return dialed == len(want), fmt.Sprintf("%d of %d accepted calls dialed", dialed, len(want))
	})
	total := 0
	for room, k := range byRoom {
		total += k
		if k > 1 {
			t.Errorf("room %s dialed %d times", room, k)
		}
		if !want[room] {
			t.Errorf("room %s dialed, but no request got a 202 for it", room)
		}
	}
	peak := rss()
	t.Logf("dialed %d calls for %d 202s; dev process RSS peak %d MiB", total, len(want), peak>>20)
	if peak > overloadRSSBound {
		t.Errorf("dev process RSS peaked at %d MiB under overload; bound %d MiB", peak>>20, overloadRSSBound>>20)
	}
}

// sampleRSS polls process_resident_memory_bytes every 200 ms until the test
// ends and returns a func reporting the peak seen so far.
func sampleRSS(t *testing.T, metricsURL string) func() int64 {
	var mu sync.Mutex
	var peak int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := scrape(ctx, metricsURL, "process_resident_memory_bytes"); v > 0 {
				mu.Lock()
				peak = max(peak, int64(v))
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// scrape reads one unlabelled metric from a Prometheus text page; 0 when
// the page or the metric is not there.
func scrape(ctx context.Context, url, name string) float64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// key names an answer by its status code, or "error" when none came.
func (a answer) key() string {
	if a.err != nil {
		return "error"
	}
	return strconv.Itoa(a.code)
}

func tally(as []answer) map[string]int {
	out := map[string]int{}
	for _, a := range as {
		out[a.key()]++
	}
	return out
}

// summarize prints the answer mix and, per status, the latency p50/p99/max.
func summarize(as []answer) string {
	by := map[string][]time.Duration{}
	for _, a := range as {
		by[a.key()] = append(by[a.key()], a.took)
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(by)) {
		d := by[k]
		slices.Sort(d)
		q := func(p float64) time.Duration {
			return d[min(len(d)-1, int(p*float64(len(d))))].Round(100 * time.Microsecond)
		}
		parts = append(parts, fmt.Sprintf("%s: %d (p50 %v, p99 %v, max %v)", k, len(d), q(0.50), q(0.99), d[len(d)-1].Round(100*time.Microsecond)))
	}
	return strings.Join(parts, "; ")
}
