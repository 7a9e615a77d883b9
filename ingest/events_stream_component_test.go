package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// The stream against the embedded broker, through Run: events the dialer
// writes to dialstream.calls.events after a stream opened reach it (and
// none from before), another workspace's never do, and stopping ingest ends
// the stream with a close message instead of waiting out the shutdown
// timeout.
func TestComponentEventStream(t *testing.T) {
	b := stateBroker(t)
	in := startIngest(t, b.Addr(), func(c *Config) { c.ShutdownTimeout = 3 * time.Second })
	in.waitReady(t)
	cl := producer(t, b.Addr())
	a := demoCall(1, time.Now().UTC())
	other := fixture{id: "00000000000000000000b0b0", ws: "ws_other", agent: otherAgent, to: "+15550100002",
		room: otherAgent + "-abcdefghij", at: time.Now().UTC()}
	// Written before any stream opened: no stream shows it.
	produceAll(t, cl, eventRecord(t, a.event(1, schemas.StatusQueued, a.at)))

	demo := openStream(t, in.url, demoKey, "ws_demo", "")
	otherS := openStream(t, in.url, otherKey, "ws_other", "")
	for _, s := range []*sseStream{demo, otherS} {
		if s.code != 200 {
			t.Fatalf("%d %s", s.code, s.body)
		}
		s.waitLine(t, 10*time.Second, ": stream open")
	}
	produceAll(t, cl, eventRecords(t, a.busy()[1:])...)
	produceAll(t, cl, eventRecord(t, other.event(1, schemas.StatusQueued, other.at)))
	for _, want := range []schemas.Status{schemas.StatusDialing, schemas.StatusRinging, schemas.StatusEnded} {
		ev := dataOf(t, demo.waitLine(t, 10*time.Second, "data: "))
		if ev.CallID != a.id || ev.Status != want {
			t.Fatalf("ws_demo's stream: %+v, want %s of %s", ev, want, a.id)
		}
	}
	if ev := dataOf(t, otherS.waitLine(t, 10*time.Second, "data: ")); ev.CallID != other.id {
		t.Fatalf("ws_other's stream: %+v", ev)
	}
	// Written after ws_demo's events reached ws_demo's stream: once ws_other
	// has it, its stream holds everything the reader handed it before.
	produceAll(t, cl, eventRecord(t, other.event(2, schemas.StatusDialing, other.at)))
	otherS.waitLine(t, 10*time.Second, `"sequence":2`)
	for _, l := range otherS.all() {
		if strings.Contains(l, a.id) || strings.Contains(l, a.to) {
			t.Fatalf("ws_other's stream shows ws_demo's call: %q", l)
		}
	}
	for _, l := range demo.all() {
		if strings.Contains(l, other.id) || strings.Contains(l, `"sequence":1,`) {
			t.Fatalf("ws_demo's stream shows %q", l)
		}
	}

	stopped := make(chan struct{})
	go func() { defer close(stopped); in.stop(t) }()
	demo.waitLine(t, 10*time.Second, `data: {"reason":"shutdown"}`)
	demo.ended(t, 10*time.Second)
	select {
	case <-stopped: // in.stop failed the test if Run returned an error (Shutdown timed out)
	case <-time.After(20 * time.Second):
		t.Fatal("ingest did not stop")
	}
}
