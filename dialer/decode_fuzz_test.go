package dialer

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// fuzzRegistry has the workspace and agent of the schemas' testdata.
const fuzzRegistry = `
workspaces:
  - id: ws_demo
  - id: ws_other
agents:
  - {id: a1b2c3d4e5f6a7b8c9d0e1f2, workspace: ws_demo, livekit_agent_name: demo, sip_trunk_id: ST_x}
  - {id: b2c3d4e5f6a7b8c9d0e1f2a3, workspace: ws_other, livekit_agent_name: other, sip_trunk_id: ST_x}
`

// schemaSeeds returns the schemas' testdata (valid and invalid) whose name
// starts with one of prefixes: the fixtures every fuzz target of a decoder
// of that schema starts from.
func schemaSeeds(f *testing.F, dir string, prefixes ...string) [][]byte {
	f.Helper()
	var out [][]byte
	for _, sub := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join(dir, sub, "*.json"))
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range files {
			for _, pre := range prefixes {
				if strings.HasPrefix(filepath.Base(p), pre+"--") {
					b, err := os.ReadFile(p)
					if err != nil {
						f.Fatal(err)
					}
					out = append(out, b)
				}
			}
		}
	}
	if len(out) == 0 {
		f.Fatalf("no seeds for %v under %s", prefixes, dir)
	}
	return out
}

// FuzzDecodeCommand feeds arbitrary records of calls.requested (key, type,
// time, data) to the dialer's decoder, as a direct Kafka producer could
// write them. Whatever arrives: no panic; the record is either a command
// (and then its data is valid against its schema, round-trips through
// NewRecord/Decode unchanged, and names a known workspace and that
// workspace's agent), or a DLQ record carrying the original bytes (plus a
// rejection under a well-formed call id when it may have been a request).
//
//	go test ./dialer -run='^$' -fuzz='^FuzzDecodeCommand$' -fuzztime=60s -parallel=1
func FuzzDecodeCommand(f *testing.F) {
	for _, b := range schemaSeeds(f, "../schemas/testdata", schemas.SchemaCallRequested, schemas.SchemaCallCancel) {
		f.Add("f9e8d7c6b5a4f3e2d1c0b9a8", schemas.TypeCallRequested, "2026-11-26T10:00:00Z", b)
		f.Add("f9e8d7c6b5a4f3e2d1c0b9a8", schemas.TypeCallCancel, "", b)
	}
	f.Add("", schemas.TypeCallRequested, "yesterday", []byte(`{}`))
	f.Add("x", "dialstream.call.event.v1", "", []byte(`null`))
	f.Add("f9e8d7c6b5a4f3e2d1c0b9a8", TypeDialResult, "", []byte(`{"call_id":"f9e8d7c6b5a4f3e2d1c0b9a8"}`))
	f.Add("f9e8d7c6b5a4f3e2d1c0b9a8", TypeLiveKitEvent, "", []byte(`[`))

	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	d := &dialer{cfg: Config{EndedRetention: time.Hour}, m: m, reg: testRegistry(f, fuzzRegistry), log: testLogger()}
	o := newPartitionOwner(d, 0)
	f.Fuzz(func(t *testing.T, key, ceType, ceTime string, value []byte) {
		rec := &kgo.Record{Topic: schemas.TopicRequested, Key: []byte(key), Value: value, Offset: 7, Timestamp: time.Unix(1_800_000_000, 0),
			Headers: []kgo.RecordHeader{
				{Key: schemas.HeaderSpecVersion, Value: []byte(schemas.SpecVersion)},
				{Key: schemas.HeaderID, Value: []byte("ev-1")},
				{Key: schemas.HeaderSource, Value: []byte("/fuzz")},
				{Key: schemas.HeaderType, Value: []byte(ceType)},
				{Key: schemas.HeaderTime, Value: []byte(ceTime)},
				{Key: schemas.HeaderContentType, Value: []byte(schemas.ContentTypeJSON)},
			}}
		in, dlq := o.decode(rec)
		if in == nil && dlq == nil {
			t.Fatal("decode returned neither a command nor a DLQ record")
		}
		if dlq != nil {
			if !bytes.Equal(dlq.Value, value) || dlq.Topic != schemas.TopicRequestsDLQ || kafkax.Header(dlq, kafkax.HeaderDLQErrorClass) == "" {
				t.Fatalf("DLQ record lost the original or its reason: topic %s headers %v", dlq.Topic, dlq.Headers)
			}
			if in != nil && (in.kind != inRejected || !callIDRE.MatchString(in.callID) || in.rej == nil) {
				t.Fatalf("a dead-lettered record became command kind %v for call %q", in.kind, in.callID)
			}
			return
		}
		switch in.kind {
		case inRequested:
			if in.callID != key || in.req.CallID != key {
				t.Fatalf("request for call %q under key %q", in.req.CallID, key)
			}
			if a, ok := d.reg.Agent(in.req.WorkspaceID, in.req.CallAgentID); !ok || in.agent != a {
				t.Fatalf("request accepted for agent %q of workspace %q", in.req.CallAgentID, in.req.WorkspaceID)
			}
			roundTrip(t, schemas.TypeCallRequested, key, in.req, &schemas.CallRequested{})
		case inCancel:
			if in.callID != key || in.cancel.CallID != key {
				t.Fatalf("cancel for call %q under key %q", in.cancel.CallID, key)
			}
			roundTrip(t, schemas.TypeCallCancel, key, in.cancel, &schemas.CallCancel{})
		case inDialResult, inLiveKit, inDecision:
			// The dialer's own commands: valid against their schemas by Decode.
		default:
			t.Fatalf("decode returned command kind %v without a DLQ record", in.kind)
		}
	})
}

// roundTrip checks that an accepted command's data still satisfies its
// schema when written again and reads back unchanged.
func roundTrip[T any](t *testing.T, ceType, key string, v *T, out *T) {
	t.Helper()
	rec, err := schemas.NewRecord(schemas.TopicRequested, key, schemas.Meta{Type: ceType, Source: "/fuzz"}, v)
	if err != nil {
		t.Fatalf("accepted %s no longer satisfies its schema: %v", ceType, err)
	}
	ev, err := schemas.Decode(rec)
	if err != nil {
		t.Fatalf("re-encoded %s does not decode: %v", ceType, err)
	}
	if err := json.Unmarshal(ev.Data, out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, out) {
		t.Fatalf("%s does not round-trip:\n got %+v\nwant %+v", ceType, out, v)
	}
}
