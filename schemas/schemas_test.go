package schemas

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Each file under testdata/valid must pass and each under testdata/invalid must
// fail the schema its name starts with ("<schema>--<case>.json").
func TestTestdata(t *testing.T) {
	for _, dir := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no testdata in %s: %v", dir, err)
		}
		for _, f := range files {
			name := filepath.Base(f)
			schema, _, ok := strings.Cut(name, "--")
			if !ok {
				t.Fatalf("%s: name must be <schema>--<case>.json", f)
			}
			t.Run(dir+"/"+name, func(t *testing.T) {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				err = Validate(schema, b)
				if dir == "valid" && err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if dir == "invalid" {
					var ve *ValidationError
					if !errors.As(err, &ve) || len(ve.Fields) == 0 {
						t.Fatalf("want *ValidationError with fields, got %v", err)
					}
				}
			})
		}
	}
}

func TestValidationErrorNamesField(t *testing.T) {
	b, _ := os.ReadFile("testdata/invalid/call.requested.v1--not-e164.json")
	var ve *ValidationError
	if err := Validate(SchemaCallRequested, b); !errors.As(err, &ve) {
		t.Fatalf("got %v", err)
	}
	if len(ve.Fields) != 1 || ve.Fields[0].Field != "/to" {
		t.Fatalf("fields = %+v, want one error on /to", ve.Fields)
	}
}

func TestUnknownSchema(t *testing.T) {
	if err := Validate("nope.v1", []byte(`{}`)); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("got %v", err)
	}
}

// Every status's event type maps to the event schema, and the Go type's JSON
// round-trips through it.
func TestCallEventTypes(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, s := range Statuses {
		ev := CallEvent{CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_demo", Sequence: 1, Status: s, OccurredAt: now}
		if s == StatusEnded {
			ev.Outcome, ev.EndedBy = OutcomeCompleted, EndedByCallee
		}
		r, err := NewRecord(TopicEvents, ev.CallID, Meta{Type: s.Type(), Source: "/test", Subject: ev.CallID, ID: EventID(ev.CallID, 1)}, ev)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		got, err := Decode(r)
		if err != nil {
			t.Fatalf("%s: decode: %v", s, err)
		}
		if got.ID != "f9e8d7c6b5a4f3e2d1c0b9a8-1" || got.Type != s.Type() || got.Subject != ev.CallID {
			t.Fatalf("%s: decoded %+v", s, got)
		}
		var back CallEvent
		if err := json.Unmarshal(got.Data, &back); err != nil || back.Status != s {
			t.Fatalf("%s: round trip %+v %v", s, back, err)
		}
	}
}

func TestNewRecordRefusesInvalidData(t *testing.T) {
	_, err := NewRecord(TopicRequested, "k", Meta{Type: TypeCallRequested, Source: "/test"}, CallRequested{CallID: "x"})
	if err == nil {
		t.Fatal("invalid data was encoded")
	}
}

func TestRecordHeaders(t *testing.T) {
	req := CallRequested{CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_demo", To: "+15550100001",
		CallAgentID: "a1b2c3d4e5f6a7b8c9d0e1f2", RequestedAt: time.Now()}
	r, err := NewRecord(TopicRequested, req.CallID, Meta{Type: TypeCallRequested, Source: "/dialstream/ingest"}, req)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	for _, k := range []string{HeaderSpecVersion, HeaderID, HeaderType, HeaderSource, HeaderTime, HeaderContentType} {
		if h[k] == "" {
			t.Errorf("header %s missing", k)
		}
	}
	if h[HeaderContentType] != "application/json" || h[HeaderSpecVersion] != "1.0" || string(r.Key) != req.CallID {
		t.Fatalf("headers %v key %s", h, r.Key)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := os.ReadFile("testdata/valid/call.requested.v1--minimal.json")
	hdr := func(kv ...string) []kgo.RecordHeader {
		var out []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			out = append(out, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	full := hdr(HeaderSpecVersion, "1.0", HeaderID, "1", HeaderType, TypeCallRequested, HeaderSource, "/x", HeaderContentType, "application/json")
	cases := []struct {
		name  string
		rec   *kgo.Record
		class string
	}{
		{"no headers", &kgo.Record{Value: good}, "headers"},
		{"wrong specversion", &kgo.Record{Value: good, Headers: hdr(HeaderSpecVersion, "0.3", HeaderID, "1", HeaderType, TypeCallRequested, HeaderSource, "/x")}, "headers"},
		{"xml", &kgo.Record{Value: good, Headers: append(hdr(HeaderContentType, "text/xml"), full[:4]...)}, "headers"},
		{"bad time", &kgo.Record{Value: good, Headers: append(hdr(HeaderTime, "noon"), full...)}, "headers"},
		{"unknown type", &kgo.Record{Value: good, Headers: hdr(HeaderSpecVersion, "1.0", HeaderID, "1", HeaderType, "com.example.x", HeaderSource, "/x")}, "unknown_type"},
		{"bad json", &kgo.Record{Value: []byte("{"), Headers: full}, "schema"},
		{"empty", &kgo.Record{Headers: full}, "schema"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.rec)
			var de *DecodeError
			if !errors.As(err, &de) || de.Class != c.class || len(de.Fields) == 0 {
				t.Fatalf("got %v, want class %s with fields", err, c.class)
			}
		})
	}
}

// Metadata travels byte for byte: no HTML escaping on the way into Kafka.
func TestValidateValueKeepsMetadataBytes(t *testing.T) {
	req := CallRequested{CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_demo", To: "+15550100001",
		CallAgentID: "a1b2c3d4e5f6a7b8c9d0e1f2", Metadata: json.RawMessage(`{"note":"<b>&amp;</b>"}`), RequestedAt: time.Now()}
	b, err := ValidateValue(SchemaCallRequested, req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"metadata":{"note":"<b>&amp;</b>"}`) || strings.HasSuffix(string(b), "\n") {
		t.Fatalf("encoded %s", b)
	}
}
