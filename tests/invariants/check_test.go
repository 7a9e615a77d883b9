package invariants

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/phonesim"
	"github.com/dialstream/dialstream/schemas"
)

const (
	callA = "aaaaaaaaaaaaaaaaaaaaaaaa"
	callB = "bbbbbbbbbbbbbbbbbbbbbbbb"
	callC = "cccccccccccccccccccccccc"
)

// t0 is when the hand-made runs start; each event is written a second after
// the one before, per call.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// call builds the events of one call: statuses in order, written one second
// apart from start, on partition p, the last one ended with outcome.
func call(id, key, to string, p int32, start float64, outcome string, sip int, statuses ...string) []Event {
	var evs []Event
	for i, st := range statuses {
		e := Event{CEID: schemas.EventID(id, i+1), CallID: id, Sequence: i + 1, Status: st, RoomName: "room-" + id[:1],
			To: to, Key: key, Partition: p, Offset: int64(i), Written: at(start + float64(i))}
		if st == "ended" {
			e.Outcome, e.SIPStatusCode = outcome, sip
			if sip != 0 {
				e.Reason, e.EndedBy = "sip status", "callee"
			}
		}
		evs = append(evs, e)
	}
	return evs
}

func delivered(e Event, n int) Delivery {
	return Delivery{N: n, WebhookID: e.CEID, EventID: e.CEID, CallID: e.CallID, Sequence: e.Sequence,
		Verified: true, AnsweredWith: 204, ReceivedAt: e.Written.Add(50 * time.Millisecond)}
}

// healthy is a run where A (the answering number) completed and B (the busy
// number) was busy, each dialed once just after its claim, every event
// delivered, A's answered event twice (a duplicate).
func healthy() Observed {
	a := call(callA, "k0", phonesim.NumberAnswer, 0, 0, "completed", 0, "queued", "dialing", "ringing", "answered", "ended")
	b := call(callB, "k1", phonesim.NumberBusy, 1, 0.5, "busy", 486, "queued", "dialing", "ended")
	o := Observed{
		Requests: []Request{
			{Key: "k0", To: phonesim.NumberAnswer, Answers: []string{"202"}, Accepted: true, CallID: callA, RoomName: "room-a"},
			{Key: "k1", To: phonesim.NumberBusy, Answers: []string{"202"}, Accepted: true, CallID: callB, RoomName: "room-b"},
		},
		Events: append(append([]Event{}, a...), b...),
		Dials: []Dial{{Room: "room-a", To: phonesim.NumberAnswer, At: at(1.1)},
			{Room: "room-b", To: phonesim.NumberBusy, At: at(1.6)}},
	}
	n := 0
	for _, e := range o.Events {
		n++
		o.Deliveries = append(o.Deliveries, delivered(e, n))
	}
	o.Deliveries = append(o.Deliveries, delivered(a[3], n+1))
	return o
}

// replaceEnd gives call id a new ended event (same sequence).
func replaceEnd(o *Observed, id string, f func(*Event)) {
	for i := range o.Events {
		if o.Events[i].CallID == id && o.Events[i].Status == "ended" {
			f(&o.Events[i])
		}
	}
}

func dropDial(o *Observed, room string) {
	var ds []Dial
	for _, d := range o.Dials {
		if d.Room != room {
			ds = append(ds, d)
		}
	}
	o.Dials = ds
}

// addCall adds a call C to the run (events, their deliveries, a dial),
// as if the client had sent key.
func addCall(o *Observed, key string, req *Request) {
	c := call(callC, key, phonesim.NumberBusy, 2, 3, "busy", 486, "queued", "dialing", "ended")
	o.Events = append(o.Events, c...)
	for i, e := range c {
		o.Deliveries = append(o.Deliveries, delivered(e, 100+i))
	}
	o.Dials = append(o.Dials, Dial{Room: "room-c", To: phonesim.NumberBusy, At: at(4.1)})
	if req != nil {
		o.Requests = append(o.Requests, *req)
	}
}

