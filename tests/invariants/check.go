package invariants

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/dialstream/dialstream/schemas"
)

// Report is the verdict on one run: its figures, and every violation found.
// A run passes when Problems is empty.
type Report struct {
	CallsSent int            // requests made
	Retries   map[string]int // repeated attempts, by the answer that caused them
	Accepted  int            // answered 2xx
	CallsSeen int            // distinct calls on the events topic
	Dials     int            // CreateSIPParticipant requests at the phone network
	Dialed    int            // distinct rooms dialed
	Ended     int            // calls with an ended event
	Outcomes  map[string]int
	// EndReasons counts the ends that were not the callee's doing (not
	// completed, and not a SIP status): the traces a fault leaves, e.g. a
	// dial whose dialer was killed.
	EndReasons map[string]int

	EventRecords int // lifecycle records on the topic, replays included
	Events       int // distinct lifecycle events (ce_id)

	WebhooksDelivered   int // POSTs the receiver got
	EventsDelivered     int // distinct events delivered (2xx, signature verified)
	DuplicatesDelivered int // WebhooksDelivered - distinct webhook-ids

	// Violation counts; the details are in Problems.
	Lost, DoubleDialed, MissingEnded, MultipleEnded, SequenceGaps, Undelivered int

	Problems []string
}

// Passed says whether no invariant was violated.
func (r Report) Passed() bool { return len(r.Problems) == 0 }

// Figures is the one-paragraph summary printed at the end of every test.
func (r Report) Figures() string {
	outs := slices.Sorted(maps.Keys(r.Outcomes))
	var o []string
	for _, k := range outs {
		o = append(o, fmt.Sprintf("%s=%d", k, r.Outcomes[k]))
	}
	retries := 0
	var rs []string
	for _, k := range slices.Sorted(maps.Keys(r.Retries)) {
		retries += r.Retries[k]
		rs = append(rs, fmt.Sprintf("%s=%d", k, r.Retries[k]))
	}
	return fmt.Sprintf("calls sent %d (retried %d times [%s]), accepted %d, dialed %d (%d dial requests), ended %d [%s]; "+
		"events %d (%d records); webhooks delivered %d, distinct events delivered %d, duplicates delivered %d; "+
		"lost %d, double dials %d, missing ended %d, multiple ended %d, sequence gaps %d, undelivered %d",
		r.CallsSent, retries, strings.Join(rs, " "), r.Accepted, r.Dialed, r.Dials, r.Ended, strings.Join(o, " "),
		r.Events, r.EventRecords, r.WebhooksDelivered, r.EventsDelivered, r.DuplicatesDelivered,
		r.Lost, r.DoubleDialed, r.MissingEnded, r.MultipleEnded, r.SequenceGaps, r.Undelivered)
}

// callView is what the events topic says about one call.
type callView struct {
	seqs    map[int]Event       // first record of each sequence
	endedBy map[string]struct{} // distinct ce_ids of ended events
	room    string
}

// Pending counts what a run is still waiting for: accepted calls without an
// ended event, and distinct events without a verified 2xx delivery. A test
// polls it until both are zero (the faults have healed) or it gives up.
func Pending(o Observed) (notEnded, undelivered int) {
	ended := map[string]bool{}
	events := map[string]bool{}
	for _, e := range o.Events {
		events[e.CEID] = true
		if e.Status == string(schemas.StatusEnded) {
			ended[e.CallID] = true
		}
	}
	for _, a := range o.Accepted {
		if !ended[a.CallID] {
			notEnded++
		}
	}
	delivered := deliveredIDs(o.Deliveries)
	for id := range events {
		if !delivered[id] {
			undelivered++
		}
	}
	return notEnded, undelivered
}

func deliveredIDs(ds []Delivery) map[string]bool {
	m := map[string]bool{}
	for _, d := range ds {
		if d.Verified && d.AnsweredWith >= 200 && d.AnsweredWith < 300 && d.WebhookID != "" {
			m[d.WebhookID] = true
		}
	}
	return m
}

// maxListed caps the examples quoted per kind of problem.
const maxListed = 5

