package notifier

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// Benchmarks of the notifier's per-delivery work besides the HTTP round
// trip, so a regression shows in a diff: go test -run '^$' -bench 'Body|Sign' ./notifier

func benchEvent() *schemas.CallEvent {
	ring, talk := 3.5, 42.25
	return &schemas.CallEvent{
		CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_b", Sequence: 5, Status: schemas.StatusEnded,
		OccurredAt: time.Date(2026, 11, 26, 10, 4, 31, 500e6, time.UTC), To: "+15550100001",
		CallbackURL: "https://example.com/hook", Metadata: json.RawMessage(`{"crm_id":"42","tags":["<vip>"]}`),
		Outcome: schemas.OutcomeCompleted, EndedBy: schemas.EndedByCallee, RingDurationSeconds: &ring, TalkDurationSeconds: &talk,
	}
}

// BenchmarkBuildBody renders one webhook body.
func BenchmarkBuildBody(b *testing.B) {
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buildBody("f9e8d7c6b5a4f3e2d1c0b9a8-5", schemas.TypeCallEnded, ev, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign signs one body with two secrets (a rotation in progress).
func BenchmarkSign(b *testing.B) {
	body, err := buildBody("f9e8d7c6b5a4f3e2d1c0b9a8-5", schemas.TypeCallEnded, benchEvent(), false)
	if err != nil {
		b.Fatal(err)
	}
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")}
	at := time.Unix(1_764_000_000, 0)
	b.ReportAllocs()
	for b.Loop() {
		h := http.Header{}
		Sign(h, keys, "f9e8d7c6b5a4f3e2d1c0b9a8-5", at, body)
	}
}