// strandA makes the answered call A end max_duration by the watchdog, as a
// call whose LiveKit node died does.
func strandA(o *Observed) {
	replaceEnd(o, callA, func(e *Event) {
		e.Outcome, e.EndedBy, e.Reason = "max_duration", "watchdog", "the call outlived the agent's max_call_duration of 1m0s"
	})
}

// phoneFailB makes the busy call B end failed with no SIP status, the phone
// network's own failure, as a network frozen mid-setup leaves it.
func phoneFailB(o *Observed) {
	replaceEnd(o, callB, func(e *Event) {
		e.Outcome, e.EndedBy, e.SIPStatusCode = "failed", "system", 0
		e.Reason = "create sip participant: twirp error internal: twirp error unknown: phonesim: join room: could not connect after timeout"
	})
}

// PhoneFailedAfter names a call the phone network failed only when its dial
// came at or after the instant the network was back.
func TestPhoneFailedAfter(t *testing.T) {
	o := healthy()
	phoneFailB(&o)
	dial := o.Dials[1].At
	if got := PhoneFailedAfter(o, dial.Add(time.Millisecond)); len(got) != 0 {
		t.Fatalf("dialed before the network was back: listed %v", got)
	}
	if got := PhoneFailedAfter(o, dial); len(got) != 1 || !strings.HasPrefix(got[0], callB) {
		t.Fatalf("dialed once the network was back: listed %v, want call B", got)
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name    string
		change  func(*Observed)
		allowed []FaultEnd
		want    []string // substrings of the problems; none means it passes
	}{
		{"a good run is clean", func(*Observed) {}, nil, nil},
		{"a replayed event is fine", func(o *Observed) { o.Events = append(o.Events, o.Events[2]) }, nil, nil},

		// The broken runs a checker exists to catch.
		{"no dials at all", func(o *Observed) { o.Dials = nil }, nil, []string{
			"the phone network received no dial at all: 1: 2 calls accepted",
			"calls that reached dialing and were never dialed: 2",
			"calls that rang or answered without a dial: 1"}},
		{"a dial of a room no call has", func(o *Observed) {
			o.Dials = append(o.Dials, Dial{Room: "room-z", To: phonesim.NumberAnswer, At: at(2)})
		}, nil, []string{"dials that belong to no call a client asked for: 1: room room-z"}},
		{"a call and its dial no client asked for", func(o *Observed) { addCall(o, "k-nobody-sent", nil) }, nil, []string{
			"calls on the events topic no client asked for: 1: call " + callC,
			"dials that belong to no call a client asked for: 1: room room-c: call " + callC}},
		{"a call placed although its request was refused", func(o *Observed) {
			addCall(o, "k2", &Request{Key: "k2", To: phonesim.NumberBusy, Answers: []string{"422"}, Refused: "422 invalid"})
		}, nil, []string{"calls placed although their request was refused: 1", "requests refused: 1"}},
		{"a dialing event without a dial", func(o *Observed) { dropDial(o, "room-b") }, nil,
			[]string{"calls that reached dialing and were never dialed: 1: call " + callB}},
		{"an outcome contrary to the script: busy number failed", func(o *Observed) {
			replaceEnd(o, callB, func(e *Event) {
				e.Outcome, e.SIPStatusCode, e.Reason, e.EndedBy = "failed", 0, "livekit: unavailable", "system"
			})
		}, nil, []string{"outcomes contrary to the callee's script: 1: call " + callB}},
		{"an outcome contrary to the script: answering number ended busy", func(o *Observed) {
			replaceEnd(o, callA, func(e *Event) { e.Outcome, e.SIPStatusCode = "busy", 486 })
		}, nil, []string{"outcomes contrary to the callee's script: 1: call " + callA}},
		{"an outcome contrary to the script: busy number answered", func(o *Observed) {
			o.Events = append(o.Events[:5:5], call(callB, "k1", phonesim.NumberBusy, 1, 0.5, "busy", 486,
				"queued", "dialing", "answered", "ended")...)
			o.Deliveries = nil
			for i, e := range o.Events {
				o.Deliveries = append(o.Deliveries, delivered(e, i))
			}
		}, nil, []string{"outcomes contrary to the callee's script: 1: call " + callB}},
		{"a lost event hidden by a duplicate delivery", func(o *Observed) {
			// As many POSTs as events, but one event twice and one never.
			o.Deliveries = o.Deliveries[1 : len(o.Deliveries)-1]
			o.Deliveries = append(o.Deliveries, o.Deliveries[0])
		}, nil, []string{"events never delivered: 1: " + callA + "-1"}},

		// The 503 promise: a call placed although its client only ever heard
		// 503 is a note, not a problem (see TestCheckPlacedAfter503).
		{"placed after only 503s", func(o *Observed) {
			addCall(o, "k2", &Request{Key: "k2", To: phonesim.NumberBusy, Answers: []string{"503", "503"}, Unsettled: "gave up"})
		}, nil, []string{"requests without a final answer: 1"}},

		// Faults that explain an outcome.
		{"in doubt without a dial, allowed", inDoubtB, []FaultEnd{InDoubt}, nil},
		{"in doubt without a dial, not injected", inDoubtB, nil,
			[]string{"ends naming a fault this run did not inject: 1: call " + callB}},
		{"expired before dialing, allowed", func(o *Observed) {
			o.Events = append(o.Events[:5:5], call(callB, "k1", phonesim.NumberBusy, 1, 0.5, "expired", 0, "queued", "ended")...)
			o.Deliveries = nil
			for i, e := range o.Events {
				o.Deliveries = append(o.Deliveries, delivered(e, i))
			}
			dropDial(o, "room-b")
		}, []FaultEnd{Expired}, nil},

		{"answered, ended by the watchdog at max duration, allowed", strandA, []FaultEnd{Stranded}, nil},
		{"failed by the phone network, allowed", phoneFailB, []FaultEnd{PhoneFailed}, nil},
		{"failed by the phone network, not injected", phoneFailB, nil,
			[]string{"ends naming a fault this run did not inject: 1: call " + callB}},
		{"answered, ended by the watchdog at max duration, not injected", strandA, nil,
			[]string{"ends naming a fault this run did not inject: 1: call " + callA}},

		// The phone network against the claims.
		{"dialed twice", func(o *Observed) {
			o.Dials = append(o.Dials, Dial{Room: "room-a", To: phonesim.NumberAnswer, At: at(3)})
		},
			nil, []string{"calls dialed more than once: 1", "room room-a (call " + callA + ") dialed 2 times"}},
		{"dialed before the claim was written", func(o *Observed) { o.Dials[1].At = at(1.4) }, nil,
			[]string{"calls dialed before their dialing claim was written: 1: call " + callB}},
		{"dialed without a claim", func(o *Observed) {
			o.Events = append(o.Events[:5:5], call(callB, "k1", phonesim.NumberBusy, 1, 0.5, "expired", 0, "queued", "ended")...)
			o.Deliveries = nil
			for i, e := range o.Events {
				o.Deliveries = append(o.Deliveries, delivered(e, i))
			}
		}, []FaultEnd{Expired}, []string{"calls dialed without a durable claim (no dialing event): 1: call " + callB}},
		{"dialed another number", func(o *Observed) { o.Dials[0].To = phonesim.NumberBusy }, nil,
			[]string{"dials to another number than the call's: 1"}},
		{"a call to another number than requested", func(o *Observed) { o.Requests[1].To = phonesim.NumberDecline }, nil,
			[]string{"calls that differ from the request they came from: 1"}},
		{"a 2xx naming another call", func(o *Observed) { o.Requests[1].CallID = callC }, nil,
			[]string{"accepted calls lost: 1", "key k1 was answered call " + callC}},

		// The topic.
		{"lost call", func(o *Observed) {
			o.Requests = append(o.Requests, Request{Key: "k2", To: phonesim.NumberBusy, Answers: []string{"202"}, Accepted: true,
				CallID: callC, RoomName: "room-c"})
		}, nil, []string{"accepted calls lost: 1"}},
		{"no ended", func(o *Observed) { o.Events = o.Events[:4]; o.Deliveries = o.Deliveries[:4]; dropDial(o, "room-b") },
			nil, []string{"calls without an ended event: 1"}},
		{"ended twice", func(o *Observed) {
			e := call(callB, "k1", phonesim.NumberBusy, 1, 0.5, "failed", 0, "queued", "dialing", "ended", "ended")[3]
			o.Events = append(o.Events, e)
			o.Deliveries = append(o.Deliveries, delivered(e, 99))
		}, nil, []string{"calls ended more than once: 1"}},
		{"sequence gap", func(o *Observed) { o.Events = append(o.Events[:1], o.Events[2:]...) }, nil,
			[]string{"incomplete sequences: 1", "lack 2"}},
		{"one sequence two events", func(o *Observed) {
			e := o.Events[len(o.Events)-1]
			e.Outcome = "failed"
			o.Events = append(o.Events, e)
		}, nil, []string{"one sequence, two different events"}},

		// The receiver.
		{"undelivered", func(o *Observed) { o.Deliveries = o.Deliveries[1:] }, nil,
			[]string{"events never delivered: 1", callA + "-1"}},
		{"delivered only with a 5xx answer", func(o *Observed) { o.Deliveries[0].AnsweredWith = 503 }, nil,
			[]string{"events never delivered: 1"}},
		{"unstable webhook-id", func(o *Observed) {
			d := o.Deliveries[0]
			d.WebhookID, d.EventID = "other", "other"
			o.Deliveries = append(o.Deliveries, d)
		}, nil, []string{"events delivered under more than one webhook-id: 1"}},
		{"bad signature", func(o *Observed) { o.Deliveries[len(o.Deliveries)-1].Verified = false }, nil,
			[]string{"deliveries failing signature verification: 1"}},
		{"webhook-id is not the event id", func(o *Observed) { o.Deliveries[0].EventID = "x" }, nil,
			[]string{"deliveries whose webhook-id is not their event's id: 1"}},
		{"webhook-id of another event than the body", func(o *Observed) { o.Deliveries[0].Sequence = 2 }, nil,
			[]string{"deliveries whose webhook-id is not their event's id: 1"}},
		{"DLQ", func(o *Observed) { o.WebhookDLQ = 2 }, nil, []string{"dialstream.webhooks.dlq: 1: 2"}},

		// The client.
		{"refused request", func(o *Observed) {
			o.Requests = append(o.Requests, Request{Key: "k9", Answers: []string{"422"}, Refused: "422 ..."})
		}, nil, []string{"requests refused: 1"}},
		{"unsettled request", func(o *Observed) {
			o.Requests = append(o.Requests, Request{Key: "k9", Answers: []string{"503"}, Unsettled: "still 503"})
		}, nil, []string{"requests without a final answer: 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := healthy()
			tc.change(&o)
			rep := Check(o, tc.allowed...)
			got := strings.Join(rep.Problems, "\n")
			t.Logf("problems:\n%s", got)
			if len(tc.want) == 0 {
				if !rep.Passed() {
					t.Fatalf("want a pass, got problems:\n%s", got)
				}
				return
			}
			if rep.Passed() {
				t.Fatalf("want problems %q, the run passed:\n%s", tc.want, rep.Table())
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("problems do not mention %q:\n%s", w, got)
				}
			}
		})
	}
}

