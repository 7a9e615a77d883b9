package invariants

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dialstream/dialstream/internal/phonesim"
	"github.com/dialstream/dialstream/schemas"
)

// FaultEnd names an end that a fault, not the callee, decided. Such an end
// is the one exception to "the outcome is what the callee's script makes of
// the call"; Check counts each, and reports it as a problem unless the run
// said it injected a fault that may cause it.
type FaultEnd string

const (
	// InDoubt: failed, ended by the dialer, because the process placing the
	// dial died or was fenced before the dial's result was written; the call
	// is never dialed again (docs/architecture.md, "In-doubt recovery").
	InDoubt FaultEnd = "in doubt"
	// Canceled: a canceled end the client did not ask for. The cancels the
	// load sends (Call.Cancel) are judged apart, by the cancel rule (Check).
	Canceled FaultEnd = "canceled"
	// Expired: the call waited too long for admission, or arrived too late to
	// be told apart from a duplicate (docs/architecture.md, "Lifecycle and
	// outcomes").
	Expired FaultEnd = "expired"
	// Stranded: an answered call the dialer's watchdog ended at the agent's
	// max_call_duration because LiveKit never said it was over: a
	// livekit-server that dies keeps its rooms and their participants in
	// Redis, so LiveKit still lists the callee of a call that died with it
	// (docs/architecture.md, "LiveKit, as measured").
	Stranded FaultEnd = "stranded by LiveKit"
	// PhoneFailed: failed with no SIP status because the phone network
	// itself could not set the call up (the simulator reports its own
	// failure, "phonesim: ...", instead of the script's answer): a phone
	// network frozen while a call was being set up times it out.
	PhoneFailed FaultEnd = "failed by the phone network"
	// AgentMissed: a call whose callee was written for an agent (human,
	// voicemail, transfer) ended as it does with no agent in the room,
	// completed (or, a transfer the callee asked for that no agent carried
	// out, at max_call_duration), instead of as the agent makes it: the
	// agent was killed, or could not hear the callee or act in time. Only
	// runs with an agent (Observed.AgentTakes) have it.
	AgentMissed FaultEnd = "without the agent"
)

// faultEndOf says which fault an ended event names, if any. The in-doubt end
// is known by its reason: a failed call the dialer itself ended "not
// redialed" (or saying "in doubt") rather than with a SIP status.
func faultEndOf(e Event) (FaultEnd, bool) {
	switch schemas.Outcome(e.Outcome) {
	case schemas.OutcomeCanceled:
		return Canceled, true
	case schemas.OutcomeExpired:
		return Expired, true
	case schemas.OutcomeMaxDuration:
		if e.EndedBy == string(schemas.EndedByWatchdog) {
			return Stranded, true
		}
	case schemas.OutcomeFailed:
		if e.EndedBy == string(schemas.EndedByDialer) &&
			(strings.Contains(e.Reason, "not redialed") || strings.Contains(e.Reason, "in doubt")) {
			return InDoubt, true
		}
		if e.SIPStatusCode == 0 && strings.Contains(e.Reason, "phonesim: ") {
			return PhoneFailed, true
		}
	}
	return "", false
}

// scripted is what the phone simulator's script for a number makes of a
// call, as the dialer reports it: the outcome, the SIP status of the ended
// event (0: none), and whether the call is answered on the way
// (internal/phonesim/script.go; docs/architecture.md, "Lifecycle and
// outcomes"). It assumes what the container suite runs: the agent's ringing
// timeout longer than the simulator's ring time, and no agent in the room.
// With an agent the callees written for one behave otherwise (a voicemail the
// agent hangs up on, a transfer it carries out), and a suite that runs one
// must give those scripts the agent's expectations.
type scripted struct {
	outcome schemas.Outcome
	sip     int
	answers bool
	// answeredBy is the agent's verdict the call's events must carry
	// (agentScripts); "": none is required.
	answeredBy schemas.AnsweredBy
}

// scripts holds an expectation for every script the simulator has; a
// script added without one is reported by Check (and by the package's own
// test) rather than passing unchecked.
var scripts = map[phonesim.Script]scripted{
	phonesim.ScriptAnswer:   {schemas.OutcomeCompleted, 0, true, ""},
	phonesim.ScriptHold:     {schemas.OutcomeMaxDuration, 0, true, ""},
	phonesim.ScriptBusy:     {schemas.OutcomeBusy, 486, false, ""},
	phonesim.ScriptDecline:  {schemas.OutcomeDeclined, 603, false, ""},
	phonesim.ScriptNotFound: {schemas.OutcomeFailed, 404, false, ""},
	phonesim.ScriptNoAnswer: {schemas.OutcomeNoAnswer, 480, false, ""},
	// Without an agent: the human and the transfer callee hear no greeting
	// and hang up, the voicemail hangs up after its recording time, the
	// silent callee stays until the call's max duration.
	phonesim.ScriptHuman:     {schemas.OutcomeCompleted, 0, true, ""},
	phonesim.ScriptTransfer:  {schemas.OutcomeCompleted, 0, true, ""},
	phonesim.ScriptVoicemail: {schemas.OutcomeCompleted, 0, true, ""},
	phonesim.ScriptSilent:    {schemas.OutcomeMaxDuration, 0, true, ""},
}

