package compliance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// policies is the registry as Check sees it: ws_us with defaults, its agent
// night_agent with all-day hours.
type policies map[string]Policy

func (p policies) Policy(ws, agent string) (Policy, bool) {
	if pol, ok := p[ws+"/"+agent]; ok {
		return pol, true
	}
	pol, ok := p[ws+"/"]
	return pol, ok
}

func testChecker(t *testing.T) *Checker {
	t.Helper()
	night := DefaultPolicy("US")
	night.Hours = AllDay()
	c := &Checker{
		Policies:     policies{"ws_us/": DefaultPolicy("US"), "ws_us/night_agent": night},
		Suppressions: NewTable(),
		Attempts:     NewAttempts(),
	}
	c.Suppressions.SetReady()
	c.Attempts.SetReady()
	return c
}

func TestCheck(t *testing.T) {
	c := testChecker(t)
	if err := c.Suppressions.Add("ws_us", "+12125550100", schemas.ReasonOptOut, utc("2026-07-01T10:00:00Z")); err != nil {
		t.Fatal(err)
	}
	noon := utc("2026-07-16T16:00:00Z") // 12:00 in New York
	for i, at := range []time.Time{noon.Add(-3 * time.Hour), noon.Add(-2 * time.Hour), noon.Add(-time.Hour)} {
		c.Attempts.Record("ws_us", "+12125550101", "call"+string(rune('0'+i)), at)
	}
	cases := []struct {
		name, agent, number string
		at                  time.Time
		outcome             Outcome
		says                string
		next                string
	}{
		{"allowed", "", "+12125550123", noon, Allowed, "", ""},
		{"suppressed, whatever the hour", "night_agent", "+12125550100", noon.Add(10 * time.Hour), OutcomeSuppressed, "do-not-call list (opt_out, since 2026-07-01T10:00:00Z)", ""},
		{"us premium rate", "", "+19005550123", noon, OutcomeDestinationNotAllowed, "premium_rate", ""},
		{"cuba", "", "+5352123456", noon, OutcomeDestinationNotAllowed, "in CU", ""},
		{"latvian premium", "", "+37190012345", noon, OutcomeDestinationNotAllowed, "in LV", ""},
		{"not E.164", "", "2125550123", noon, OutcomeDestinationNotAllowed, "not an E.164 phone number", ""},
		// Free again 24h after the first (09:00 NY tomorrow): inside hours.
		{"fourth attempt in a day", "", "+12125550101", noon, OutcomeAttemptCapped, "3 per 24 hours", "2026-07-17T13:00:00Z"},
		{"21:01 in new york", "", "+12125550123", utc("2026-07-16T01:01:00Z"), OutcomeOutsideCallingHours, "it is Wed 2026-07-15 21:01 in America/New_York", "2026-07-16T12:00:00Z"},
		{"21:01 in new york, an agent with all-day hours", "night_agent", "+12125550123", utc("2026-07-16T01:01:00Z"), Allowed, "", ""},
		{"test range with default hours", "", "+15550100001", noon, OutcomeOutsideCallingHours, "time zone of +15550100001 is unknown", ""},
		{"test range with all-day hours", "night_agent", "+15550100001", noon, Allowed, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := c.Check("ws_us", tc.agent, tc.number, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if v.Outcome != tc.outcome || !strings.Contains(v.Reason, tc.says) {
				t.Fatalf("got %q: %s; want %q saying %q", v.Outcome, v.Reason, tc.outcome, tc.says)
			}
			var next time.Time
			if tc.next != "" {
				next = utc(tc.next)
			}
			if !v.NextAllowedAt.Equal(next) {
				t.Fatalf("next allowed at %s, want %s", v.NextAllowedAt, next)
			}
			if v.Allowed() != (tc.outcome == Allowed) {
				t.Fatal("Allowed() disagrees with the outcome")
			}
		})
	}
	// Capped by attempts from 22:00 New York on (by a workspace whose
	// hours were wider then): the caps free up at 22:00 tomorrow, outside
	// the hours, so the next allowed time is 08:00 the day after.
	c.Attempts.Record("ws_us", "+12125550102", "late0", utc("2026-07-16T02:00:00Z"))
	c.Attempts.Record("ws_us", "+12125550102", "late1", utc("2026-07-16T02:30:00Z"))
	c.Attempts.Record("ws_us", "+12125550102", "late2", utc("2026-07-16T03:00:00Z"))
	v, _ := c.Check("ws_us", "", "+12125550102", noon)
	if v.Outcome != OutcomeAttemptCapped || !v.NextAllowedAt.Equal(utc("2026-07-17T12:00:00Z")) {
		t.Fatalf("capped into the night: %+v", v)
	}
}