func inDoubtB(o *Observed) {
	replaceEnd(o, callB, func(e *Event) {
		e.Outcome, e.SIPStatusCode, e.EndedBy = "failed", 0, "dialer"
		e.Reason = "dialer restarted during the dial; not redialed to avoid a duplicate call"
	})
	dropDial(o, "room-b")
}

func TestCheckFigures(t *testing.T) {
	rep := Check(healthy())
	if rep.CallsSent != 2 || rep.Accepted != 2 || rep.Dials != 2 || rep.Dialed != 2 || rep.Ended != 2 || rep.Events != 8 ||
		rep.WebhooksDelivered != 9 || rep.EventsDelivered != 8 || rep.DuplicatesDelivered != 1 || rep.AsScripted != 2 ||
		rep.CallsSeen != 2 {
		t.Fatalf("figures:\n%s", rep.Table())
	}
	if rep.Outcomes["completed"] != 1 || rep.Outcomes["busy"] != 1 || rep.ByScript["answer"] != 1 || rep.ByScript["busy"] != 1 {
		t.Fatalf("outcomes %v, dials by script %v", rep.Outcomes, rep.ByScript)
	}
	if nd, ud := Pending(healthy()); nd != 0 || ud != 0 {
		t.Fatalf("Pending = %d, %d on a settled run", nd, ud)
	}
	o := healthy()
	o.Deliveries = nil
	if nd, ud := Pending(o); nd != 0 || ud != 8 {
		t.Fatalf("Pending = %d, %d, want 0, 8", nd, ud)
	}
	// Still waiting: A has not ended; B and C, accepted, have no event.
	o = healthy()
	o.Events, o.Deliveries = o.Events[1:4], o.Deliveries[1:4]
	o.Requests = append(o.Requests, Request{Key: "k2", Answers: []string{"202"}, Accepted: true, CallID: callC})
	if nd, ud := Pending(o); nd != 3 || ud != 0 {
		t.Fatalf("Pending = %d, %d, want 3, 0", nd, ud)
	}

	o = healthy()
	inDoubtB(&o)
	rep = Check(o, InDoubt)
	if rep.FaultEnds[InDoubt] != 1 || rep.InDoubtNeverRang != 1 || rep.AsScripted != 1 || len(rep.Notes) != 1 ||
		!strings.Contains(rep.Notes[0], "in doubt, never rang") {
		t.Fatalf("in doubt: %v, notes %q\n%s", rep.FaultEnds, rep.Notes, rep.Table())
	}
}