// agentScripts are the expectations that differ when the reference agent
// takes the calls (Observed.AgentTakes), with the registry's settings the
// container suite gives it (on_machine: hangup, a transfer_to): the person
// hears the greeting, replies and hangs up after the goodbye; the voicemail
// is heard as a machine and hung up on; the callee who asks for a person is
// transferred. The other scripts end as without an agent: the answering
// callee says nothing and hangs up after 3 s, before the agent gives up
// listening.
var agentScripts = map[phonesim.Script]scripted{
	phonesim.ScriptHuman:     {schemas.OutcomeCompleted, 0, true, schemas.AnsweredByHuman},
	phonesim.ScriptVoicemail: {schemas.OutcomeVoicemail, 0, true, schemas.AnsweredByMachine},
	phonesim.ScriptTransfer:  {schemas.OutcomeTransferred, 0, true, schemas.AnsweredByHuman},
}

// expectation is what the callee's script makes of a call in this run, and
// whether it is the agent's (agentScripts).
func expectation(s phonesim.Script, agent bool) (exp scripted, known, byAgent bool) {
	if agent {
		if a, ok := agentScripts[s]; ok {
			return a, true, true
		}
	}
	exp, known = scripts[s]
	return exp, known, false
}

// liveFrom is when a call went out: its first dial at the phone network,
// else its dialing claim.
func liveFrom(cv *callView, ds []Dial) time.Time {
	if len(ds) > 0 {
		return ds[0].At
	}
	return cv.first[string(schemas.StatusDialing)].Written
}

// agentMissed says whether a call the agent should have played out ended as
// it does without one (AgentMissed): answered, then completed, or at the
// call's max duration (a callee who asked for a transfer waits for one),
// with no verdict of the agent's that contradicts exp. An agent that took a
// person for a machine did not miss the call: it got it wrong.
func agentMissed(cv *callView, ended Event, exp scripted) bool {
	if !cv.has(schemas.StatusAnswered) ||
		cv.answeredBy != "" && cv.answeredBy != string(schemas.AnsweredByUnknown) && cv.answeredBy != string(exp.answeredBy) {
		return false
	}
	switch schemas.Outcome(ended.Outcome) {
	case schemas.OutcomeCompleted:
		return true
	case schemas.OutcomeMaxDuration:
		return phonesim.ScriptFor(cv.to) == phonesim.ScriptTransfer
	}
	return false
}

// Report is the verdict on one run: its figures, the exceptions a fault
// explains (Notes), and every violation found (Problems). A run passes when
// Problems is empty.
type Report struct {
	// The client's side.
	CallsSent, Accepted, Refused, Unsettled int
	Retries                                 map[string]int // repeated attempts, by the answer before them
	// AcceptedAfterFault counts requests accepted after a 503, a 409 or no
	// answer; ReplayedAfterFault those of them whose 2xx replayed a record
	// written after the client had been told 503 (a late acknowledgement).
	AcceptedAfterFault, ReplayedAfterFault int
	// PlacedUnacknowledged counts calls on the events topic whose client was
	// only ever answered 503, 409 or nothing: the README's 503 promise says
	// this can happen (a record already sent when time ran out may land), so
	// it is a note, not a problem.
	PlacedUnacknowledged int

	// The events topic.
	CallsSeen    int // distinct calls
	EventRecords int // lifecycle records, replays included
	Events       int // distinct lifecycle events (ce_id)
	Ended        int // calls with exactly one ended event
	Outcomes     map[string]int
	// ByAnsweredBy counts the ended calls by the agent's verdict
	// (answered_by; "none" when the agent gave none).
	ByAnsweredBy map[string]int
	// EndReasons counts the ends that were not the callee's doing (not
	// completed, and not a SIP status): the traces a fault leaves.
	EndReasons map[string]int
	// AsScripted counts the ends that are what the callee's script makes of
	// the call; FaultEnds the ends that name a fault instead, by kind.
	AsScripted int
	FaultEnds  map[FaultEnd]int
	// InDoubtNeverRang counts the in-doubt ends of calls the phone network
	// never saw: the dial request had not left when the fault hit.
	InDoubtNeverRang int

	// The client's cancels (Call.Cancel), judged by the cancel rule (Check):
	// sent, answered 202 and 409; ended canceled as asked (of them, never
	// dialed); ended with the callee's outcome because the end won the race
	// with an accepted cancel.
	CancelsSent, CancelsAccepted, CancelsTooLate   int
	CanceledAsAsked, CanceledUndialed, CancelRaced int

	// The phone network.
	Dials    int            // CreateSIPParticipant requests at the simulator
	Dialed   int            // distinct rooms dialed
	ByScript map[string]int // dials by the callee's script

	// The callback receiver.
	WebhooksDelivered   int // POSTs the receiver got
	EventsDelivered     int // distinct events delivered (2xx, signature verified)
	DuplicatesDelivered int // WebhooksDelivered - distinct webhook-ids

	// Violation counts; the details are in Problems.
	Lost, DoubleDialed, PhantomDials, UndialedClaims, Contrary int
	MissingEnded, MultipleEnded, SequenceGaps, Undelivered     int

	Notes    []string // exceptions a fault explains, counted, with examples
	Problems []string
}

