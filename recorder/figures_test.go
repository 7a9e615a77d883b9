package recorder

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// TestFigures loads call records into each engine and measures them. It is
// slow and prints numbers rather than asserting them, so it runs only when
// asked:
//
//	RECORDER_FIGURES=1 go test ./recorder -run TestFigures -v -timeout 3h
//
//	RECORDER_FIGURES_CALLS    calls loaded in all (default 1000000), each a
//	                          request, 5 lifecycle events and 5 delivery attempts
//	RECORDER_FIGURES_E2E      of those, calls sent through Kafka and the
//	                          recorder itself (default 50000); the rest are
//	                          written by the recorder's own batch code
//	                          (apply + one transaction per 2000 records)
//	                          without the broker, which only saves time
//	RECORDER_FIGURES_ENGINES  sqlite,postgres (default both)
func TestFigures(t *testing.T) {
	if os.Getenv("RECORDER_FIGURES") == "" {
		t.Skip("set RECORDER_FIGURES=1 to measure")
	}
	total := envInt("RECORDER_FIGURES_CALLS", 1_000_000)
	e2e := min(total, envInt("RECORDER_FIGURES_E2E", 50_000))
	engines := dbtest.Engines
	if v := os.Getenv("RECORDER_FIGURES_ENGINES"); v != "" {
		engines = nil
		for e := range strings.SplitSeq(v, ",") {
			engines = append(engines, callrecords.Engine(e))
		}
	}
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) { figures(t, engine, total, e2e) })
	}
}

// figCall builds call i's 11 records as the pipeline writes them, without
// the schema check NewRecord makes (the recorder makes its own).
type figGen struct {
	base time.Time
	off  int64
}

var figAgents = []string{"agent_0", "agent_1", "agent_2", "agent_3", "agent_4", "agent_5", "agent_6", "agent_7"}
var figOutcomes = []schemas.Outcome{schemas.OutcomeCompleted, schemas.OutcomeCompleted, schemas.OutcomeCompleted, schemas.OutcomeBusy, schemas.OutcomeNoAnswer}

func (g *figGen) headers(id, ceID, typ string, at time.Time) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: schemas.HeaderSpecVersion, Value: []byte("1.0")}, {Key: schemas.HeaderID, Value: []byte(ceID)},
		{Key: schemas.HeaderType, Value: []byte(typ)}, {Key: schemas.HeaderSource, Value: []byte("/dialstream/dialer")},
		{Key: schemas.HeaderTime, Value: []byte(at.Format(time.RFC3339Nano))}, {Key: schemas.HeaderContentType, Value: []byte("application/json")},
		{Key: schemas.HeaderSubject, Value: []byte(id)},
		{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
	}
}

func (g *figGen) call(i int) []*kgo.Record {
	id := fmt.Sprintf("%024x", i)
	at := g.base.Add(time.Duration(i) * 100 * time.Millisecond)
	agent := figAgents[i%len(figAgents)]
	req := schemas.CallRequested{CallID: id, WorkspaceID: "ws_a", To: "+1555" + fmt.Sprintf("%07d", i%10_000_000), CallAgentID: agent,
		RoomName: agent + "-abcdefghij", CallbackURL: "https://crm.example.com/hooks/dialstream",
		DynamicVariables: map[string]string{"firstName": "Ada", "lastName": "Lovelace", "Zipcode": "94107"},
		Metadata:         json.RawMessage(`{"crm_id":"lead-` + strconv.Itoa(i) + `","campaign":"spring"}`), RequestedAt: at}
	rv, _ := json.Marshal(req)
	g.off++
	out := []*kgo.Record{{Topic: schemas.TopicRequested, Key: []byte(id), Value: rv, Offset: g.off,
		Headers: g.headers(id, schemas.NewID(), schemas.TypeCallRequested, at)}}
	out[0].Headers = append(out[0].Headers, kgo.RecordHeader{Key: schemas.HeaderDataSchema, Value: []byte(schemas.SchemaCallRequested)})
	for seq, st := range schemas.Statuses {
		seq++
		occ := at.Add(time.Duration(seq) * 3 * time.Second)
		ev := schemas.CallEvent{CallID: id, WorkspaceID: "ws_a", Sequence: seq, Status: st, OccurredAt: occ, RequestedAt: &at,
			To: req.To, CallAgentID: agent, RoomName: req.RoomName, CallbackURL: req.CallbackURL, Metadata: req.Metadata}
		if st == schemas.StatusEnded {
			ring, talk := 6.0, 42.5
			ev.Outcome, ev.EndedBy, ev.SIPStatusCode, ev.RingDurationSeconds, ev.TalkDurationSeconds =
				figOutcomes[i%len(figOutcomes)], schemas.EndedByCallee, 200, &ring, &talk
		}
		ev.Sequence = seq
		v, _ := json.Marshal(ev)
		g.off++
		out = append(out, &kgo.Record{Topic: schemas.TopicEvents, Key: []byte(id), Value: v, Offset: g.off,
			Headers: g.headers(id, schemas.EventID(id, seq), st.Type(), occ)})
		a := schemas.WebhookAttempt{EventID: schemas.EventID(id, seq), EventType: st.Type(), CallID: id, WorkspaceID: "ws_a",
			Sequence: seq, Attempt: 1, MaxAttempts: 8, URL: req.CallbackURL, AttemptedAt: occ.Add(50 * time.Millisecond),
			DurationSeconds: 0.08, StatusCode: 200, Result: schemas.WebhookSuccess}
		av, _ := json.Marshal(a)
		g.off++
		out = append(out, &kgo.Record{Topic: schemas.TopicWebhookDeliveries, Key: []byte(id), Value: av, Offset: g.off,
			Headers: g.headers(id, schemas.NewID(), schemas.TypeWebhookAttempt, occ)})
	}
	return out
}

