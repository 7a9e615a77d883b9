package schemas

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addSchemaSeeds adds every testdata file (valid and invalid) of schema.
func addSchemaSeeds(f *testing.F, schema string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*", schema+"--*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata for %s: %v", schema, err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzDecodeAgentReport feeds arbitrary bodies to the decoder of the
// reports agents POST (the route that will serve it calls exactly this).
// Whatever arrives: no panic; a refusal is a *ValidationError naming a
// field or a decode error; an accepted report encodes again (so it still
// satisfies agent.report.v1) and decodes back to the same report.
//
//	go test ./schemas -run='^$' -fuzz='^FuzzDecodeAgentReport$' -fuzztime=60s -parallel=1
func FuzzDecodeAgentReport(f *testing.F) {
	addSchemaSeeds(f, SchemaAgentReport)
	for _, s := range []string{`{}`, `null`, `[]`, `{"id":"r","type":"event","at":"2026-11-26T10:00:03+02:00","event":{"name":"x","data":{"n":1e308,"m":12345678901234567890}}}`,
		`{"id":"r","type":"result","at":"2026-11-26T10:00:03Z","result":null}`, `{"id":"r","type":"hangup","at":"2026-11-26T10:00:03.123456789Z","hangup":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeAgentReport(body)
		if err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) && len(ve.Fields) == 0 {
				t.Fatalf("validation error names no field: %v", err)
			}
			return
		}
		enc, err := r.Encode()
		if err != nil {
			t.Fatalf("accepted report %q does not encode again: %v", body, err)
		}
		back, err := DecodeAgentReport(enc)
		if err != nil {
			t.Fatalf("re-encoded report %s does not decode: %v", enc, err)
		}
		if enc2, err := back.Encode(); err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("report does not round-trip (%v):\n%s\n%s", err, enc, enc2)
		}
	})
}

// FuzzDecodeAgentDispatch does the same for the dispatch metadata an agent
// reads from its job (outside input to the agent: LiveKit hands it over).
//
//	go test ./schemas -run='^$' -fuzz='^FuzzDecodeAgentDispatch$' -fuzztime=60s -parallel=1
func FuzzDecodeAgentDispatch(f *testing.F) {
	addSchemaSeeds(f, SchemaAgentDispatch)
	f.Add([]byte(`{}`))
	f.Add([]byte(strings.Repeat(`{"a":`, 100)))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := DecodeAgentDispatch(string(body))
		if err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) && len(ve.Fields) == 0 {
				t.Fatalf("validation error names no field: %v", err)
			}
			return
		}
		_ = d.AgentSettings()
		enc, err := d.Encode()
		if err != nil {
			t.Fatalf("accepted dispatch %q does not encode again: %v", body, err)
		}
		back, err := DecodeAgentDispatch(enc)
		if err != nil {
			t.Fatalf("re-encoded dispatch %s does not decode: %v", enc, err)
		}
		if enc2, err := back.Encode(); err != nil || enc != enc2 {
			t.Fatalf("dispatch does not round-trip (%v):\n%s\n%s", err, enc, enc2)
		}
	})
}