// Check judges one run against design.md's invariants:
//
//  1. a 2xx means the call is in Kafka: every accepted call has events (not
//     lost) and ends (an ended event);
//  2. no call is dialed twice (the phone network saw each room at most
//     once), and every call ends exactly once (one distinct ended ce_id);
//  3. every lifecycle event reached the callback at least once with its
//     webhook-id (= ce_id, the same on every attempt), with a valid
//     signature, and nothing went to a DLQ;
//
// plus per-call sequences 1..n without gaps, ended last, each sequence one
// event (replays carry the same ce_id and status).
func Check(o Observed) Report {
	rep := Report{CallsSent: o.Sent, Retries: o.Retries, Accepted: len(o.Accepted), Dials: len(o.Dials),
		EventRecords: len(o.Events), WebhooksDelivered: len(o.Deliveries), Outcomes: map[string]int{},
		EndReasons: map[string]int{}}
	problem := func(kind string, items []string) {
		if len(items) == 0 {
			return
		}
		sort.Strings(items)
		shown := items
		if len(shown) > maxListed {
			shown = shown[:maxListed]
		}
		more := ""
		if len(items) > maxListed {
			more = fmt.Sprintf(" (and %d more)", len(items)-maxListed)
		}
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %d: %s%s", kind, len(items), strings.Join(shown, "; "), more))
	}

	// The client side.
	problem("requests refused", o.Refused)
	problem("requests without a final answer", o.Unsettled)
	var dupAccepted []string
	acceptedBy := map[string]Accepted{}
	for _, a := range o.Accepted {
		if prev, ok := acceptedBy[a.CallID]; ok {
			dupAccepted = append(dupAccepted, fmt.Sprintf("call %s for keys %s and %s", a.CallID, prev.Key, a.Key))
		}
		acceptedBy[a.CallID] = a
	}
	problem("one call id accepted for two requests", dupAccepted)

	// The events topic.
	problem("invalid records on the events topic", o.BadEvents)
	calls := map[string]*callView{}
	var conflicting []string
	for _, e := range o.Events {
		cv := calls[e.CallID]
		if cv == nil {
			cv = &callView{seqs: map[int]Event{}, endedBy: map[string]struct{}{}}
			calls[e.CallID] = cv
		}
		if e.RoomName != "" {
			cv.room = e.RoomName
		}
		if want := schemas.EventID(e.CallID, e.Sequence); e.CEID != want {
			conflicting = append(conflicting, fmt.Sprintf("call %s seq %d has ce_id %s, want %s", e.CallID, e.Sequence, e.CEID, want))
		}
		if prev, ok := cv.seqs[e.Sequence]; ok {
			if prev.CEID != e.CEID || prev.Status != e.Status || prev.Outcome != e.Outcome {
				conflicting = append(conflicting, fmt.Sprintf("call %s seq %d is %s/%s (%s) at %d@%d and %s/%s (%s) at %d@%d",
					e.CallID, e.Sequence, prev.Status, prev.Outcome, prev.CEID, prev.Partition, prev.Offset,
					e.Status, e.Outcome, e.CEID, e.Partition, e.Offset))
			}
		} else {
			cv.seqs[e.Sequence] = e
		}
		if e.Status == string(schemas.StatusEnded) {
			cv.endedBy[e.CEID] = struct{}{}
		}
	}
	problem("one sequence, two different events (a replay must repeat the event)", conflicting)
	rep.CallsSeen = len(calls)

	var lost, missingEnded, multipleEnded, gaps []string
	for id, a := range acceptedBy {
		if calls[id] == nil {
			lost = append(lost, fmt.Sprintf("call %s (%s, key %s) has no event", id, a.To, a.Key))
		}
	}
	for id, cv := range calls {
		switch len(cv.endedBy) {
		case 0:
			last := cv.seqs[slices.Max(slices.Collect(maps.Keys(cv.seqs)))]
			missingEnded = append(missingEnded, fmt.Sprintf("call %s stopped at %s (seq %d)", id, last.Status, last.Sequence))
		case 1:
			rep.Ended++
			for _, e := range cv.seqs {
				if e.Status == string(schemas.StatusEnded) {
					rep.Outcomes[e.Outcome]++
					if e.Outcome != string(schemas.OutcomeCompleted) && e.Reason != "" && !strings.HasPrefix(e.Reason, "sip status") {
						rep.EndReasons[e.Outcome+": "+e.Reason]++
					}
				}
			}
		default:
			multipleEnded = append(multipleEnded, fmt.Sprintf("call %s ended %d times (%s)", id, len(cv.endedBy),
				strings.Join(slices.Sorted(maps.Keys(cv.endedBy)), ", ")))
		}
		n := slices.Max(slices.Collect(maps.Keys(cv.seqs)))
		var missing []string
		for s := 1; s <= n; s++ {
			if _, ok := cv.seqs[s]; !ok {
				missing = append(missing, fmt.Sprint(s))
			}
		}
		if len(missing) > 0 {
			gaps = append(gaps, fmt.Sprintf("call %s: sequences 1..%d lack %s", id, n, strings.Join(missing, ",")))
		}
		if len(cv.endedBy) > 0 && cv.seqs[n].Status != string(schemas.StatusEnded) {
			gaps = append(gaps, fmt.Sprintf("call %s: seq %d (%s) comes after ended", id, n, cv.seqs[n].Status))
		}
		rep.Events += len(cv.seqs)
	}
	rep.Lost, rep.MissingEnded, rep.MultipleEnded, rep.SequenceGaps = len(lost), len(missingEnded), len(multipleEnded), len(gaps)
	problem("accepted calls lost", lost)
	problem("calls without an ended event", missingEnded)
	problem("calls ended more than once", multipleEnded)
	problem("incomplete sequences", gaps)

	// The phone network.
	roomCall := map[string]string{}
	for id, a := range acceptedBy {
		roomCall[a.RoomName] = id
	}
	for id, cv := range calls {
		if cv.room != "" {
			roomCall[cv.room] = id
		}
	}
	dials := map[string]int{}
	for _, d := range o.Dials {
		dials[d.Room]++
	}
	rep.Dialed = len(dials)
	var twice, unknown []string
	for room, n := range dials {
		if n > 1 {
			twice = append(twice, fmt.Sprintf("room %s (call %s) dialed %d times", room, roomCall[room], n))
		}
		if roomCall[room] == "" {
			unknown = append(unknown, fmt.Sprintf("room %s", room))
		}
	}
	rep.DoubleDialed = len(twice)
	problem("calls dialed more than once", twice)
	problem("dials for rooms of no known call", unknown)

	// The callback receiver.
	if o.DeliveriesDropped > 0 {
		problem("deliveries the receiver could not keep", []string{fmt.Sprint(o.DeliveriesDropped)})
	}
	var unverified, mismatched, unstable, strange []string
	idsOfEvent := map[string]map[string]struct{}{}
	distinct := map[string]struct{}{}
	for _, d := range o.Deliveries {
		distinct[d.WebhookID] = struct{}{}
		if !d.Verified {
			unverified = append(unverified, fmt.Sprintf("#%d %s: %s", d.N, d.WebhookID, d.VerifyError))
		}
		if d.WebhookID == "" || d.WebhookID != d.EventID {
			mismatched = append(mismatched, fmt.Sprintf("#%d webhook-id %q, data.event_id %q", d.N, d.WebhookID, d.EventID))
		}
		ev := fmt.Sprintf("%s seq %d", d.CallID, d.Sequence)
		if idsOfEvent[ev] == nil {
			idsOfEvent[ev] = map[string]struct{}{}
		}
		idsOfEvent[ev][d.WebhookID] = struct{}{}
		if cv := calls[d.CallID]; cv == nil || cv.seqs[d.Sequence].CEID == "" {
			strange = append(strange, fmt.Sprintf("#%d %s: no such event on the topic", d.N, ev))
		}
	}
	for ev, ids := range idsOfEvent {
		if len(ids) > 1 {
			unstable = append(unstable, fmt.Sprintf("%s delivered as %s", ev, strings.Join(slices.Sorted(maps.Keys(ids)), ", ")))
		}
	}
	delivered := deliveredIDs(o.Deliveries)
	var undelivered []string
	for id, cv := range calls {
		for _, e := range cv.seqs {
			if delivered[e.CEID] {
				rep.EventsDelivered++
			} else {
				undelivered = append(undelivered, fmt.Sprintf("%s (call %s %s)", e.CEID, id, e.Status))
			}
		}
	}
	rep.DuplicatesDelivered = len(o.Deliveries) - len(distinct)
	rep.Undelivered = len(undelivered)
	problem("deliveries failing signature verification", unverified)
	problem("deliveries whose webhook-id is not the event id", mismatched)
	problem("events delivered under more than one webhook-id", unstable)
	problem("deliveries of events not on the topic", strange)
	problem("events never delivered", undelivered)
	if o.WebhookDLQ > 0 {
		problem("deliveries in dialstream.webhooks.dlq", []string{fmt.Sprint(o.WebhookDLQ)})
	}
	if o.RequestDLQ > 0 {
		problem("requests in dialstream.calls.requested.dlq", []string{fmt.Sprint(o.RequestDLQ)})
	}
	return rep
}
