package schemas

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The read-side precheck (precheckRaw) must never accept bytes the schema
// refuses, and must be taken for the records the producers write, or the
// consumers silently go back to the interpreter.

// agreeRaw checks one record's bytes: the precheck accepts only what the
// schema accepts, and Validate answers as the schema does either way.
func agreeRaw(t testing.TB, data []byte) (taken bool) {
	t.Helper()
	schemaErr := interpret(schemaCallRequested, data)
	taken = precheckRaw(schemaCallRequested, data)
	if taken && schemaErr != nil {
		t.Fatalf("read-side precheck accepted what the schema refuses (%v): %s", schemaErr, Clip(string(data), 600))
	}
	// Either way Validate's answer is the schema's: the same fields. Not
	// the same words: the schema names a field's extra properties in no
	// fixed order ("additional properties '', '0'", found by the fuzzer).
	if got, want := fieldsOf(Validate(schemaCallRequested, data)), fieldsOf(schemaErr); got != want {
		t.Fatalf("Validate: %s\nschema: %s\nfor %s", got, want, Clip(string(data), 600))
	}
	return taken
}

// fieldsOf is a validation error's fields, sorted, or "none".
func fieldsOf(err error) string {
	return listFields(err, " ", func(f FieldError) string { return f.Field })
}

// mutations are the ways another producer may spell a record the struct
// decodes the same: each must leave the fast path (or be judged right).
var mutations = []func(rng *rand.Rand, b []byte) []byte{
	func(_ *rand.Rand, b []byte) []byte { return append([]byte(" "), b...) },                           // leading space
	func(_ *rand.Rand, b []byte) []byte { return bytes.Replace(b, []byte(`,"`), []byte(`, "`), 1) },    // inner space
	func(_ *rand.Rand, b []byte) []byte { return bytes.Replace(b, []byte(`"to"`), []byte(`"TO"`), 1) }, // key case
	func(_ *rand.Rand, b []byte) []byte {
		return bytes.Replace(b, []byte(`"call_id"`), []byte(`"Call_Id"`), 1)
	},
	func(_ *rand.Rand, b []byte) []byte { // a duplicate key, second value wins in encoding/json
		return bytes.Replace(b, []byte(`{"call_id":`), []byte(`{"to":"not a number","call_id":`), 1)
	},
	func(_ *rand.Rand, b []byte) []byte { // an unknown field
		return bytes.Replace(b, []byte(`{"call_id":`), []byte(`{"extra":1,"call_id":`), 1)
	},
	func(_ *rand.Rand, b []byte) []byte { return bytes.Replace(b, []byte(`"+`), []byte(`"\u002b`), 1) }, // an escape
	func(_ *rand.Rand, b []byte) []byte { return bytes.Replace(b, []byte(`Z"`), []byte(`+00:00"`), 1) }, // another offset
	func(_ *rand.Rand, b []byte) []byte { // a wrong type the struct cannot hold
		return bytes.Replace(b, []byte(`"requested_at":"`), []byte(`"requested_at":1,"x":"`), 1)
	},
	func(_ *rand.Rand, b []byte) []byte { // fields reordered: the struct's order is the encoder's
		return bytes.Replace(b, []byte(`{"call_id":`), []byte(`{"workspace_id":"ws_demo","call_id":`), 1)
	},
	func(rng *rand.Rand, b []byte) []byte { // one byte flipped
		if len(b) == 0 {
			return b
		}
		c := bytes.Clone(b)
		c[rng.IntN(len(c))] ^= byte(1 << rng.IntN(8))
		return c
	},
	func(rng *rand.Rand, b []byte) []byte { // truncated
		return b[:rng.IntN(len(b)+1)]
	},
	func(_ *rand.Rand, b []byte) []byte { return append(bytes.Clone(b), ' ') },     // trailing space
	func(_ *rand.Rand, b []byte) []byte { return append(bytes.Clone(b), "{}"...) }, // trailing value
}

func TestPrecheckRawMatchesSchema(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 29))
	conforming, taken, mutatedTaken := 0, 0, 0
	for range 10000 {
		r := randomRequest(rng)
		data, err := encode(r)
		if err != nil {
			continue
		}
		if agreeRaw(t, data) {
			taken++
		}
		if r.conforms() {
			conforming++
		}
		if agreeRaw(t, mutations[rng.IntN(len(mutations))](rng, data)) {
			mutatedTaken++
		}
	}
	// The fast path must be taken for most of what the producers write
	// (it is not for strings the encoder escapes, such as invalid UTF-8),
	// and the mutations must have reached both answers.
	if taken < conforming*3/4 || conforming < 300 {
		t.Fatalf("read-side precheck taken for %d of %d conforming records", taken, conforming)
	}
	t.Logf("%d of %d conforming records took the fast path; %d mutated ones did", taken, conforming, mutatedTaken)
}