// The README's 503 promise (a 503 may still be placed; a retry with the
// same key learns which, and never places it twice): a call placed although
// its client only heard 503s is counted and printed, not failed; a 2xx
// after 503s is counted, and so is one replaying a late acknowledgement.
func TestCheckPlacedAfter503(t *testing.T) {
	o := healthy()
	o.Requests[0].Answers = []string{"503", "409", "202"}
	o.Requests[0].Replayed = true
	o.Requests[1].Answers = []string{AnswerTransport, "202"}
	addCall(&o, "k2", &Request{Key: "k2", To: phonesim.NumberBusy, Answers: []string{"503", "503"}, Unsettled: "gave up"})
	rep := Check(o)
	if rep.PlacedUnacknowledged != 1 || rep.AcceptedAfterFault != 2 || rep.ReplayedAfterFault != 1 ||
		rep.Retries["503"] != 2 || rep.Retries["409"] != 1 || rep.Retries[AnswerTransport] != 1 {
		t.Fatalf("figures:\n%s", rep.Table())
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "requests without a final answer") {
		t.Fatalf("want only the unsettled request as a problem, got %q", rep.Problems)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "only answered 503 or nothing (the README's 503 promise): 1: call "+callC) {
		t.Fatalf("notes %q", rep.Notes)
	}
}

