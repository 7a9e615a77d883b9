package dialer

import (
	"fmt"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

const testRegistryYAML = `
workspaces:
  - id: ws_a
    limits: {max_concurrent_calls: 2, calls_per_second: 1000, burst: 1000}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
  - id: ws_b
    limits: {max_concurrent_calls: 2, calls_per_second: 1000, burst: 1000}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
  - id: ws_slow
    limits: {max_concurrent_calls: 10, calls_per_second: 2, burst: 1}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
agents:
  - {id: agent_a, workspace: ws_a, livekit_agent_name: agent-a, sip_trunk_id: ST_a, caller_id: "+15550109999", ringing_timeout: 5s, max_call_duration: 1m, settings: {voice: alloy}}
  - {id: agent_b, workspace: ws_b, livekit_agent_name: agent-b, sip_trunk_id: ST_b, ringing_timeout: 5s, max_call_duration: 1m}
  - {id: agent_slow, workspace: ws_slow, livekit_agent_name: agent-slow, sip_trunk_id: ST_s, ringing_timeout: 5s, max_call_duration: 1m}
`

func testRegistry(t testing.TB, yaml string) *registry.Registry {
	t.Helper()
	reg, err := registry.Parse([]byte(yaml), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func queuedState(id, ws string, at time.Time) *callState {
	return &callState{CallID: id, WorkspaceID: ws, Phase: schemas.StatusQueued, QueuedAt: at}
}

// With max concurrency 2, a burst of 10 never has more than 2 live: the
// next call is admitted only when one ends. Admission order is FIFO.
func TestAdmissionConcurrency(t *testing.T) {
	clk := &fakeClock{t: t0}
	var admitted []admitTicket
	a := newAdmission(testRegistry(t, testRegistryYAML), 1, clk.now, func(tk admitTicket) { admitted = append(admitted, tk) })
	for i := range 10 {
		a.sync(0, queuedState(fmt.Sprintf("call%02d", i), "ws_a", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	live := map[string]bool{}
	maxLive, order := 0, []string{}
	for round := 0; len(order) < 10 && round < 100; round++ {
		tickets, _ := a.step()
		for _, tk := range tickets {
			live[tk.CallID] = true
			order = append(order, tk.CallID)
			a.sync(0, &callState{CallID: tk.CallID, WorkspaceID: "ws_a", Phase: schemas.StatusDialing})
		}
		maxLive = max(maxLive, len(live))
		// End the oldest live call.
		for _, id := range order {
			if live[id] {
				delete(live, id)
				a.sync(0, &callState{CallID: id, WorkspaceID: "ws_a", Phase: schemas.StatusEnded})
				break
			}
		}
	}
	if maxLive != 2 {
		t.Fatalf("max live = %d, want 2", maxLive)
	}
	for i, id := range order {
		if id != fmt.Sprintf("call%02d", i) {
			t.Fatalf("admission order %v is not FIFO", order)
		}
	}
	if a.queuedIn(0) != 0 {
		t.Fatalf("queued left: %d", a.queuedIn(0))
	}
}

// A workspace at its limit does not delay another workspace's call.
func TestAdmissionIsolatesWorkspaces(t *testing.T) {
	clk := &fakeClock{t: t0}
	a := newAdmission(testRegistry(t, testRegistryYAML), 1, clk.now, func(admitTicket) {})
	for i := range 10 {
		a.sync(0, queuedState(fmt.Sprintf("a%02d", i), "ws_a", t0))
	}
	a.sync(0, queuedState("b00", "ws_b", t0.Add(time.Second)))
	tickets, _ := a.step()
	var gotB bool
	n := 0
	for _, tk := range tickets {
		gotB = gotB || tk.CallID == "b00"
		if tk.WorkspaceID == "ws_a" {
			n++
		}
	}
	if !gotB || n != 2 {
		t.Fatalf("first step admitted %+v; want 2 of ws_a and ws_b's call", tickets)
	}
}

// The token bucket paces dials: burst 1 at 2/s admits one now and tells how
// long until the next.
func TestAdmissionRate(t *testing.T) {
	clk := &fakeClock{t: t0}
	a := newAdmission(testRegistry(t, testRegistryYAML), 1, clk.now, func(admitTicket) {})
	for i := range 3 {
		a.sync(0, queuedState(fmt.Sprintf("s%d", i), "ws_slow", t0))
	}
	tickets, wait := a.step()
	if len(tickets) != 1 || wait < 400*time.Millisecond || wait > 500*time.Millisecond {
		t.Fatalf("tickets %d wait %s", len(tickets), wait)
	}
	clk.t = clk.t.Add(wait)
	if tickets, _ = a.step(); len(tickets) != 1 {
		t.Fatalf("after %s: %d tickets", wait, len(tickets))
	}
}

// Failed admit writes put the call back; an admit applied after a reload
// (the controller did not write it) counts the call live once.
func TestAdmissionSyncIsIdempotent(t *testing.T) {
	clk := &fakeClock{t: t0}
	a := newAdmission(testRegistry(t, testRegistryYAML), 1, clk.now, func(admitTicket) {})
	st := queuedState("c1", "ws_a", t0)
	a.sync(3, st)
	a.sync(3, st)
	if a.queuedIn(3) != 1 {
		t.Fatalf("queued %d", a.queuedIn(3))
	}
	tickets, _ := a.step()
	a.failed(tickets[0])
	if a.queuedIn(3) != 1 || a.liveTotal != 0 {
		t.Fatalf("after failed write: queued %d live %d", a.queuedIn(3), a.liveTotal)
	}
	dialing := &callState{CallID: "c1", WorkspaceID: "ws_a", Phase: schemas.StatusDialing}
	a.sync(3, dialing)
	a.sync(3, dialing)
	if a.queuedIn(3) != 0 || a.liveTotal != 1 {
		t.Fatalf("after apply: queued %d live %d", a.queuedIn(3), a.liveTotal)
	}
	a.dropPartition(3)
	if a.liveTotal != 0 || len(a.calls) != 0 {
		t.Fatalf("after drop: live %d calls %d", a.liveTotal, len(a.calls))
	}
}

// A process owning half the partitions enforces half the limits (rounded
// up, at least 1).
func TestAdmissionShare(t *testing.T) {
	a := newAdmission(testRegistry(t, testRegistryYAML), 6, time.Now, func(admitTicket) {})
	a.setOwned(3)
	if m, r, b := a.limits("ws_slow"); m != 5 || r != 1 || b != 1 {
		t.Fatalf("limits %d %v %v", m, r, b)
	}
	a.setOwned(6)
	if m, _, _ := a.limits("ws_a"); m != 2 {
		t.Fatalf("full share: %d", m)
	}
}
