package ingest

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// exportFixture: ws_demo's calls 0..4 a second apart from t0 (completed,
// busy, queued, completed, busy), and calls of ws_other and ws_masked.
func exportFixture(t *testing.T, env *testEnv) []fixture {
	env.clock(t0.Add(time.Hour))
	var fs []fixture
	for i := range 5 {
		f := demoCall(i, t0.Add(time.Duration(i)*time.Second))
		env.feed(t, f.request(t, int32(i%3), int64(i)))
		switch i % 3 {
		case 0:
			env.feed(t, eventRecords(t, f.completed())...)
		case 1:
			env.feed(t, eventRecords(t, f.busy())...)
		}
		fs = append(fs, f)
	}
	o := demoCall(50, t0.Add(time.Second))
	o.ws, o.agent, o.room = "ws_other", otherAgent, otherAgent+"-zzzzzzzzzz"
	env.feed(t, o.request(t, 0, 50))
	m := fixture{id: "00000000000000000000beef", ws: "ws_masked", agent: "masked_agent", to: "+15550100486",
		room: "masked_agent-abcdefghij", at: t0}
	env.feed(t, m.request(t, 0, 51))
	env.feed(t, eventRecords(t, m.busy())...)
	return fs
}

// NDJSON: one line per call, oldest first, each line exactly the "call" of
// GET /v1/api/call/:callId; from/to bound requested_at like the list.
func TestExportNDJSON(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		fs := exportFixture(t, env)
		w := env.do(t, req{method: "GET", path: "/v1/api/calls/export?format=ndjson"})
		if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-ndjson" ||
			w.Header().Get("Content-Disposition") != `attachment; filename="calls-ws_demo.ndjson"` {
			t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
		}
		lines := strings.Split(strings.TrimSuffix(w.Body.String(), "\n"), "\n")
		if len(lines) != len(fs) {
			t.Fatalf("%d lines:\n%s", len(lines), w.Body)
		}
		for i, f := range fs {
			_, body := env.get(t, "/v1/api/call/"+f.id)
			var got CallEnvelope
			_ = json.Unmarshal([]byte(body), &got)
			if want := mustJSON(t, got.Call); lines[i] != want {
				t.Fatalf("line %d\n got %s\nwant %s", i, lines[i], want)
			}
		}
		w = env.do(t, req{method: "GET", path: "/v1/api/calls/export?format=ndjson&from=2026-03-01T10:00:01Z&to=2026-03-01T10:00:03Z"})
		var got []string
		for l := range strings.Lines(w.Body.String()) {
			var c Call
			if err := json.Unmarshal([]byte(l), &c); err != nil {
				t.Fatal(err)
			}
			got = append(got, c.CallID)
		}
		if want := []string{fs[1].id, fs[2].id}; !slices.Equal(got, want) {
			t.Fatalf("range: %v, want %v", got, want)
		}
		// A range with nothing in it: an empty body, still a 200.
		w = env.do(t, req{method: "GET", path: "/v1/api/calls/export?format=ndjson&from=2027-01-01T00:00:00Z"})
		if w.Code != 200 || w.Body.Len() != 0 {
			t.Fatalf("empty range: %d %q", w.Code, w.Body)
		}
	})
}

// CSV: a header, then the list's summary columns, oldest first; numbers
// masked for a masked workspace.
func TestExportCSV(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		fs := exportFixture(t, env)
		w := env.do(t, req{method: "GET", path: "/v1/api/calls/export?format=csv&to=2026-03-01T10:00:02Z"})
		if w.Code != 200 || w.Header().Get("Content-Type") != "text/csv; charset=utf-8" {
			t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
		}
		want := strings.Join(exportColumns, ",") + "\n" +
			fs[0].id + ",ended,completed,+15550100001," + demoAgent + "," + fs[0].room + ",0-0,https://example.com/hooks,5," +
			"2026-03-01T10:00:00Z,2026-03-01T10:00:00.01Z,2026-03-01T10:00:00.02Z,2026-03-01T10:00:01Z,2026-03-01T10:00:02Z,2026-03-01T10:00:05Z,," +
			"callee,the callee left the call,,,CLIENT_INITIATED,1,3\n" +
			fs[1].id + ",ended,busy,+15550100001," + demoAgent + "," + fs[1].room + ",1-1,https://example.com/hooks,4," +
			"2026-03-01T10:00:01Z,2026-03-01T10:00:01.01Z,2026-03-01T10:00:01.02Z,2026-03-01T10:00:01.5Z,,2026-03-01T10:00:03Z,," +
			"callee,sip status 486: Busy Here,486,Busy Here,,1.5,\n"
		if w.Body.String() != want {
			t.Fatalf("got\n%s\nwant\n%s", w.Body, want)
		}
		w = env.do(t, req{method: "GET", path: "/v1/api/calls/export?format=csv", key: maskedKey, workspace: "ws_masked"})
		rows, err := csv.NewReader(w.Body).ReadAll()
		if err != nil || len(rows) != 2 || rows[1][3] != "********0486" {
			t.Fatalf("masked: %v %v", rows, err)
		}
	})
}

