package schemas

import (
	"encoding/json"
	"testing"
	"time"
)

// Benchmarks of the contract checks every record goes through, so a
// regression shows in a diff: go test -run '^$' -bench . ./schemas

// BenchmarkNewRecordCallRequested encodes and validates a typical call
// request (what ingest does for every POST).
func BenchmarkNewRecordCallRequested(b *testing.B) {
	req := CallRequested{CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_demo", To: "+15550100001",
		CallAgentID: "a1b2c3d4e5f6a7b8c9d0e1f2", RoomName: "a1b2c3d4e5f6a7b8c9d0e1f2-x7k2m9p4q1",
		CallbackURL: "https://example.com/hooks", DynamicVariables: map[string]string{"firstName": "Ada", "lastName": "Lovelace"},
		Metadata: json.RawMessage(`{"crm_id":"42"}`), RequestedAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewRecord(TopicRequested, req.CallID, Meta{Type: TypeCallRequested, Source: "/bench"}, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateCallRequested is the same record's check alone: the
// precheck that NewRecord takes (precheck.go) and the one of its readers,
// beside the schema interpreter they stand in for.
func BenchmarkValidateCallRequested(b *testing.B) {
	req := CallRequested{CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_demo", To: "+15550100001",
		CallAgentID: "a1b2c3d4e5f6a7b8c9d0e1f2", RoomName: "a1b2c3d4e5f6a7b8c9d0e1f2-x7k2m9p4q1",
		CallbackURL: "https://example.com/hooks", DynamicVariables: map[string]string{"firstName": "Ada", "lastName": "Lovelace"},
		Metadata: json.RawMessage(`{"crm_id":"42"}`), RequestedAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	data, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("precheck", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !req.conforms() {
				b.Fatal("refused")
			}
		}
	})
	b.Run("schema", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := interpret(schemaCallRequested, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What a consumer (recorder, dialer) pays to check the record's bytes.
	b.Run("read-side", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !precheckRaw(schemaCallRequested, data) {
				b.Fatal("refused")
			}
		}
	})
}

// BenchmarkDecodeAgentReport validates and decodes a result report with a
// short transcript (what the report endpoint does for every report).
func BenchmarkDecodeAgentReport(b *testing.B) {
	body := []byte(`{"id":"r-2","type":"result","at":"2026-03-01T10:00:31Z","result":{"disposition":"conversation","summary":"Ada confirmed.",` +
		`"data":{"appointment":"2026-03-04T15:00:00Z"},"transcript":[{"role":"agent","text":"Hello Ada","at":"2026-03-01T10:00:05Z"},` +
		`{"role":"user","text":"Hi, yes.","at":"2026-03-01T10:00:08Z"}]}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeAgentReport(body); err != nil {
			b.Fatal(err)
		}
	}
}
