package dialer

import (
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// Benchmarks of the dialer's per-command work, so a regression shows in a
// diff: go test -run '^$' -bench . ./dialer

// BenchmarkApplyCompletedCall applies a whole answered call, request to
// ended, through the state machine (no I/O).
func BenchmarkApplyCompletedCall(b *testing.B) {
	id := calleeIdentity(testCallID)
	ins := []input{
		requestInput(10),
		admitInput(11, t0.Add(time.Second)),
		lkInput(12, lkParticipantJoined, id, "", t0.Add(2*time.Second)),
		dialInput(13, dialResult{Result: dialAnswered, StartedAt: t0.Add(time.Second), AnsweredAt: t0.Add(4 * time.Second), FinishedAt: t0.Add(4 * time.Second)}),
		lkInput(14, lkParticipantLeft, id, "CLIENT_INITIATED", t0.Add(10*time.Second)),
	}
	b.ReportAllocs()
	for b.Loop() {
		var st *callState
		for _, in := range ins {
			if tr := apply(st, in); tr.next != nil {
				st = tr.next
			}
		}
		if st.Phase != schemas.StatusEnded {
			b.Fatal(st.Phase)
		}
	}
}

// BenchmarkEventRecord encodes and validates one lifecycle event, as every
// transition's flush does.
func BenchmarkEventRecord(b *testing.B) {
	st := dialingState()
	ev := st.event(schemas.StatusDialing, t0.Add(time.Second))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := schemas.NewRecord(schemas.TopicEvents, ev.CallID, schemas.Meta{Type: ev.Status.Type(), Source: ceSource}, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStateRecord encodes and validates one call state for the
// compacted state topic.
func BenchmarkStateRecord(b *testing.B) {
	st := dialingState()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stateRecord(st, 0, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// dialingState is a call just claimed for its dial.
func dialingState() *callState {
	st := apply(nil, requestInput(10)).next
	return apply(st, admitInput(11, t0.Add(time.Second))).next
}
