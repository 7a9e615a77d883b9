package compliance

import (
	"errors"
	"testing"
	"time"
)

// The fourth attempt within 24 hours is capped until the first ages out; the
// eighth within 7 days until the first of the week does. Time is injected.
func TestAttemptCaps(t *testing.T) {
	a := NewAttempts()
	caps := DefaultCaps()
	t0 := utc("2026-07-13T15:00:00Z") // a Monday
	const ws, num = "ws_a", "+12125550123"
	call := func(i int) string { return "call" + string(rune('a'+i)) }

	for i := range 3 {
		at := t0.Add(time.Duration(i) * time.Hour)
		if ok, _ := a.Allowed(ws, num, at, caps); !ok {
			t.Fatalf("attempt %d capped", i+1)
		}
		a.Record(ws, num, call(i), at)
	}
	ok, next := a.Allowed(ws, num, t0.Add(3*time.Hour), caps)
	if ok || !next.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("fourth within a day: %v, next %s, want capped until %s", ok, next, t0.Add(24*time.Hour))
	}
	if ok, _ := a.Allowed(ws, num, t0.Add(24*time.Hour), caps); !ok {
		t.Fatal("still capped when the first attempt is 24 hours old")
	}
	// Another workspace, another number: their own counts.
	if ok, _ := a.Allowed("ws_b", num, t0.Add(3*time.Hour), caps); !ok {
		t.Fatal("another workspace's count")
	}
	if ok, _ := a.Allowed(ws, "+12125550124", t0.Add(3*time.Hour), caps); !ok {
		t.Fatal("another number's count")
	}
	// The same call read twice (a replayed event) counts once.
	a.Record(ws, num, call(2), t0.Add(2*time.Hour))

	// Days 2 and 3: three and one more: seven in the week.
	for i := 3; i < 7; i++ {
		at := t0.Add(time.Duration(24+(i-3)*8) * time.Hour)
		if ok, next := a.Allowed(ws, num, at, caps); !ok {
			t.Fatalf("attempt %d at %s capped until %s", i+1, at, next)
		}
		a.Record(ws, num, call(i), at)
	}
	at := t0.Add(4 * 24 * time.Hour)
	ok, next = a.Allowed(ws, num, at, caps)
	if ok || !next.Equal(t0.Add(7*24*time.Hour)) {
		t.Fatalf("eighth within a week: %v, next %s, want %s", ok, next, t0.Add(7*24*time.Hour))
	}
	// A dialing that ended with a compliance outcome never rang: forgotten.
	a.Forget(ws, num, call(6))
	if ok, _ := a.Allowed(ws, num, at, caps); !ok {
		t.Fatal("a forgotten attempt still counts")
	}
	// Unlimited lifts a cap.
	a.Record(ws, num, call(6), at)
	if ok, _ := a.Allowed(ws, num, at, Caps{PerDay: Unlimited, PerWeek: Unlimited}); !ok {
		t.Fatal("unlimited capped")
	}
	// Prune drops what a week has aged out.
	if a.Prune(t0.Add(30*24*time.Hour)) != 1 || a.Numbers() != 0 {
		t.Fatalf("after prune: %d numbers", a.Numbers())
	}
}