func figures(t *testing.T, engine callrecords.Engine, total, e2e int) {
	ctx := context.Background()
	st := dbtest.Open(t, engine, callrecords.Options{})
	g := &figGen{base: time.Now().UTC().Add(-time.Duration(total) * 100 * time.Millisecond)}
	reg := testRegistry(t)

	// 1. End to end: e2e calls through Kafka and the recorder.
	b := startBroker(t)
	cl := producer(t, b)
	for lo := 0; lo < e2e; lo += 1000 {
		var recs []*kgo.Record
		for i := lo; i < min(e2e, lo+1000); i++ {
			for _, r := range g.call(i) {
				r.Offset = 0
				recs = append(recs, r)
			}
		}
		produce(t, cl, recs...)
	}
	start := time.Now()
	run := startFig(t, Config{Store: st, Registry: reg, Kafka: kafkaConfig(b), RetentionInterval: time.Hour})
	testutil.Eventually(t, time.Hour, "the recorder to write the Kafka calls", func() bool {
		return count(t, st, `SELECT COUNT(*) FROM call_events`) == e2e*5 && count(t, st, `SELECT COUNT(*) FROM webhook_deliveries`) == e2e*5 &&
			count(t, st, `SELECT COUNT(*) FROM calls WHERE request IS NOT NULL`) == e2e
	})
	el := time.Since(start).Seconds()
	run()
	t.Logf("%s recorder end to end: %d calls (%d records) in %.1fs: %.0f events/s, %.0f records/s",
		engine, e2e, e2e*11, el, float64(e2e*5)/el, float64(e2e*11)/el)

	// 2. The rest, by the recorder's batch code without the broker.
	start = time.Now()
	g.off = 1 << 40 // attempt identities apart from the broker's offsets
	batch := make([]*kgo.Record, 0, 2200)
	flush := func() {
		err := st.Write(ctx, func(w *callrecords.Writer) error {
			for _, r := range batch {
				if _, err := apply(ctx, w, reg, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := e2e; i < total; i++ {
		batch = append(batch, g.call(i)...)
		if len(batch) >= 2000 {
			flush()
		}
		if i%100_000 == 0 && i > e2e {
			t.Logf("%s: %d calls loaded, %.0f events/s", engine, i, float64((i-e2e)*5)/time.Since(start).Seconds())
		}
	}
	flush()
	if rest := total - e2e; rest > 0 {
		el := time.Since(start).Seconds()
		t.Logf("%s batch writes without Kafka: %d calls in %.1fs: %.0f events/s, %.0f records/s",
			engine, rest, el, float64(rest*5)/el, float64(rest*11)/el)
	}
	if engine == callrecords.Postgres {
		if _, err := st.DB().ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
			t.Fatal(err)
		}
	} else if _, err := st.DB().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}

	// 3. Reads.
	rng := rand.New(rand.NewPCG(1, 2))
	lat := func(n int, fn func()) (p50, p99 time.Duration) {
		ds := make([]time.Duration, n)
		for i := range ds {
			s := time.Now()
			fn()
			ds[i] = time.Since(s)
		}
		slices.Sort(ds)
		return ds[n/2], ds[n*99/100]
	}
	p50, p99 := lat(2000, func() {
		if _, ok, err := st.Get(ctx, "ws_a", fmt.Sprintf("%024x", rng.IntN(total))); err != nil || !ok {
			t.Fatal("get", ok, err)
		}
	})
	t.Logf("%s GET by id (with 5 events): p50 %s, p99 %s", engine, p50, p99)
	for _, f := range []struct {
		name string
		f    callrecords.Filter
	}{{"list page of 50", callrecords.Filter{}}, {"list page of 50, call_agent_id", callrecords.Filter{Agent: "agent_3"}},
		{"list page of 50, outcome=busy", callrecords.Filter{Outcome: schemas.OutcomeBusy}}} {
		p50, p99 = lat(500, func() {
			i := rng.IntN(total)
			k := callrecords.Key{At: g.base.Add(time.Duration(i) * 100 * time.Millisecond).UnixNano(), ID: fmt.Sprintf("%024x", i)}
			f := f.f
			f.After = &k
			if _, _, err := st.List(ctx, "ws_a", f, 50); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s %s at a random cursor: p50 %s, p99 %s", engine, f.name, p50, p99)
	}
	n := min(total, 200_000)
	from := g.base.Add(time.Duration(total-n) * 100 * time.Millisecond)
	start = time.Now()
	exported := 0
	if err := st.Export(ctx, "ws_a", from, time.Time{}, func(c *callrecords.Call) error { exported++; return nil }); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s export: %d calls (with events) in %.1fs: %.0f calls/s", engine, exported, time.Since(start).Seconds(), float64(exported)/time.Since(start).Seconds())

	// 4. Size.
	var size int64
	if engine == callrecords.Postgres {
		if err := st.DB().QueryRowContext(ctx, `SELECT pg_database_size(current_database())`).Scan(&size); err != nil {
			t.Fatal(err)
		}
	} else {
		var pages, pageSize int64
		_ = st.DB().QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages)
		_ = st.DB().QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize)
		size = pages * pageSize
	}
	t.Logf("%s size: %.0f MiB for %d calls: %.0f MiB per million calls", engine, float64(size)/(1<<20), total,
		float64(size)/(1<<20)*1e6/float64(total))
}

// startFig runs a recorder in this process; the returned func stops it.
func startFig(t *testing.T, cfg Config) func() {
	cfg.Metrics = prometheus.NewRegistry()
	cfg.HTTPAddr = "127.0.0.1:0"
	r := start(t, cfg)
	return r.stop
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}