// Every script the phone simulator has must have an expectation here, so a
// new script cannot slip through the outcome check unjudged.
func TestEveryScriptHasAnExpectation(t *testing.T) {
	for _, s := range phonesim.Scripts {
		if _, ok := scripts[s]; !ok {
			t.Errorf("script %q has no expected outcome in scripts", s)
		}
	}
}

// The cancel rule: a call whose client's cancel was accepted ends canceled,
// or with the callee's outcome when its end won the race (a note); a 409
// cancel leaves the end the 409 named; a canceled end nobody asked for, one
// before the cancel was sent, and a cancel without a final answer fail.
func TestCheckCancels(t *testing.T) {
	cancelB := func(ca CancelAsk) func(*Observed) {
		return func(o *Observed) { o.Requests[1].Cancel = ca }
	}
	endBCanceled := func(o *Observed) {
		replaceEnd(o, callB, func(e *Event) {
			e.Outcome, e.SIPStatusCode, e.Reason, e.EndedBy = "canceled", 0, "canceled by the client", "dialer"
		})
	}
	both := func(fs ...func(*Observed)) func(*Observed) {
		return func(o *Observed) {
			for _, f := range fs {
				f(o)
			}
		}
	}
	accepted := CancelAsk{Sent: at(1), Answers: []string{"202"}, Code: 202}
	cases := []struct {
		name   string
		change func(*Observed)
		want   []string // substrings of the problems; none means it passes
		check  func(Report) bool
	}{
		{"accepted, ended canceled", both(cancelB(accepted), endBCanceled), nil,
			func(r Report) bool {
				return r.CanceledAsAsked == 1 && r.CancelsAccepted == 1 && r.AsScripted == 1 && len(r.FaultEnds) == 0
			}},
		{"accepted, ended canceled after a 503 and a 409 naming canceled",
			both(cancelB(CancelAsk{Sent: at(1), Answers: []string{"503", "409"}, Code: 409, Outcome: "canceled"}), endBCanceled), nil,
			func(r Report) bool { return r.CanceledAsAsked == 1 && r.CancelsTooLate == 1 }},
		{"accepted, the end won the race", cancelB(accepted), nil,
			func(r Report) bool {
				return r.CancelRaced == 1 && r.AsScripted == 2 && len(r.Notes) == 1 && strings.Contains(r.Notes[0], "won the race")
			}},
		{"too late, ended as the 409 said", cancelB(CancelAsk{Sent: at(3), Answers: []string{"409"}, Code: 409, Outcome: "busy"}), nil,
			func(r Report) bool { return r.CancelsTooLate == 1 && r.CancelRaced == 0 && r.AsScripted == 2 }},
		{"too late, but the 409 named another outcome", cancelB(CancelAsk{Sent: at(3), Answers: []string{"409"}, Code: 409, Outcome: "completed"}),
			[]string{"ends contrary to the client's cancel: 1: call " + callB}, nil},
		{"canceled although nobody canceled", endBCanceled,
			[]string{"ends naming a fault this run did not inject: 1: call " + callB}, nil},
		{"canceled before the cancel was sent", both(cancelB(CancelAsk{Sent: at(9), Answers: []string{"202"}, Code: 202}), endBCanceled),
			[]string{"ends contrary to the client's cancel: 1: call " + callB}, nil},
		{"a cancel without a final answer", cancelB(CancelAsk{Sent: at(1), Answers: []string{"503"}, Unsettled: "gave up"}),
			[]string{"cancels refused or without a final answer: 1: call " + callB}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := healthy()
			tc.change(&o)
			rep := Check(o)
			if len(rep.Problems) != len(tc.want) {
				t.Fatalf("problems %q, want %d like %q\n%s", rep.Problems, len(tc.want), tc.want, rep.Table())
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(rep.Problems[i], w) {
					t.Errorf("problem %q, want it to start with %q", rep.Problems[i], w)
				}
			}
			if tc.check != nil && !tc.check(rep) {
				t.Errorf("figures:\n%s\nnotes %q", rep.Table(), rep.Notes)
			}
		})
	}
}