// Passed says whether no invariant was violated.
func (r Report) Passed() bool { return len(r.Problems) == 0 }

func sortedCounts[K ~string](m map[K]int) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(out, " ")
}

// Table is the run's figures, one line per side, printed at the end of
// every test.
func (r Report) Table() string {
	retries := 0
	for _, n := range r.Retries {
		retries += n
	}
	faults := 0
	for _, n := range r.FaultEnds {
		faults += n
	}
	rows := [][2]string{
		{"client", fmt.Sprintf("sent %d, accepted %d (%d after a 503 or no answer, %d of them replayed), refused %d, unsettled %d; retries %d [%s]",
			r.CallsSent, r.Accepted, r.AcceptedAfterFault, r.ReplayedAfterFault, r.Refused, r.Unsettled, retries, sortedCounts(r.Retries))},
		{"calls", fmt.Sprintf("%d on the events topic, %d events (%d records); ended %d [%s]; answered_by [%s]",
			r.CallsSeen, r.Events, r.EventRecords, r.Ended, sortedCounts(r.Outcomes), sortedCounts(r.ByAnsweredBy))},
		{"outcomes", fmt.Sprintf("%d as the callee's script says, %d ended by a fault [%s] (in doubt and never rang: %d); placed after only 503s: %d",
			r.AsScripted, faults, sortedCounts(r.FaultEnds), r.InDoubtNeverRang, r.PlacedUnacknowledged)},
		{"cancels", fmt.Sprintf("%d sent: %d accepted (202), %d after the end (409); ended canceled %d (%d never dialed), "+
			"ended as the callee's script says before the cancel took effect %d",
			r.CancelsSent, r.CancelsAccepted, r.CancelsTooLate, r.CanceledAsAsked, r.CanceledUndialed, r.CancelRaced)},
		{"dials", fmt.Sprintf("%d dial requests for %d rooms [%s]", r.Dials, r.Dialed, sortedCounts(r.ByScript))},
		{"webhooks", fmt.Sprintf("%d POSTs, %d distinct events delivered, %d duplicates", r.WebhooksDelivered, r.EventsDelivered, r.DuplicatesDelivered)},
		{"verdict", fmt.Sprintf("lost %d, double dials %d, phantom dials %d, claims without a dial %d, outcomes contrary to the script %d, "+
			"missing ended %d, multiple ended %d, sequence gaps %d, undelivered %d",
			r.Lost, r.DoubleDialed, r.PhantomDials, r.UndialedClaims, r.Contrary, r.MissingEnded, r.MultipleEnded, r.SequenceGaps, r.Undelivered)},
	}
	var b strings.Builder
	for _, row := range rows {
		fmt.Fprintf(&b, "  %-9s %s\n", row[0], row[1])
	}
	return strings.TrimRight(b.String(), "\n")
}

// callView is what the events topic says about one call.
type callView struct {
	id      string
	seqs    map[int]Event       // first record of each sequence
	first   map[string]Event    // first record of each status
	endedBy map[string]struct{} // distinct ce_ids of ended events
	room    string
	to      string
	key     string
	keys    map[string]struct{} // metadata keys seen (one, unless something rewrote it)
	// answeredBy is the agent's verdict, from the last event that carries
	// one (its answered_by report, or the ended event).
	answeredBy string
	agent      string // call_agent_id
}

func (cv *callView) has(s schemas.Status) bool { _, ok := cv.first[string(s)]; return ok }

func (cv *callView) ended() (Event, bool) {
	if len(cv.endedBy) != 1 {
		return Event{}, false
	}
	for _, e := range cv.seqs {
		if e.Status == string(schemas.StatusEnded) {
			return e, true
		}
	}
	return Event{}, false
}

