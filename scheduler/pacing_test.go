package scheduler

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// A release loop driven by a jittery clock, asking as often as it likes,
// never releases more than calls_per_second in any one-second window [t,
// t+1s), nor more than max_concurrent at once; and it keeps up with the rate
// when calls end quickly.
func TestPacingHoldsEveryOneSecondWindow(t *testing.T) {
	for _, tc := range []struct {
		cps  float64
		conc int
	}{{1, 100}, {3, 100}, {7, 100}, {10, 4}, {0.5, 10}, {50, 1000}} {
		p := newPacer(tc.cps, tc.conc)
		rng := rand.New(rand.NewPCG(1, uint64(tc.cps*1000)))
		start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
		now := start
		var releases []time.Time
		var running []time.Time // end times of calls in progress
		for now.Sub(start) < 60*time.Second {
			// Calls end after 0.1-3 s.
			kept := running[:0]
			for _, end := range running {
				if end.After(now) {
					kept = append(kept, end)
				}
			}
			running = kept
			at, ok := p.next(now, len(running))
			switch {
			case ok && !at.After(now):
				p.released(now)
				releases = append(releases, now)
				running = append(running, now.Add(time.Duration(100+rng.IntN(2900))*time.Millisecond))
				if len(running) > tc.conc {
					t.Fatalf("cps %v: %d calls in progress, max_concurrent %d", tc.cps, len(running), tc.conc)
				}
			case ok:
				// A timer set for at wakes up to 200 µs late, or a wake-up
				// comes early (a new contact became due) and asks again.
				if rng.IntN(4) == 0 {
					now = now.Add((at.Sub(now)) / 2)
				} else {
					now = at.Add(time.Duration(rng.IntN(200)) * time.Microsecond)
				}
			default:
				now = now.Add(time.Duration(1+rng.IntN(5)) * time.Millisecond)
			}
		}
		limit := int(math.Ceil(tc.cps))
		for i := range releases {
			n := 0
			for j := i; j < len(releases) && releases[j].Sub(releases[i]) < time.Second; j++ {
				n++
			}
			if n > limit {
				t.Fatalf("cps %v: %d releases in the second from %s", tc.cps, n, releases[i].Format(time.StampMilli))
			}
		}
		// Rate accuracy: with calls ending fast enough for the concurrency
		// limit not to bind, 60 s hold 60*cps releases give or take one
		// release, the timer's lateness aside.
		if float64(tc.conc) >= tc.cps*3 {
			want := 60 * tc.cps
			if got := float64(len(releases)); got < want*0.95 || got > want+1 {
				t.Errorf("cps %v: %v releases in 60 s, want about %v", tc.cps, got, want)
			}
		}
	}
}

func TestPacerIntervalRoundsUp(t *testing.T) {
	if p := newPacer(3, 1); p.interval*3 < time.Second {
		t.Fatalf("interval %s: three of them fit inside a second", p.interval)
	}
	p := newPacer(2, 1)
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	if _, ok := p.next(at, 1); ok {
		t.Fatal("released past max_concurrent")
	}
	p.released(at)
	if next, ok := p.next(at.Add(100*time.Millisecond), 0); !ok || !next.Equal(at.Add(500*time.Millisecond)) {
		t.Fatalf("next %s %v, want 500 ms after the last", next, ok)
	}
}