// refAgent is the call agent the reference agent plays in agentRun.
const refAgent = "dddddddddddddddddddddddd"

// agentRun is a run with the reference agent: a person (A), a voicemail (B)
// and a callee who asks for a transfer (C), each answered, with the agent's
// answered_by report before the end, and ended as outcomes says.
func agentRun(outcomes [3]string, verdicts [3]string) Observed {
	to := []string{phonesim.NumberHuman, phonesim.NumberVoicemail, phonesim.NumberTransfer}
	o := Observed{AgentTakes: []string{refAgent}}
	for i, id := range []string{callA, callB, callC} {
		key := "k" + string(rune('0'+i))
		evs := call(id, key, to[i], int32(i), float64(i)/2, outcomes[i], 0, "queued", "dialing", "ringing", "answered", "agent_report", "ended")
		evs[4].AnsweredBy = verdicts[i]
		evs[5].AnsweredBy = verdicts[i]
		for j := range evs {
			evs[j].CallAgentID = refAgent
		}
		o.Events = append(o.Events, evs...)
		o.Requests = append(o.Requests, Request{Key: key, To: to[i], Answers: []string{"202"}, Accepted: true, CallID: id, RoomName: evs[0].RoomName})
		o.Dials = append(o.Dials, Dial{Room: evs[0].RoomName, To: to[i], At: at(float64(i)/2 + 1.1)})
	}
	for i, e := range o.Events {
		o.Deliveries = append(o.Deliveries, delivered(e, i))
	}
	return o
}

