package dialer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// trunkRates paces the dials of each outbound SIP trunk to the carrier's
// calls-per-second limit (DIALER_TRUNK_CALLS_PER_SECOND). Carriers refuse
// or drop INVITEs past it, and a burst of dials (the calls that waited out a
// LiveKit or network outage, all due at once) is what crosses it: admission
// paces a workspace's new calls, this paces every dial, redials included.
// Each process paces its own dials; with several dialers the trunk sees up
// to their sum.
type trunkRates struct {
	perSecond float64 // 0: no limit

	mu  sync.Mutex
	lim map[string]*rate.Limiter
}

func newTrunkRates(perSecond float64) *trunkRates {
	return &trunkRates{perSecond: perSecond, lim: map[string]*rate.Limiter{}}
}

// errNoTurn is a dial whose turn on its trunk comes too late for its claim:
// nothing is sent and the call is dialed again under a new claim.
var errNoTurn = errors.New("no turn on the trunk within the claim's window")

// wait blocks until the trunk may take one more dial, for at most budget.
// It returns how long it waited; errNoTurn if the turn is further off than
// budget (it takes no turn then), ctx's error if ctx ends first.
func (t *trunkRates) wait(ctx context.Context, trunk string, budget time.Duration) (time.Duration, error) {
	if t == nil || t.perSecond <= 0 {
		return 0, nil
	}
	t.mu.Lock()
	l, ok := t.lim[trunk]
	if !ok {
		// Burst 1: the dials are spaced evenly, never a second's worth at
		// once (a carrier counts calls per second over any window).
		l = rate.NewLimiter(rate.Limit(t.perSecond), 1)
		t.lim[trunk] = l
	}
	r := l.Reserve()
	t.mu.Unlock()
	delay := r.Delay()
	if delay > budget {
		r.Cancel()
		return 0, fmt.Errorf("%w (trunk %s at %g calls per second, next turn in %s)", errNoTurn, trunk, t.perSecond, delay.Round(time.Millisecond))
	}
	if delay == 0 {
		return 0, nil
	}
	tm := time.NewTimer(delay)
	defer tm.Stop()
	select {
	case <-tm.C:
		return delay, nil
	case <-ctx.Done():
		r.Cancel()
		return 0, ctx.Err()
	}
}
