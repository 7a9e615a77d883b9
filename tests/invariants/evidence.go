package invariants

import (
	"fmt"
	"slices"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// The evidence that a fault hit live work, read from the same outside
// records as Check: the events topic (which partition a call is on, when
// each record was written), the phone network's dials and the receiver's
// deliveries. A fault test names the partitions its fault touched (from the
// consumer group's assignment, as the broker reports it) and the instants
// it acted, and asserts that these lists are not empty.

// InFlight is a dial that was running at some instant.
type InFlight struct {
	CallID   string
	To       string
	DialedAt time.Time // when the phone network received it
}

// DialsInFlight lists the calls on the given partitions of the events topic
// whose dial was running at t: the phone network had received the dial
// before t, and neither the answer nor the end had been written by t.
func DialsInFlight(o Observed, partitions []int32, t time.Time) []InFlight {
	dialedAt := firstDials(o.Dials)
	var out []InFlight
	for id, cv := range calls(o.Events) {
		at, dialed := dialedAt[cv.room]
		if !dialed || !at.Before(t) || !onPartitions(cv, partitions) {
			continue
		}
		if writtenBefore(cv, schemas.StatusAnswered, t) || writtenBefore(cv, schemas.StatusEnded, t) {
			continue
		}
		out = append(out, InFlight{CallID: id, To: cv.to, DialedAt: at})
	}
	slices.SortFunc(out, func(a, b InFlight) int { return a.DialedAt.Compare(b.DialedAt) })
	return out
}

// LiveAcross lists the calls on the given partitions that were live for
// the whole of [from, to]: their first event was written before from, and
// their ended event after to (or never). A hand-over in that window moved
// them while they were live.
func LiveAcross(o Observed, partitions []int32, from, to time.Time) []string {
	var out []string
	for id, cv := range calls(o.Events) {
		first, ok := cv.seqs[1]
		if !ok || !onPartitions(cv, partitions) || !first.Written.Before(from) || writtenBefore(cv, schemas.StatusEnded, to) {
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// LiveDuring lists the calls on the given partitions that were live at
// some instant of [from, to]: their first event was written by to, and
// their ended event was not written before from.
func LiveDuring(o Observed, partitions []int32, from, to time.Time) []string {
	var out []string
	for id, cv := range calls(o.Events) {
		first, ok := cv.seqs[1]
		if !ok || !onPartitions(cv, partitions) || first.Written.After(to) || writtenBefore(cv, schemas.StatusEnded, from) {
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// DialedAfter lists the calls claimed in [from, to) (their dialing event
// written then) whose first dial reached the phone network only at back or
// later: the calls a fault made wait, dialed once it had healed.
func DialedAfter(o Observed, from, to, back time.Time) []string {
	dialedAt := firstDials(o.Dials)
	var out []string
	for id, cv := range calls(o.Events) {
		claim, ok := cv.first[string(schemas.StatusDialing)]
		at, dialed := dialedAt[cv.room]
		if !ok || !dialed || claim.Written.Before(from) || !claim.Written.Before(to) || at.Before(back) {
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// PhoneFailedAfter lists the calls the phone network failed (PhoneFailed)
// whose dial reached it only at or after t: a fault that froze the network
// until t explains only the calls it was setting up by then.
func PhoneFailedAfter(o Observed, t time.Time) []string {
	dialedAt := firstDials(o.Dials)
	var out []string
	for id, cv := range calls(o.Events) {
		ended, ok := cv.ended()
		if !ok {
			continue
		}
		if kind, byFault := faultEndOf(ended); !byFault || kind != PhoneFailed {
			continue
		}
		if at, dialed := dialedAt[cv.room]; !dialed || !at.Before(t) {
			out = append(out, fmt.Sprintf("%s (dialed %s)", id, at.Format("15:04:05.000")))
		}
	}
	slices.Sort(out)
	return out
}

// Delay is how long one event waited between being written and its first
// verified 2xx delivery (-1 if it was never delivered).
type Delay struct {
	CEID    string
	Written time.Time
	Waited  time.Duration
}

// DeliveryDelays lists the events on the given partitions first written in
// [from, to), each with how long it waited for its first delivery.
func DeliveryDelays(o Observed, partitions []int32, from, to time.Time) []Delay {
	first := map[string]time.Time{}
	for _, d := range o.Deliveries {
		if !d.Verified || d.AnsweredWith < 200 || d.AnsweredWith >= 300 {
			continue
		}
		if t, ok := first[d.WebhookID]; !ok || d.ReceivedAt.Before(t) {
			first[d.WebhookID] = d.ReceivedAt
		}
	}
	var out []Delay
	for _, cv := range calls(o.Events) {
		if !onPartitions(cv, partitions) {
			continue
		}
		for _, e := range cv.seqs {
			if e.Written.Before(from) || !e.Written.Before(to) {
				continue
			}
			d := Delay{CEID: e.CEID, Written: e.Written, Waited: -1}
			if t, ok := first[e.CEID]; ok {
				d.Waited = t.Sub(e.Written)
			}
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b Delay) int { return a.Written.Compare(b.Written) })
	return out
}

// RetriedDeliveries counts the events the receiver got more than once, and
// those of them it answered something other than a verified 2xx before its
// first verified 2xx: what retries look like from the callback's side.
func RetriedDeliveries(o Observed) (redelivered, afterFailure int) {
	type seen struct {
		n         int
		failed    bool // an attempt before the first success failed
		succeeded bool
	}
	by := map[string]*seen{}
	for _, d := range o.Deliveries {
		s := by[d.WebhookID]
		if s == nil {
			s = &seen{}
			by[d.WebhookID] = s
		}
		s.n++
		ok := d.Verified && d.AnsweredWith >= 200 && d.AnsweredWith < 300
		if !ok && !s.succeeded {
			s.failed = true
		}
		s.succeeded = s.succeeded || ok
	}
	for _, s := range by {
		if s.n > 1 {
			redelivered++
		}
		if s.failed && s.succeeded {
			afterFailure++
		}
	}
	return redelivered, afterFailure
}

func firstDials(ds []Dial) map[string]time.Time {
	m := map[string]time.Time{}
	for _, d := range ds {
		if t, ok := m[d.Room]; !ok || d.At.Before(t) {
			m[d.Room] = d.At
		}
	}
	return m
}

func onPartitions(cv *callView, partitions []int32) bool {
	for _, e := range cv.seqs {
		return slices.Contains(partitions, e.Partition)
	}
	return false
}

func writtenBefore(cv *callView, s schemas.Status, t time.Time) bool {
	e, ok := cv.first[string(s)]
	return ok && e.Written.Before(t)
}