// With an agent, the callees written for one are judged by what the agent
// makes of them; one that ended as without the agent is AgentMissed, a
// fault end only the runs that allow it accept.
func TestCheckAgent(t *testing.T) {
	asAgent := [3]string{"completed", "voicemail", "transferred"}
	verdicts := [3]string{"human", "machine", "human"}
	cases := []struct {
		name     string
		outcomes [3]string
		verdicts [3]string
		agent    bool
		allowed  []FaultEnd
		want     []string
		missed   int
		// tolerance is Observed.AgentMissTolerance (0: none).
		tolerance float64
	}{
		{"as the agent makes them", asAgent, verdicts, true, nil, nil, 0, 0},
		{"the same run, the agent taking another call agent's calls", asAgent, verdicts, false, nil, []string{
			"outcomes contrary to the callee's script: 2: "}, 0, 0},
		{"a person the agent took for a machine", asAgent, [3]string{"machine", "machine", "human"}, true, nil,
			[]string{"outcomes contrary to the callee's script: 1: call " + callA}, 0, 0},
		{"a voicemail ended by the agent as a failure", [3]string{"completed", "failed", "transferred"}, verdicts, true,
			[]FaultEnd{AgentMissed}, []string{"outcomes contrary to the callee's script: 1: call " + callB}, 0, 0},
		{"all three without the agent, not injected", [3]string{"completed", "completed", "max_duration"}, [3]string{}, true, nil,
			[]string{"ends naming a fault this run did not inject (without the agent: 3 of the agent's 3 answered calls): 3"}, 3, 0},
		{"all three without the agent, allowed", [3]string{"completed", "completed", "max_duration"}, [3]string{}, true,
			[]FaultEnd{AgentMissed}, nil, 3, 0},
		{"one of three without the agent, within a third's tolerance", [3]string{"completed", "completed", "transferred"}, verdicts, true,
			nil, nil, 1, 0.34},
		{"two of three without the agent, beyond a third's tolerance", [3]string{"completed", "completed", "max_duration"}, [3]string{"human", "", ""}, true,
			nil, []string{"ends naming a fault this run did not inject (without the agent: 2 of the agent's 3 answered calls): 2"}, 2, 0.34},
		{"a voicemail at max duration is not the agent missed", [3]string{"completed", "max_duration", "transferred"}, verdicts, true,
			[]FaultEnd{AgentMissed}, []string{"outcomes contrary to the callee's script: 1: call " + callB}, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := agentRun(c.outcomes, c.verdicts)
			o.AgentMissTolerance = c.tolerance
			if !c.agent {
				o.AgentTakes = []string{"another-agent"}
			}
			rep := Check(o, c.allowed...)
			if got := rep.FaultEnds[AgentMissed]; got != c.missed {
				t.Errorf("AgentMissed %d, want %d", got, c.missed)
			}
			if len(c.want) == 0 && !rep.Passed() {
				t.Fatalf("problems: %v", rep.Problems)
			}
			if len(rep.Problems) != len(c.want) {
				t.Fatalf("problems %q, want %d like %q", rep.Problems, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(rep.Problems[i], w) {
					t.Errorf("problem %q does not contain %q", rep.Problems[i], w)
				}
			}
		})
	}
}