// calls groups the events by call.
func calls(events []Event) map[string]*callView {
	out := map[string]*callView{}
	for _, e := range events {
		cv := out[e.CallID]
		if cv == nil {
			cv = &callView{id: e.CallID, seqs: map[int]Event{}, first: map[string]Event{}, endedBy: map[string]struct{}{},
				keys: map[string]struct{}{}}
			out[e.CallID] = cv
		}
		if e.RoomName != "" {
			cv.room = e.RoomName
		}
		if e.To != "" {
			cv.to = e.To
		}
		if e.Key != "" {
			cv.key = e.Key
			cv.keys[e.Key] = struct{}{}
		}
		if e.AnsweredBy != "" {
			cv.answeredBy = e.AnsweredBy
		}
		if e.CallAgentID != "" {
			cv.agent = e.CallAgentID
		}
		if _, ok := cv.seqs[e.Sequence]; !ok {
			cv.seqs[e.Sequence] = e
		}
		if _, ok := cv.first[e.Status]; !ok {
			cv.first[e.Status] = e
		}
		if e.Status == string(schemas.StatusEnded) {
			cv.endedBy[e.CEID] = struct{}{}
		}
	}
	return out
}

// Pending counts what a run is still waiting for: calls without an ended
// event (every accepted call, and every call on the events topic), and
// distinct events (lifecycle and campaign) without a verified 2xx
// delivery. A test polls it until both are zero (the faults have healed)
// or it gives up.
func Pending(o Observed) (notEnded, undelivered int) {
	ended := map[string]bool{}
	events := map[string]bool{}
	for _, e := range o.Events {
		events[e.CEID] = true
		ended[e.CallID] = ended[e.CallID] || e.Status == string(schemas.StatusEnded)
	}
	for _, q := range o.Requests {
		if _, seen := ended[q.CallID]; q.Accepted && !seen {
			notEnded++
		}
	}
	for _, done := range ended {
		if !done {
			notEnded++
		}
	}
	for _, e := range o.CampaignEvents {
		events[e.CEID] = true
	}
	delivered := deliveredIDs(o.Deliveries)
	for id := range events {
		if !delivered[id] {
			undelivered++
		}
	}
	return notEnded, undelivered
}

// deliveredIDs are the event ids with at least one verified 2xx delivery:
// counted per distinct id, so a duplicate of one event cannot stand in for
// another that was never delivered.
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

// listing formats one kind of problem or note: "kind: n: a; b; c (and 4 more)".
func listing(kind string, items []string) string {
	sort.Strings(items)
	shown := items
	if len(shown) > maxListed {
		shown = shown[:maxListed]
	}
	more := ""
	if len(items) > maxListed {
		more = fmt.Sprintf(" (and %d more)", len(items)-maxListed)
	}
	return fmt.Sprintf("%s: %d: %s%s", kind, len(items), strings.Join(shown, "; "), more)
}