// Reserve counts an attempt the moment it is decided and holds off this
// process's next attempt to the number until the first came back on the
// events topic and Settle passed.
func TestReserveOneInFlight(t *testing.T) {
	now := utc("2026-07-13T15:00:00Z")
	a := NewAttempts()
	a.now = func() time.Time { return now }
	caps := DefaultCaps()
	const ws, num = "ws_a", "+12125550123"

	if ok, _, err := a.Reserve(ws, num, "c1", now, caps); !ok || err != nil {
		t.Fatalf("first reserve: %v %v", ok, err)
	}
	if ok, _, err := a.Reserve(ws, num, "c1", now, caps); !ok || err != nil {
		t.Fatalf("the same call again: %v %v", ok, err)
	}
	if _, _, err := a.Reserve(ws, num, "c2", now.Add(10*time.Second), caps); !errors.Is(err, ErrNotReady) {
		t.Fatalf("second call while the first is in flight: %v", err)
	}
	// Another number is not held off.
	if ok, _, err := a.Reserve(ws, "+12125550124", "c3", now, caps); !ok || err != nil {
		t.Fatalf("another number: %v %v", ok, err)
	}
	now = now.Add(2 * time.Minute)
	a.Record(ws, num, "c1", now.Add(-2*time.Minute)) // its dialing event comes back
	if _, _, err := a.Reserve(ws, num, "c2", now.Add(Settle/2), caps); !errors.Is(err, ErrNotReady) {
		t.Fatalf("within Settle of coming back: %v", err)
	}
	if ok, _, err := a.Reserve(ws, num, "c2", now.Add(Settle), caps); !ok || err != nil {
		t.Fatalf("after Settle: %v %v", ok, err)
	}
	// A reservation that never comes back holds off only InFlightTimeout.
	a.Release(ws, num, "c2")
	if ok, _, err := a.Reserve(ws, num, "c4", now.Add(2*Settle), caps); !ok || err != nil {
		t.Fatalf("after release: %v %v", ok, err)
	}
	if _, _, err := a.Reserve(ws, num, "c5", now.Add(2*Settle+InFlightTimeout-time.Second), caps); !errors.Is(err, ErrNotReady) {
		t.Fatalf("before the in-flight timeout: %v", err)
	}
	// c1 and c4 counted, c2 released: c5 is the third, allowed.
	if ok, next, err := a.Reserve(ws, num, "c5", now.Add(2*Settle+InFlightTimeout), caps); !ok || err != nil {
		t.Fatalf("third attempt after the in-flight timeout: %v %s %v", ok, next, err)
	}
	// The fourth within the day is capped, in flight or not.
	later := now.Add(time.Hour)
	a.Record(ws, num, "c5", later)
	if ok, next, err := a.Reserve(ws, num, "c6", later.Add(time.Hour), caps); ok || err != nil || next.IsZero() {
		t.Fatalf("fourth: %v %s %v", ok, next, err)
	}
	// Unlimited caps: nothing to race for, never held off.
	for i := range 3 {
		if ok, _, err := a.Reserve(ws, "+12125550199", "u"+string(rune('0'+i)), later, Caps{Unlimited, Unlimited}); !ok || err != nil {
			t.Fatalf("unlimited %d: %v %v", i, ok, err)
		}
	}
}

// Two dialers that see each other only through the events topic, each with
// partitions deciding concurrently, stay within the cap plus one.
func TestTwoDialersRaceAtMostOneExtra(t *testing.T) {
	caps := DefaultCaps()
	now := utc("2026-07-13T15:00:00Z")
	a, b := NewAttempts(), NewAttempts()
	a.now = func() time.Time { return now }
	b.now = a.now
	const ws, num = "ws_a", "+12125550123"
	placed := 0
	// Each round both dialers decide before either's event is read by
	// the other (the worst case), then the events go round.
	for round := range 5 {
		var mine [2]string
		for i, d := range []*Attempts{a, b} {
			for p := range 3 { // three partitions each, same instant
				id := string(rune('a'+i)) + string(rune('0'+round)) + string(rune('0'+p))
				ok, _, err := d.Reserve(ws, num, id, now, caps)
				if ok && err == nil {
					placed++
					mine[i] = id
				}
			}
		}
		for _, id := range mine {
			if id != "" {
				a.Record(ws, num, id, now)
				b.Record(ws, num, id, now)
			}
		}
		now = now.Add(2 * Settle)
	}
	if placed > caps.PerDay+1 || placed < caps.PerDay {
		t.Fatalf("%d attempts placed, want %d or %d", placed, caps.PerDay, caps.PerDay+1)
	}
}
