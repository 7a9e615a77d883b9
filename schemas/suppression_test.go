package schemas

import (
	"encoding/json"
	"testing"
	"time"
)

// Every reason and source of the Go vocabulary is accepted by the schema, and
// a record round-trips through NewRecord and Decode: the Go type and the file
// cannot drift apart.
func TestSuppressionVocabularyMatchesSchema(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, reason := range SuppressionReasons {
		for _, src := range []SuppressionSource{SourceAPI, SourceImport, SourceAgent} {
			s := Suppression{WorkspaceID: "ws_demo", Number: "+12125550123", Reason: reason, Source: src, AddedAt: at}
			r, err := NewRecord(TopicSuppressions, SuppressionKey(s.WorkspaceID, s.Number), Meta{Type: TypeSuppression, Source: "/test"}, s)
			if err != nil {
				t.Fatalf("%s/%s: %v", reason, src, err)
			}
			ev, err := Decode(r)
			if err != nil {
				t.Fatalf("%s/%s: %v", reason, src, err)
			}
			var got Suppression
			if err := json.Unmarshal(ev.Data, &got); err != nil || got != s {
				t.Fatalf("%s/%s: round trip gave %+v (%v)", reason, src, got, err)
			}
			if string(r.Key) != "ws_demo +12125550123" {
				t.Fatalf("key %q", r.Key)
			}
		}
	}
}