// Nothing is decided while a table is loading, nor for an unknown workspace.
func TestCheckFailsClosed(t *testing.T) {
	at := utc("2026-07-16T16:00:00Z")
	c := testChecker(t)
	c.Suppressions = NewTable()
	if _, err := c.Check("ws_us", "", "+12125550123", at); !errors.Is(err, ErrNotReady) {
		t.Fatalf("suppressions loading: %v", err)
	}
	c = testChecker(t)
	c.Attempts = NewAttempts()
	if _, err := c.Check("ws_us", "", "+12125550123", at); !errors.Is(err, ErrNotReady) {
		t.Fatalf("attempts loading: %v", err)
	}
	if _, err := testChecker(t).Check("ws_nope", "", "+12125550123", at); !errors.Is(err, ErrUnknownWorkspace) {
		t.Fatalf("unknown workspace: %v", err)
	}
	// Ingest's checker has no attempt history: caps are the dialer's.
	c = testChecker(t)
	c.Attempts = nil
	if v, err := c.Check("ws_us", "", "+12125550123", at); err != nil || !v.Allowed() {
		t.Fatalf("without attempts: %+v %v", v, err)
	}
}

func TestAdmit(t *testing.T) {
	ctx := context.Background()
	at := utc("2026-07-16T16:00:00Z")
	c := testChecker(t)
	barriers := 0
	c.Barrier = func(context.Context) error { barriers++; return nil }

	v, err := c.Admit(ctx, "ws_us", "", "+12125550123", "c1", at)
	if err != nil || !v.Allowed() || barriers != 1 {
		t.Fatalf("first: %+v %v (barriers %d)", v, err, barriers)
	}
	if _, err := c.Admit(ctx, "ws_us", "", "+12125550123", "c2", at.Add(time.Second)); !errors.Is(err, ErrNotReady) {
		t.Fatalf("second while the first is in flight: %v", err)
	}
	// A refusal reserves nothing.
	if v, _ := c.Admit(ctx, "ws_us", "", "+19005550123", "c3", at); v.Outcome != OutcomeDestinationNotAllowed {
		t.Fatalf("premium: %+v", v)
	}
	if ok, _ := c.Attempts.Allowed("ws_us", "+19005550123", at, Caps{PerDay: 1, PerWeek: 1}); !ok {
		t.Fatal("a refused call was counted")
	}

	// A barrier that fails leaves the call undecided.
	c.Barrier = func(context.Context) error { return errors.New("broker down") }
	if _, err := c.Admit(ctx, "ws_us", "", "+12125550124", "c4", at); !errors.Is(err, ErrNotReady) {
		t.Fatalf("failed barrier: %v", err)
	}
	// A decision that took longer than Settle/2 is released, not kept.
	c.Barrier = nil
	clock := time.Now()
	c.Now = func() time.Time { clock = clock.Add(Settle); return clock }
	if _, err := c.Admit(ctx, "ws_us", "", "+12125550125", "c5", at); !errors.Is(err, ErrNotReady) {
		t.Fatalf("slow decision: %v", err)
	}
	if ok, _ := c.Attempts.Allowed("ws_us", "+12125550125", at, Caps{PerDay: 1, PerWeek: 1}); !ok {
		t.Fatal("a released decision still counts")
	}
}