func TestExportQueryErrors(t *testing.T) {
	env := newTestEnv(t)
	one := func(field, msg string) string {
		return errBody(t, "invalid query parameter "+field+": "+msg, fe(field, msg))
	}
	for _, tc := range []struct{ query, want string }{
		{"", one("format", "required: csv or ndjson")},
		{"format=xml", one("format", `must be csv or ndjson; got "xml"`)},
		{"format=csv&from=yesterday", one("from", `must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z; got "yesterday"`)},
		{"format=csv&from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", one("to", "must be later than from")},
		{"format=csv&limit=3", one("limit", "unknown query parameter; the parameters are format, from, to")},
		{"format=csv&format=ndjson", one("format", "appears more than once; send each parameter once")},
	} {
		code, body := env.get(t, "/v1/api/calls/export?"+tc.query)
		if code != 400 {
			t.Fatalf("%s: %d %s", tc.query, code, body)
		}
		assertJSON(t, []byte(body), tc.want)
	}
}

// Isolation of the list and the export: each workspace gets exactly its
// own calls, never another's, whatever the filter.
func TestListAndExportIsolation(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		fs := exportFixture(t, env)
		for _, q := range []string{"", "?status=ended", "?outcome=busy", "?call_agent_id=" + otherAgent, "?from=2026-03-01T00:00:00Z"} {
			w := env.do(t, req{method: "GET", path: "/v1/api/calls" + q, key: otherKey, workspace: "ws_other"})
			var l CallList
			_ = json.Unmarshal(w.Body.Bytes(), &l)
			for _, c := range l.Calls {
				if c.CallID != demoCall(50, t0).id {
					t.Fatalf("list%s as ws_other shows %s", q, c.CallID)
				}
			}
		}
		for _, format := range []string{"csv", "ndjson"} {
			w := env.do(t, req{method: "GET", path: "/v1/api/calls/export?format=" + format, key: otherKey, workspace: "ws_other"})
			body := w.Body.String()
			if w.Code != 200 || !strings.Contains(body, demoCall(50, t0).id) || strings.Contains(body, "00000000000000000000beef") {
				t.Fatalf("%s export as ws_other: %d %s", format, w.Code, body)
			}
			for _, f := range fs {
				if strings.Contains(body, f.id) {
					t.Fatalf("%s export as ws_other shows ws_demo's call %s", format, f.id)
				}
			}
		}
		// A workspace with no calls: a header alone, no rows.
		w := env.do(t, req{method: "GET", path: "/v1/api/calls/export?format=csv", key: slowKey, workspace: "ws_slow"})
		if w.Body.String() != strings.Join(exportColumns, ",")+"\n" {
			t.Fatalf("empty workspace: %q", w.Body)
		}
	})
}

// Retention: once the delete has run (the recorder's, on the same store),
// calls requested before the bound are gone from every route, and newer
// ones answer exactly as before.
func TestRetentionOnEveryRoute(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		fs := exportFixture(t, env)
		old, kept := fs[:2], fs[2:]
		var before []string
		for _, f := range kept {
			_, b := env.get(t, "/v1/api/call/"+f.id)
			_, d := env.get(t, "/v1/api/call/"+f.id+"/deliveries")
			before = append(before, b, d)
		}
		n, err := env.st.DeleteRequestedBefore(context.Background(), kept[0].at, 1)
		if err != nil || n != 2+1+1 { // ws_demo's two, ws_other's and ws_masked's
			t.Fatalf("deleted %d: %v", n, err)
		}
		for _, f := range old {
			for _, r := range []req{{method: "GET", path: "/v1/api/call/" + f.id}, {method: "GET", path: "/v1/api/call/" + f.id + "/deliveries"},
				{path: "/v1/api/call/" + f.id + "/cancel"}, {path: "/v1/api/call/" + f.id + "/redeliver"}} {
				if w := env.do(t, r); w.Code != http.StatusNotFound {
					t.Fatalf("%s %s after retention: %d %s", r.method, r.path, w.Code, w.Body)
				}
			}
		}
		var after []string
		for _, f := range kept {
			_, b := env.get(t, "/v1/api/call/"+f.id)
			_, d := env.get(t, "/v1/api/call/"+f.id+"/deliveries")
			after = append(after, b, d)
		}
		if !slices.Equal(before, after) {
			t.Fatalf("newer calls changed:\n%v\n%v", before, after)
		}
		l := env.list(t, "")
		if want := []string{kept[2].id, kept[1].id, kept[0].id}; !slices.Equal(ids(l.Calls), want) {
			t.Fatalf("list %v, want %v", ids(l.Calls), want)
		}
		_, exp := env.get(t, "/v1/api/calls/export?format=csv")
		for _, f := range old {
			if strings.Contains(exp, f.id) {
				t.Fatalf("export shows deleted call %s", f.id)
			}
		}
		// A request older than the retention is not brought back by a
		// replay of Kafka either.
		env.clock(t0.Add(500 * 24 * time.Hour))
		if env.write(t, old[0].request(t, 0, 0)) {
			t.Fatal("a replayed request past the retention was recorded again")
		}
		if code, _ := env.get(t, "/v1/api/call/"+old[0].id); code != 404 {
			t.Fatalf("replayed old call: %d", code)
		}
	})
}