// The record ingest writes for a typical request takes the fast path.
func TestPrecheckRawTakesIngestsRecord(t *testing.T) {
	r := CallRequested{CallID: pickIDs[0], WorkspaceID: "ws_demo", To: "+12025550123", CallAgentID: "agent_1",
		RoomName: "agent_1-x7k2m9p4q1", CallbackURL: "https://example.com/webhooks/dialstream?a=1&b=<2>",
		DynamicVariables: map[string]string{"firstName": "Ada", "lastName": "Lovelace", "note": "“quoted” ü\n"},
		Metadata:         []byte(`{"crm_id":"abc-123","tags":["a","<b>"],"n":1.5e3}`), IdempotencyKey: "k-1",
		RequestedAt: time.Date(2026, 12, 7, 22, 1, 2, 345678901, time.UTC)}
	rec, err := NewRecord(TopicRequested, r.CallID, Meta{Type: TypeCallRequested, Source: "/test"}, r)
	if err != nil {
		t.Fatal(err)
	}
	if !agreeRaw(t, rec.Value) {
		t.Fatalf("the fast path was not taken for %s", rec.Value)
	}
	if _, err := Decode(rec); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	// A refusal is the schema's, word for word.
	bad := bytes.Replace(rec.Value, []byte(`"+12025550123"`), []byte(`"12025550123"`), 1)
	if agreeRaw(t, bad) {
		t.Fatal("a number without + took the fast path")
	}
	if err := Validate(schemaCallRequested, bad); err == nil || !strings.Contains(err.Error(), "/to") {
		t.Fatalf("want the schema's refusal naming /to, got %v", err)
	}
}

// FuzzPrecheckRaw lets the fuzzer write the bytes:
// go test -fuzz FuzzPrecheckRaw ./schemas
func FuzzPrecheckRaw(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 16 {
		if data, err := encode(randomRequest(rng)); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"call_id":"f9e8d7c6b5a4f3e2d1c0b9a8","workspace_id":"ws_demo","to":"+12025550123","call_agent_id":"agent_1","requested_at":"2026-03-01T10:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		agreeRaw(t, data)
	})
}

// DecodeInto fills the value on both paths: the precheck's, and the
// schema's for a record another producer spelled its own way.
func TestDecodeIntoBothPaths(t *testing.T) {
	r := CallRequested{CallID: pickIDs[0], WorkspaceID: "ws_demo", To: "+12025550123", CallAgentID: "agent_1",
		DynamicVariables: map[string]string{"firstName": "Ada"}, RequestedAt: time.Date(2026, 12, 7, 22, 1, 2, 0, time.UTC)}
	rec, err := NewRecord(TopicRequested, r.CallID, Meta{Type: TypeCallRequested, Source: "/test"}, r)
	if err != nil {
		t.Fatal(err)
	}
	spaced := *rec
	spaced.Value = append([]byte(" "), rec.Value...) // valid, not ingest's bytes
	if precheckRaw(schemaCallRequested, spaced.Value) {
		t.Fatal("a leading space took the fast path")
	}
	for _, in := range []*kgo.Record{rec, &spaced} {
		var got CallRequested
		ev, err := DecodeInto(in, &got)
		if err != nil || got.CallID != r.CallID || got.DynamicVariables["firstName"] != "Ada" || !got.RequestedAt.Equal(r.RequestedAt) {
			t.Fatalf("DecodeInto(%q) = %+v, %v", in.Value, got, err)
		}
		if !bytes.Equal(ev.Data, in.Value) {
			t.Fatalf("event data %q, want the record's %q", ev.Data, in.Value)
		}
	}
	bad := *rec
	bad.Value = bytes.Replace(rec.Value, []byte(`"+12025550123"`), []byte(`"12025550123"`), 1)
	var got CallRequested
	var de *DecodeError
	if _, err := DecodeInto(&bad, &got); !errors.As(err, &de) || de.Class != "schema" || !strings.Contains(err.Error(), "/to") {
		t.Fatalf("want the schema's refusal naming /to, got %v", err)
	}
}
