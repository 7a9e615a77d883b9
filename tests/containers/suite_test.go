package containers

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/dialstream/dialstream/tests/invariants"
)

// Every fault test: a fresh topology, a steady stream of calls (3 calls/s
// for 30 s, the simulator's scripts mixed: answered, busy, declined, not
// found), the fault in the middle of it, then the wait for the pipeline to
// heal (every accepted call ended, every event delivered) and the
// invariant check.

var numbers = []string{
	"+15550100001", // answers after 1 s, hangs up after 3 s: completed
	"+15550100486", // busy
	"+15550100001",
	"+15550100603", // declined
	"+15550100001",
	"+15550100404", // not found: failed
}

const (
	loadRate     = 3.0
	loadDuration = 30 * time.Second
	// A request is retried with its Idempotency-Key for this long (the
	// broker outage is the longest a request waits).
	retryFor = 60 * time.Second
	// healWithin bounds the wait after the load for every call to end and
	// every event to be delivered; the retry schedule alone is 67 s.
	healWithin = 150 * time.Second
)

// SIGKILL one dialer mid-load and restart it later. Its partitions move to
// the other dialer once its session expires (6 s); a call it was dialing
// must not be dialed again, and must still end.
func TestDialerKilled(t *testing.T) {
	runScenario(t, topoOptions{dialers: 2, notifiers: 2}, func(ctx context.Context, tp *topology) {
		tp.at(ctx, 10*time.Second)
		tp.kill(ctx, "dialer-1")
		tp.at(ctx, 22*time.Second)
		tp.restart(ctx, "dialer-1")
	})
}

// Stop the broker (SIGTERM) and start it again on its data volume. While it
// is down ingest answers 503 and the client retries with its
// Idempotency-Key; nothing accepted may be lost, nothing dialed twice.
func TestBrokerRestarted(t *testing.T) {
	runScenario(t, topoOptions{dialers: 2, notifiers: 2}, func(ctx context.Context, tp *topology) {
		tp.at(ctx, 10*time.Second)
		tp.stop(ctx, "broker", 10*time.Second)
		tp.at(ctx, 18*time.Second)
		tp.restart(ctx, "broker")
	})
}

// Take a notifier off the network for 15 s, longer than the first retry
// steps (2 s, 5 s, 10 s): its session expires, the other notifier takes its
// partitions and re-delivers what it had not committed; then it comes back
// and rejoins.
func TestNotifierPartitioned(t *testing.T) {
	runScenario(t, topoOptions{dialers: 2, notifiers: 2}, func(ctx context.Context, tp *topology) {
		tp.at(ctx, 10*time.Second)
		tp.disconnect(ctx, "notifier-1")
		tp.at(ctx, 25*time.Second)
		tp.connect(ctx, "notifier-1")
	})
}

// Freeze the webhook receiver for 12 s: connections are accepted by the
// kernel and never answered, so every delivery times out (NOTIFIER_TIMEOUT
// 2 s) and is retried from the retry topics until the receiver answers.
func TestReceiverPaused(t *testing.T) {
	runScenario(t, topoOptions{dialers: 2, notifiers: 2}, func(ctx context.Context, tp *topology) {
		tp.at(ctx, 10*time.Second)
		tp.pause(ctx, "receiver")
		tp.at(ctx, 22*time.Second)
		tp.unpause(ctx, "receiver")
	})
}

// Scale the dialers 1 -> 3 -> 1 under load: two rebalances that hand
// partitions with calls in every state to new owners, then back (the
// scale-down is graceful: SIGTERM, drain, commit on revoke).
func TestDialersScaled(t *testing.T) {
	runScenario(t, topoOptions{dialers: 1, notifiers: 2}, func(ctx context.Context, tp *topology) {
		tp.at(ctx, 8*time.Second)
		tp.add(ctx, tp.dialerSpec(2), tp.dialerSpec(3))
		tp.at(ctx, 20*time.Second)
		tp.stopAll(ctx, 20*time.Second, "dialer-2", "dialer-3")
	})
}

func runScenario(t *testing.T, opts topoOptions, fault func(context.Context, *topology)) {
	start := time.Now()
	tp := newTopology(t, opts)
	rec, err := invariants.NewRecorder(tp.kafkaOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	tp.t0 = time.Now()
	load := rec.StartLoad(ctx, tp.client(), invariants.LoadConfig{
		Rate: loadRate, Duration: loadDuration, Numbers: numbers, RetryFor: retryFor, KeyPrefix: "it-" + tp.id,
	})
	fault(ctx, tp)
	load.Wait()
	loaded := time.Since(tp.t0)
	tp.logf("load done: %d calls accepted", rec.AcceptedCount())

	o := tp.settle(ctx, rec, healWithin)
	healed := time.Since(tp.t0) - loaded
	rep := invariants.Check(o)
	t.Logf("FIGURES %s: %s", t.Name(), rep.Figures())
	for _, r := range slices.Sorted(maps.Keys(rep.EndReasons)) {
		t.Logf("  ended %dx with %s", rep.EndReasons[r], r)
	}
	t.Logf("RUNTIME %s: topology up in %s, load with fault %s, healed %s later, whole test %s", t.Name(),
		tp.started.Round(time.Second), loaded.Round(time.Second), healed.Round(time.Second),
		time.Since(start).Round(time.Second))
	for _, p := range rep.Problems {
		t.Errorf("invariant violated: %s", p)
	}
}

// settle polls until every accepted call has ended and every event reached
// the receiver, or within passes; then it reads everything once more, with
// the recorder caught up to the end of the topics.
func (tp *topology) settle(ctx context.Context, rec *invariants.Recorder, within time.Duration) invariants.Observed {
	tp.t.Helper()
	hc := httpClient()
	deadline := time.Now().Add(within)
	said := time.Now()
	for {
		o, err := tp.observe(ctx, rec, hc)
		if err == nil {
			notEnded, undelivered := invariants.Pending(o)
			if notEnded == 0 && undelivered == 0 {
				break
			}
			if time.Now().After(deadline) {
				tp.logf("not healed within %s: %d accepted calls not ended, %d events not delivered", within, notEnded, undelivered)
				break
			}
			if time.Since(said) >= 10*time.Second {
				tp.logf("healing: %d accepted calls not ended, %d events not delivered", notEnded, undelivered)
				said = time.Now()
			}
		} else if time.Now().After(deadline) {
			tp.t.Fatalf("observe: %v", err)
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			tp.t.Fatalf("settle: %v", ctx.Err())
		case <-t.C:
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rec.WaitCaughtUp(cctx); err != nil {
		tp.t.Error(err)
	}
	o, err := tp.observe(ctx, rec, hc)
	if err != nil {
		tp.t.Fatalf("observe: %v", err)
	}
	tp.logf("healed: %d calls accepted, all ended and every event delivered", len(o.Accepted))
	return o
}

// observe is the recorder's events plus the dials at phonesim and the
// deliveries at the receiver, each read through its published port.
func (tp *topology) observe(ctx context.Context, rec *invariants.Recorder, hc *http.Client) (invariants.Observed, error) {
	o := rec.Observed()
	psim, err := tp.hostAddr(ctx, "phonesim")
	if err != nil {
		return o, err
	}
	recv, err := tp.hostAddr(ctx, "receiver")
	if err != nil {
		return o, err
	}
	if o.Dials, err = invariants.FetchDials(ctx, hc, "http://"+psim); err != nil {
		return o, err
	}
	if o.Deliveries, o.DeliveriesDropped, err = invariants.FetchDeliveries(ctx, hc, "http://"+recv); err != nil {
		return o, err
	}
	return o, nil
}