// A call of the agent's in progress while its reports could not be
// recorded (ReportOutages) may end as without the agent: it is counted and
// listed, not a problem. One that ended before the outage began is still a
// problem, however many the outage excused.
func TestCheckAgentReportOutage(t *testing.T) {
	missed := [3]string{"completed", "completed", "max_duration"}
	// Calls A, B and C are dialed at 1.1, 1.6 and 2.1 s and end at 5, 5.5
	// and 6 s (agentRun).
	cases := []struct {
		name    string
		outages []Span
		want    []string
		excused bool // some calls are listed as the outage's
	}{
		{"all three in progress during the outage", []Span{{at(3), at(4)}}, nil, true},
		{"the outage began after call A ended", []Span{{at(5.2), at(8)}},
			[]string{"ends naming a fault this run did not inject (without the agent: 1 of the agent's 3 answered calls): 1: call " + callA}, true},
		{"the outage ended before any call was dialed", []Span{{at(0), at(1)}},
			[]string{"ends naming a fault this run did not inject (without the agent: 3 of the agent's 3 answered calls): 3"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := agentRun(missed, [3]string{})
			o.ReportOutages = c.outages
			rep := Check(o)
			if got := rep.FaultEnds[AgentMissed]; got != 3 {
				t.Errorf("AgentMissed %d, want 3", got)
			}
			if len(rep.Problems) != len(c.want) {
				t.Fatalf("problems %q, want %d like %q", rep.Problems, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(rep.Problems[i], w) {
					t.Errorf("problem %q does not contain %q", rep.Problems[i], w)
				}
			}
			note := "ended as without the agent, in progress while the agent's reports could not be recorded"
			if got := slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, note) }); got != c.excused {
				t.Errorf("note %q present %v, want %v; notes %q", note, got, c.excused, rep.Notes)
			}
		})
	}
}

// The agent's post-call report comes after the end (its sequence follows
// ended's): that is no gap. A lifecycle event after ended still is.
func TestCheckReportAfterEnd(t *testing.T) {
	after := func(status string) Observed {
		o := agentRun([3]string{"completed", "voicemail", "transferred"}, [3]string{"human", "machine", "human"})
		e := o.Events[5] // call A's ended event, seq 6
		e.CEID, e.Sequence, e.Status, e.Outcome, e.Offset, e.Written = schemas.EventID(callA, 7), 7, status, "", 7, e.Written.Add(time.Second)
		o.Events = append(o.Events, e)
		o.Deliveries = append(o.Deliveries, delivered(e, len(o.Deliveries)))
		return o
	}
	if rep := Check(after("agent_report")); !rep.Passed() {
		t.Errorf("a report after the end: %v", rep.Problems)
	}
	rep := Check(after("ringing"))
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "incomplete sequences: 1: call "+callA+": seq 7 (ringing) comes after ended") {
		t.Errorf("ringing after the end: %v", rep.Problems)
	}
}