// Check judges one run against the invariants of docs/architecture.md
// ("Invariant 1: durable before 2xx", "Invariant 2: exactly one dial",
// "Invariant 3: every event delivered"), comparing sides that cannot vouch
// for each other: what the client was answered, the events topic, the dials
// the phone network received, and the webhooks the receiver got.
//
//  1. Every 2xx is a call on the events topic (not lost) that ends exactly
//     once, with a complete sequence; every call on the topic is one a client
//     asked for, to the number it asked for; a call placed although its
//     client was only ever answered 503 (or nothing) is a note, as the README
//     promises it may happen.
//  2. Every call that reached `dialing` was dialed exactly once at the phone
//     network, in its room and to its number, after its claim was written; no
//     call was dialed without a claim; every dial belongs to a call a client
//     asked for; a call nobody dialed never rang nor answered. Every outcome is
//     what the callee's script makes of the call, or names a fault (FaultEnd):
//     those listed in allowed are notes, others problems.
//  3. Every distinct event reached the callback with a verified signature
//     under its own webhook-id, and nothing went to a DLQ.
func Check(o Observed, allowed ...FaultEnd) Report {
	rep := Report{Retries: map[string]int{}, Outcomes: map[string]int{}, ByAnsweredBy: map[string]int{}, EndReasons: map[string]int{},
		FaultEnds: map[FaultEnd]int{}, ByScript: map[string]int{}, Dials: len(o.Dials),
		EventRecords: len(o.Events), WebhooksDelivered: len(o.Deliveries)}
	problem := func(kind string, items []string) {
		if len(items) > 0 {
			rep.Problems = append(rep.Problems, listing(kind, items))
		}
	}
	note := func(kind string, items []string) {
		if len(items) > 0 {
			rep.Notes = append(rep.Notes, listing(kind, items))
		}
	}

	// The client's side.
	byKey := map[string]Request{}
	keyOfCall := map[string]string{}
	var refused, unsettled, oneIDTwoKeys []string
	for _, q := range o.Requests {
		rep.CallsSent++
		byKey[q.Key] = q
		for _, a := range q.Answers[:max(len(q.Answers)-1, 0)] {
			rep.Retries[a]++
		}
		switch {
		case q.Accepted:
			rep.Accepted++
			if k, ok := keyOfCall[q.CallID]; ok {
				oneIDTwoKeys = append(oneIDTwoKeys, fmt.Sprintf("call %s for keys %s and %s", q.CallID, k, q.Key))
			}
			keyOfCall[q.CallID] = q.Key
			if q.retriedThroughFault() {
				rep.AcceptedAfterFault++
				if q.Replayed {
					rep.ReplayedAfterFault++
				}
			}
		case q.Refused != "":
			rep.Refused++
			refused = append(refused, q.Key+": "+q.Refused)
		default:
			rep.Unsettled++
			unsettled = append(unsettled, fmt.Sprintf("%s: %s (answers %s)", q.Key, q.Unsettled, strings.Join(q.Answers, ",")))
		}
	}
	var cancelsUnanswered []string
	for _, q := range o.Requests {
		ca := q.Cancel
		if ca.Sent.IsZero() && ca.Unsettled == "" {
			continue
		}
		rep.CancelsSent++
		switch {
		case ca.Code == http.StatusAccepted:
			rep.CancelsAccepted++
		case ca.Code == http.StatusConflict:
			rep.CancelsTooLate++
		case ca.Refused != "":
			cancelsUnanswered = append(cancelsUnanswered, fmt.Sprintf("call %s: refused %s", q.CallID, ca.Refused))
		default:
			cancelsUnanswered = append(cancelsUnanswered, fmt.Sprintf("call %s: %s (answers %s)", q.CallID, ca.Unsettled, strings.Join(ca.Answers, ",")))
		}
	}
	problem("requests refused", refused)
	problem("requests without a final answer", unsettled)
	problem("cancels refused or without a final answer", cancelsUnanswered)
	problem("one call id accepted for two requests", oneIDTwoKeys)

	// The events topic.
	problem("invalid records on the events topic", o.BadEvents)
	cs := calls(o.Events)
	rep.CallsSeen = len(cs)
	var conflicting []string
	for _, e := range o.Events {
		if want := schemas.EventID(e.CallID, e.Sequence); e.CEID != want {
			conflicting = append(conflicting, fmt.Sprintf("call %s seq %d has ce_id %s, want %s", e.CallID, e.Sequence, e.CEID, want))
		}
		if prev := cs[e.CallID].seqs[e.Sequence]; prev.CEID != e.CEID || prev.Status != e.Status || prev.Outcome != e.Outcome {
			conflicting = append(conflicting, fmt.Sprintf("call %s seq %d is %s/%s (%s) at %d@%d and %s/%s (%s) at %d@%d",
				e.CallID, e.Sequence, prev.Status, prev.Outcome, prev.CEID, prev.Partition, prev.Offset,
				e.Status, e.Outcome, e.CEID, e.Partition, e.Offset))
		}
	}
	problem("one sequence, two different events (a replay must repeat the event)", conflicting)

	var lost, missingEnded, multipleEnded, gaps []string
	for _, q := range o.Requests {
		if q.Accepted && cs[q.CallID] == nil {
			lost = append(lost, fmt.Sprintf("call %s (%s, key %s) has no event", q.CallID, phonesim.MaskNumber(q.To), q.Key))
		}
	}
	for id, cv := range cs {
		switch len(cv.endedBy) {
		case 0:
			last := cv.seqs[slices.Max(slices.Collect(maps.Keys(cv.seqs)))]
			missingEnded = append(missingEnded, fmt.Sprintf("call %s stopped at %s (seq %d)", id, last.Status, last.Sequence))
		case 1:
			e, _ := cv.ended()
			rep.Ended++
			rep.Outcomes[e.Outcome]++
			if cv.answeredBy != "" {
				rep.ByAnsweredBy[cv.answeredBy]++
			} else if cv.has(schemas.StatusAnswered) {
				rep.ByAnsweredBy["none"]++
			}
			if e.Outcome != string(schemas.OutcomeCompleted) && e.Reason != "" && !strings.HasPrefix(e.Reason, "sip status") {
				rep.EndReasons[e.Outcome+": "+e.Reason]++
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
		// Only the agent's reports may follow the end (its post-call
		// result, within the report window); a lifecycle event may not.
		for s := n; len(cv.endedBy) > 0 && s >= 1; s-- {
			e, ok := cv.seqs[s]
			if !ok || e.Status == string(schemas.StatusAgentReport) {
				continue
			}
			if e.Status != string(schemas.StatusEnded) {
				gaps = append(gaps, fmt.Sprintf("call %s: seq %d (%s) comes after ended", id, s, e.Status))
			}
			break
		}
		rep.Events += len(cv.seqs)
	}
	rep.Lost, rep.MissingEnded, rep.MultipleEnded, rep.SequenceGaps = len(lost), len(missingEnded), len(multipleEnded), len(gaps)
	problem("accepted calls lost", lost)
	problem("calls without an ended event", missingEnded)
	problem("calls ended more than once", multipleEnded)
	problem("incomplete sequences", gaps)

	// Each call on the topic against the request it came from.
	var unasked, mismatched, placedRefused, placedUnacked []string
	for id, cv := range cs {
		q, asked := byKey[cv.key]
		switch {
		case !asked:
			unasked = append(unasked, fmt.Sprintf("call %s (room %s, metadata key %q)", id, cv.room, cv.key))
			continue
		case len(cv.keys) > 1:
			mismatched = append(mismatched, fmt.Sprintf("call %s carries keys %s", id, strings.Join(slices.Sorted(maps.Keys(cv.keys)), ", ")))
		case q.Accepted && (q.CallID != id || q.RoomName != cv.room):
			mismatched = append(mismatched, fmt.Sprintf("key %s was answered call %s in room %s, the topic has call %s in room %s",
				q.Key, q.CallID, q.RoomName, id, cv.room))
		case q.Refused != "":
			placedRefused = append(placedRefused, fmt.Sprintf("call %s of key %s, refused with %s", id, q.Key, q.Refused))
		case q.onlyUnacknowledged():
			placedUnacked = append(placedUnacked, fmt.Sprintf("call %s of key %s (answers %s)", id, q.Key, strings.Join(q.Answers, ",")))
		}
		if cv.to != q.To {
			mismatched = append(mismatched, fmt.Sprintf("call %s of key %s is to %s, the client asked for %s",
				id, q.Key, phonesim.MaskNumber(cv.to), phonesim.MaskNumber(q.To)))
		}
	}
	rep.PlacedUnacknowledged = len(placedUnacked)
	problem("calls on the events topic no client asked for", unasked)
	problem("calls that differ from the request they came from", mismatched)
	problem("calls placed although their request was refused", placedRefused)
	note("calls placed although their client was only answered 503 or nothing (the README's 503 promise)", placedUnacked)

	// The phone network.
	roomCall := map[string]string{}
	for _, q := range o.Requests {
		if q.Accepted {
			roomCall[q.RoomName] = q.CallID
		}
	}
	for id, cv := range cs {
		if cv.room != "" {
			roomCall[cv.room] = id
		}
	}
	dialsOf := map[string][]Dial{}
	for _, d := range o.Dials {
		dialsOf[d.Room] = append(dialsOf[d.Room], d)
		rep.ByScript[string(phonesim.ScriptFor(d.To))]++
	}
	rep.Dialed = len(dialsOf)
	if rep.Accepted > 0 && len(o.Dials) == 0 {
		problem("the phone network received no dial at all", []string{fmt.Sprintf("%d calls accepted", rep.Accepted)})
	}
	var phantom, wrongNumber []string
	for room, ds := range dialsOf {
		id := roomCall[room]
		cv := cs[id]
		switch {
		case id == "":
			phantom = append(phantom, fmt.Sprintf("room %s (%s): no call has it", room, phonesim.MaskNumber(ds[0].To)))
		case cv != nil && byKey[cv.key].Key == "":
			phantom = append(phantom, fmt.Sprintf("room %s: call %s, which no client asked for", room, id))
		}
		to := ""
		if cv != nil {
			to = cv.to
		} else if q, ok := byKey[keyOfCall[id]]; ok {
			to = q.To
		}
		for _, d := range ds {
			if to != "" && d.To != to {
				wrongNumber = append(wrongNumber, fmt.Sprintf("room %s of call %s dialed %s, the call is to %s",
					room, id, phonesim.MaskNumber(d.To), phonesim.MaskNumber(to)))
			}
		}
	}
	rep.PhantomDials = len(phantom)
	problem("dials that belong to no call a client asked for", phantom)
	problem("dials to another number than the call's", wrongNumber)

	// Each call's dials and outcome.
	var twice, unclaimed, early, undialed, rangUndialed, contrary, unexpected, noScript []string
	var inDoubtRang, inDoubtSilent, cancelContrary, raced, withoutAgent, missedUnallowed, missedInOutage []string
	agentAnswered := 0 // answered calls the reference agent should have played out
	for id, cv := range cs {
		ds := dialsOf[cv.room]
		ended, hasEnded := cv.ended()
		kind, byFault := FaultEnd(""), false
		if hasEnded {
			kind, byFault = faultEndOf(ended)
		}
		// The cancel rule: a call the client canceled ends canceled when
		// ingest accepted the cancel (202; or 409 naming canceled, a retry
		// after the written cancel had ended it). Otherwise it ends with
		// the callee's outcome (or a fault's end), as if never canceled: a
		// 202 whose cancel the dialer read after the call had already
		// ended, or a 409 (then with the outcome the 409 named).
		ask := byKey[cv.key].Cancel
		asked := kind == Canceled && (ask.Code == http.StatusAccepted ||
			ask.Code == http.StatusConflict && ask.Outcome == string(schemas.OutcomeCanceled))
		mayLackDial := byFault && (kind == InDoubt || kind == Canceled)
		switch {
		case len(ds) > 1:
			twice = append(twice, fmt.Sprintf("room %s (call %s) dialed %d times", cv.room, id, len(ds)))
		case len(ds) == 1 && !cv.has(schemas.StatusDialing):
			unclaimed = append(unclaimed, fmt.Sprintf("call %s dialed at %s with no dialing event", id, ds[0].At.Format(time.RFC3339Nano)))
		case len(ds) == 1 && ds[0].At.Before(cv.first[string(schemas.StatusDialing)].Written):
			early = append(early, fmt.Sprintf("call %s dialed at %s, its dialing claim written at %s", id,
				ds[0].At.Format(time.RFC3339Nano), cv.first[string(schemas.StatusDialing)].Written.Format(time.RFC3339Nano)))
		case len(ds) == 0 && cv.has(schemas.StatusDialing) && !mayLackDial:
			undialed = append(undialed, fmt.Sprintf("call %s (%s) reached dialing, ended %s, never dialed",
				id, phonesim.MaskNumber(cv.to), describeEnd(ended, hasEnded)))
		}
		if len(ds) == 0 && (cv.has(schemas.StatusRinging) || cv.has(schemas.StatusAnswered)) {
			rangUndialed = append(rangUndialed, fmt.Sprintf("call %s has a ringing or answered event and no dial", id))
		}
		if !hasEnded {
			continue
		}
		script := phonesim.ScriptFor(cv.to)
		exp, known, byAgent := expectation(script, slices.Contains(o.AgentTakes, cv.agent))
		if byAgent && cv.has(schemas.StatusAnswered) {
			agentAnswered++
		}
		asExpected := known && ended.Outcome == string(exp.outcome) && (exp.sip == 0 || ended.SIPStatusCode == exp.sip) &&
			cv.has(schemas.StatusAnswered) == exp.answers && (exp.answeredBy == "" || cv.answeredBy == string(exp.answeredBy))
		if byAgent && !asExpected && !byFault && agentMissed(cv, ended, exp) {
			kind, byFault = AgentMissed, true
		}
		if ask.Code == http.StatusConflict && ended.Outcome != ask.Outcome {
			cancelContrary = append(cancelContrary, fmt.Sprintf("call %s: the cancel was answered 409 with outcome %q, the call ended %s",
				id, ask.Outcome, describeEnd(ended, true)))
		}
		switch {
		case asked:
			rep.CanceledAsAsked++
			if len(ds) == 0 {
				rep.CanceledUndialed++
			}
			if ended.Written.Before(ask.Sent) {
				cancelContrary = append(cancelContrary, fmt.Sprintf("call %s ended canceled at %s, before the client sent its cancel at %s",
					id, ended.Written.Format("15:04:05.000"), ask.Sent.Format("15:04:05.000")))
			}
		case byFault:
			rep.FaultEnds[kind]++
			switch {
			case slices.Contains(allowed, kind):
			case kind == AgentMissed && slices.ContainsFunc(o.ReportOutages, func(s Span) bool { return s.overlaps(liveFrom(cv, ds), ended.Written) }):
				missedInOutage = append(missedInOutage, fmt.Sprintf("call %s (%s): live %s to %s, ended %s", id, script,
					liveFrom(cv, ds).Format("15:04:05.000"), ended.Written.Format("15:04:05.000"), describeEnd(ended, true)))
			case kind == AgentMissed:
				missedUnallowed = append(missedUnallowed, fmt.Sprintf("call %s (%s) ended %s", id, script, describeEnd(ended, true)))
			default:
				unexpected = append(unexpected, fmt.Sprintf("call %s (%s) ended %s", id, script, describeEnd(ended, true)))
			}
			if kind == InDoubt {
				if len(ds) == 0 {
					rep.InDoubtNeverRang++
					inDoubtSilent = append(inDoubtSilent, fmt.Sprintf("call %s (%s): claim written %s, no dial", id, script,
						cv.first[string(schemas.StatusDialing)].Written.Format("15:04:05.000")))
				} else {
					inDoubtRang = append(inDoubtRang, fmt.Sprintf("call %s (%s): dialed %s, ended %s", id, script,
						ds[0].At.Format("15:04:05.000"), ended.Written.Format("15:04:05.000")))
				}
			}
			if kind == AgentMissed {
				withoutAgent = append(withoutAgent, fmt.Sprintf("call %s (%s): answered_by %q, ended %s at %s", id, script,
					cv.answeredBy, describeEnd(ended, true), ended.Written.Format("15:04:05.000")))
			}
		case !known:
			noScript = append(noScript, fmt.Sprintf("call %s: script %q", id, script))
		case asExpected:
			rep.AsScripted++
			if ask.Code == http.StatusAccepted {
				rep.CancelRaced++
				raced = append(raced, fmt.Sprintf("call %s (%s) ended %s %s after the client sent its cancel", id, script,
					ended.Outcome, ended.Written.Sub(ask.Sent).Round(time.Millisecond)))
			}
		default:
			want := string(exp.outcome)
			if exp.sip != 0 {
				want += fmt.Sprintf(" (sip %d)", exp.sip)
			}
			if exp.answeredBy != "" {
				want += fmt.Sprintf(" answered_by %s", exp.answeredBy)
			}
			answered := map[bool]string{true: "answered", false: "not answered"}
			contrary = append(contrary, fmt.Sprintf("call %s to %s: script %s makes it %s, %s; it was %s (answered_by %q), ended %s",
				id, phonesim.MaskNumber(cv.to), script, answered[exp.answers], want,
				answered[cv.has(schemas.StatusAnswered)], cv.answeredBy, describeEnd(ended, true)))
		}
	}
	rep.DoubleDialed, rep.UndialedClaims, rep.Contrary = len(twice), len(undialed), len(contrary)
	problem("calls dialed more than once", twice)
	problem("calls dialed without a durable claim (no dialing event)", unclaimed)
	problem("calls dialed before their dialing claim was written", early)
	problem("calls that reached dialing and were never dialed", undialed)
	problem("calls that rang or answered without a dial", rangUndialed)
	problem("outcomes contrary to the callee's script", contrary)
	problem("scripts the checker has no expectation for", noScript)
	problem("ends naming a fault this run did not inject", unexpected)
	problem("ends contrary to the client's cancel", cancelContrary)
	note("ended as the callee's script says although the cancel was accepted (the end won the race)", raced)
	note("in doubt after a dial", inDoubtRang)
	note("in doubt, never rang (the dial request had not left)", inDoubtSilent)
	note("ended as without the agent", withoutAgent)
	note("ended as without the agent, in progress while the agent's reports could not be recorded", missedInOutage)
	// A run that injects no agent fault may still see the agent miss a
	// few calls: on a saturated machine its WebRTC session can fail to
	// carry a line in time. Up to AgentMissTolerance of the agent's
	// answered calls is a note; more is a problem, every one listed.
	if n := len(missedUnallowed); n > 0 && float64(n) <= o.AgentMissTolerance*float64(agentAnswered) {
		note(fmt.Sprintf("ended as without the agent in a run without an agent fault, tolerated (%d of the agent's %d answered calls, up to %.0f%%)",
			n, agentAnswered, o.AgentMissTolerance*100), missedUnallowed)
	} else {
		problem(fmt.Sprintf("ends naming a fault this run did not inject (without the agent: %d of the agent's %d answered calls)", n, agentAnswered), missedUnallowed)
	}

	// The callback receiver.
	if o.DeliveriesDropped > 0 {
		problem("deliveries the receiver could not keep", []string{fmt.Sprint(o.DeliveriesDropped)})
	}
	var unverified, misnamed, unstable, strange []string
	idsOfEvent := map[string]map[string]struct{}{}
	distinct := map[string]struct{}{}
	for _, d := range o.Deliveries {
		distinct[d.WebhookID] = struct{}{}
		if !d.Verified {
			unverified = append(unverified, fmt.Sprintf("#%d %s: %s", d.N, d.WebhookID, d.VerifyError))
		}
		if d.WebhookID == "" || d.WebhookID != d.EventID || d.WebhookID != schemas.EventID(d.CallID, d.Sequence) {
			misnamed = append(misnamed, fmt.Sprintf("#%d webhook-id %q, data.event_id %q, body call %s seq %d",
				d.N, d.WebhookID, d.EventID, d.CallID, d.Sequence))
		}
		ev := fmt.Sprintf("%s seq %d", d.CallID, d.Sequence)
		if idsOfEvent[ev] == nil {
			idsOfEvent[ev] = map[string]struct{}{}
		}
		idsOfEvent[ev][d.WebhookID] = struct{}{}
		if cv := cs[d.CallID]; cv == nil || cv.seqs[d.Sequence].CEID == "" {
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
	for id, cv := range cs {
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
	problem("deliveries whose webhook-id is not their event's id", misnamed)
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

func describeEnd(e Event, ok bool) string {
	if !ok {
		return "(not ended)"
	}
	s := e.Outcome
	if e.SIPStatusCode != 0 {
		s += fmt.Sprintf(" (sip %d)", e.SIPStatusCode)
	}
	if e.Reason != "" {
		s += fmt.Sprintf(" by %s: %q", e.EndedBy, e.Reason)
	}
	return s
}
