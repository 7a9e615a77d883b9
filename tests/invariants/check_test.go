package invariants

import (
	"strings"
	"testing"

	"github.com/dialstream/dialstream/schemas"
)

const (
	callA = "aaaaaaaaaaaaaaaaaaaaaaaa"
	callB = "bbbbbbbbbbbbbbbbbbbbbbbb"
)

func ev(call string, seq int, status, outcome string) Event {
	return Event{CEID: schemas.EventID(call, seq), CallID: call, Sequence: seq, Status: status, Outcome: outcome,
		RoomName: "room-" + call[:1]}
}

func delivered(e Event, n int) Delivery {
	return Delivery{N: n, WebhookID: e.CEID, EventID: e.CEID, CallID: e.CallID, Sequence: e.Sequence,
		Verified: true, AnsweredWith: 204}
}

// healthy is a run where A completed and B was busy, every event delivered
// once, A's answered event delivered twice (a duplicate).
func healthy() Observed {
	a := []Event{ev(callA, 1, "queued", ""), ev(callA, 2, "dialing", ""), ev(callA, 3, "ringing", ""),
		ev(callA, 4, "answered", ""), ev(callA, 5, "ended", "completed")}
	b := []Event{ev(callB, 1, "queued", ""), ev(callB, 2, "dialing", ""), ev(callB, 3, "ended", "busy")}
	o := Observed{
		Sent: 2,
		Accepted: []Accepted{{CallID: callA, RoomName: "room-a", To: "+15550100001", Key: "k0"},
			{CallID: callB, RoomName: "room-b", To: "+15550100486", Key: "k1"}},
		Events: append(append([]Event{}, a...), b...),
		Dials:  []Dial{{Room: "room-a"}, {Room: "room-b"}},
	}
	n := 0
	for _, e := range o.Events {
		n++
		o.Deliveries = append(o.Deliveries, delivered(e, n))
	}
	o.Deliveries = append(o.Deliveries, delivered(a[3], n+1))
	return o
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Observed)
		want   []string // substrings of the problems; none means it passes
	}{
		{"healthy run passes", func(*Observed) {}, nil},
		{"a replayed event is fine", func(o *Observed) { o.Events = append(o.Events, o.Events[2]) }, nil},
		{"lost call", func(o *Observed) {
			o.Accepted = append(o.Accepted, Accepted{CallID: "cccccccccccccccccccccccc", RoomName: "room-c", Key: "k2"})
		}, []string{"accepted calls lost: 1"}},
		{"no ended", func(o *Observed) { o.Events = o.Events[:4]; o.Deliveries = o.Deliveries[:4] },
			[]string{"calls without an ended event: 1"}},
		{"dialed twice", func(o *Observed) { o.Dials = append(o.Dials, Dial{Room: "room-a"}) },
			[]string{"calls dialed more than once: 1", "room room-a (call " + callA + ") dialed 2 times"}},
		{"unknown room dialed", func(o *Observed) { o.Dials = append(o.Dials, Dial{Room: "room-z"}) },
			[]string{"dials for rooms of no known call: 1"}},
		{"ended twice", func(o *Observed) {
			e := ev(callB, 4, "ended", "failed")
			o.Events = append(o.Events, e)
			o.Deliveries = append(o.Deliveries, delivered(e, 99))
		}, []string{"calls ended more than once: 1"}},
		{"sequence gap", func(o *Observed) {
			o.Events = append(o.Events[:1], o.Events[2:]...)
		}, []string{"incomplete sequences: 1", "lack 2"}},
		{"one sequence two events", func(o *Observed) {
			e := ev(callB, 3, "ended", "failed")
			o.Events = append(o.Events, e)
		}, []string{"one sequence, two different events"}},
		{"undelivered", func(o *Observed) { o.Deliveries = o.Deliveries[1:] },
			[]string{"events never delivered: 1", callA + "-1"}},
		{"delivered only with a 5xx answer", func(o *Observed) { o.Deliveries[0].AnsweredWith = 503 },
			[]string{"events never delivered: 1"}},
		{"unstable webhook-id", func(o *Observed) {
			d := o.Deliveries[0]
			d.WebhookID, d.EventID = "other", "other"
			o.Deliveries = append(o.Deliveries, d)
		}, []string{"events delivered under more than one webhook-id: 1"}},
		{"bad signature", func(o *Observed) { o.Deliveries[len(o.Deliveries)-1].Verified = false },
			[]string{"deliveries failing signature verification: 1"}},
		{"webhook-id is not the event id", func(o *Observed) { o.Deliveries[0].EventID = "x" },
			[]string{"deliveries whose webhook-id is not the event id: 1"}},
		{"DLQ", func(o *Observed) { o.WebhookDLQ = 2 }, []string{"dialstream.webhooks.dlq: 1: 2"}},
		{"refused request", func(o *Observed) { o.Refused = []string{"k9: 422 ..."} }, []string{"requests refused: 1"}},
		{"unsettled request", func(o *Observed) { o.Unsettled = []string{"k9: still 503"} }, []string{"requests without a final answer: 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := healthy()
			tc.change(&o)
			rep := Check(o)
			got := strings.Join(rep.Problems, "\n")
			if len(tc.want) == 0 {
				if !rep.Passed() {
					t.Fatalf("want a pass, got problems:\n%s", got)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("problems do not mention %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestCheckFigures(t *testing.T) {
	rep := Check(healthy())
	if rep.CallsSent != 2 || rep.Accepted != 2 || rep.Dialed != 2 || rep.Ended != 2 || rep.Events != 8 ||
		rep.WebhooksDelivered != 9 || rep.EventsDelivered != 8 || rep.DuplicatesDelivered != 1 {
		t.Fatalf("figures: %s", rep.Figures())
	}
	if rep.Outcomes["completed"] != 1 || rep.Outcomes["busy"] != 1 {
		t.Fatalf("outcomes %v", rep.Outcomes)
	}
	if nd, ud := Pending(healthy()); nd != 0 || ud != 0 {
		t.Fatalf("Pending = %d, %d on a settled run", nd, ud)
	}
	o := healthy()
	o.Deliveries = nil
	if nd, ud := Pending(o); nd != 0 || ud != 8 {
		t.Fatalf("Pending = %d, %d, want 0, 8", nd, ud)
	}
}
