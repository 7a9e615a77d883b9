package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// Component tests of the call state: ingest's Run (the follower included)
// against the embedded broker in process, with lifecycle events and
// delivery attempts produced as the dialer and the notifier write them.

type runningIngest struct {
	url    string
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
	once   sync.Once
}

func stateBroker(t *testing.T) *kafkax.Broker {
	t.Helper()
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// startIngest runs ingest.Run on addr's broker; it returns once the process
// serves (not necessarily ready).
func startIngest(t *testing.T, addr string, mod ...func(*Config)) *runningIngest {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{Listener: ln, Registry: testRegistry(t, true), Metrics: reg, Logger: discardLogger(),
		Kafka: kafkax.Config{Brokers: []string{addr}, ClientID: "ingest-state-test", Partitions: 3, ReplicationFactor: -1,
			CreateTopics: true, ProduceTimeout: 5 * time.Second}}
	for _, m := range mod {
		m(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningIngest{url: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1), reg: reg}
	go func() { r.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { r.stop(t) })
	testutil.Eventually(t, 20*time.Second, "ingest serving", func() bool {
		resp, err := http.Get(r.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return r
}

func (r *runningIngest) ready() bool {
	resp, err := http.Get(r.url + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (r *runningIngest) waitReady(t *testing.T) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "ingest ready", r.ready)
}

func (r *runningIngest) stop(t *testing.T) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("ingest.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("ingest did not stop")
		}
	})
}

// call sends one API request as ws_demo (or as the given key/workspace).
func (r *runningIngest) call(t testing.TB, method, path, body string, auth ...string) (int, string) {
	t.Helper()
	key, ws := demoKey, "ws_demo"
	if len(auth) == 2 {
		key, ws = auth[0], auth[1]
	}
	hr, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
	hr.Header.Set("Authorization", "Bearer "+key)
	hr.Header.Set("x-workspace-id", ws)
	if body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// place POSTs a call and returns the answer and the fixture that describes
// it (requested_at read back from the call state).
func (r *runningIngest) place(t testing.TB, to string) (CallResponse, fixture) {
	t.Helper()
	code, body := r.call(t, "POST", "/v1/api/call", `{"to":"`+to+`","call_agent_id":"`+demoAgent+`",`+
		`"callback_url":"https://example.com/hooks","dynamic_variables":{"firstName":"Ada"},"metadata":{"crm_id":"42"}}`)
	if code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	var acc CallResponse
	_ = json.Unmarshal([]byte(body), &acc)
	code, body = r.call(t, "GET", "/v1/api/call/"+acc.CallID, "")
	if code != 200 {
		t.Fatalf("read-your-writes: %d %s", code, body)
	}
	var got CallEnvelope
	_ = json.Unmarshal([]byte(body), &got)
	f := fixture{id: acc.CallID, ws: "ws_demo", agent: demoAgent, to: to, room: acc.RoomName,
		callback: "https://example.com/hooks", at: got.Call.RequestedAt, vars: map[string]string{"firstName": "Ada"}, meta: `{"crm_id":"42"}`}
	return acc, f
}

func (r *runningIngest) state(t testing.TB, id string) (Call, string) {
	t.Helper()
	code, body := r.call(t, "GET", "/v1/api/call/"+id, "")
	var got CallEnvelope
	if code == 200 {
		_ = json.Unmarshal([]byte(body), &got)
	}
	return got.Call, body
}

func producer(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	opts, err := kafkax.Config{Brokers: []string{addr}, ClientID: "fixture-producer"}.ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produceAll(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range recs {
		r.Partition, r.Offset = 0, 0
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// The call state follows Kafka on every replica: a call accepted by one is
// queued there at once, appears on the other from the requested topic
// (with its jobId and dynamic_variables), and both follow its events and
// delivery attempts to the same end.
func TestComponentCallStateFollowsKafka(t *testing.T) {
	b := stateBroker(t)
	a := startIngest(t, b.Addr())
	other := startIngest(t, b.Addr())
	a.waitReady(t)
	other.waitReady(t)
	acc, f := a.place(t, "+15550100001")

	var seen Call
	testutil.Eventually(t, 10*time.Second, "the other replica to read the request", func() bool {
		seen, _ = other.state(t, acc.CallID)
		return seen.CallID == acc.CallID
	})
	if seen.Status != schemas.StatusQueued || seen.JobID != acc.JobID || seen.DynamicVariables["firstName"] != "Ada" ||
		string(seen.Metadata) != `{"crm_id":"42"}` || !seen.RequestedAt.Equal(f.at) || len(seen.Events) != 0 {
		t.Fatalf("other replica: %+v", seen)
	}

	p := producer(t, b.Addr())
	produceAll(t, p, eventRecords(t, f.completed())...)
	produceAll(t, p, attemptRecord(t, f.attempt(5, schemas.StatusEnded, 1, f.at.Add(6*time.Second), 204, "", schemas.WebhookSuccess)))
	var bodies [2]string
	for i, r := range []*runningIngest{a, other} {
		testutil.Eventually(t, 10*time.Second, "the call ended", func() bool {
			c, body := r.state(t, acc.CallID)
			bodies[i] = body
			return c.Status == schemas.StatusEnded
		})
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("replicas disagree:\n%s\n%s", bodies[0], bodies[1])
	}
	want := f.wantCall(t, acc.JobID, f.completed())
	assertJSON(t, []byte(bodies[0]), mustJSON(t, CallEnvelope{Status: "success", Call: want}))
	testutil.Eventually(t, 10*time.Second, "the delivery attempt", func() bool {
		_, body := other.call(t, "GET", "/v1/api/call/"+acc.CallID+"/deliveries", "")
		return strings.Contains(body, `"result":"success"`)
	})
	code, body := other.call(t, "POST", "/v1/api/call/"+acc.CallID+"/cancel", "")
	if code != 409 || !strings.Contains(body, "already ended with outcome completed") {
		t.Fatalf("cancel after end: %d %s", code, body)
	}
}

// wantCall is what GET shows for the fixture's call after evs.
func (f fixture) wantCall(t testing.TB, jobID string, evs []schemas.CallEvent) Call {
	c := Call{CallSummary: CallSummary{CallID: f.id, Status: schemas.StatusQueued, To: f.to, CallAgentID: f.agent, RoomName: f.room,
		JobID: jobID, CallbackURL: f.callback, RequestedAt: f.at}, DynamicVariables: f.vars, Events: []CallEventView{}}
	if f.meta != "" {
		c.Metadata = json.RawMessage(f.meta)
	}
	for _, ev := range evs {
		c.Sequence, c.Status = ev.Sequence, ev.Status
		v := CallEventView{ID: schemas.EventID(f.id, ev.Sequence), Type: ev.Status.Type(), Sequence: ev.Sequence, Status: ev.Status,
			OccurredAt: ev.OccurredAt, Outcome: ev.Outcome, EndedBy: ev.EndedBy, Reason: ev.Reason, SIPStatusCode: ev.SIPStatusCode,
			SIPStatus: ev.SIPStatus, DisconnectReason: ev.DisconnectReason, RingDurationSeconds: ev.RingDurationSeconds,
			TalkDurationSeconds: ev.TalkDurationSeconds}
		c.Events = append(c.Events, v)
		switch ev.Status {
		case schemas.StatusQueued:
			c.QueuedAt = ev.OccurredAt
		case schemas.StatusDialing:
			c.DialingAt = ev.OccurredAt
		case schemas.StatusRinging:
			c.RingingAt = ev.OccurredAt
		case schemas.StatusAnswered:
			c.AnsweredAt = ev.OccurredAt
		case schemas.StatusEnded:
			c.EndedAt, c.Outcome, c.EndedBy, c.Reason = ev.OccurredAt, ev.Outcome, ev.EndedBy, ev.Reason
			c.SIPStatusCode, c.SIPStatus, c.DisconnectReason = ev.SIPStatusCode, ev.SIPStatus, ev.DisconnectReason
			c.RingDurationSeconds, c.TalkDurationSeconds = ev.RingDurationSeconds, ev.TalkDurationSeconds
		}
	}
	return c
}

// A restart loses nothing: the new process rebuilds the call state from
// Kafka and serves every call, its events and its deliveries exactly as
// before.
func TestComponentRestartRebuildsCallState(t *testing.T) {
	b := stateBroker(t)
	a := startIngest(t, b.Addr())
	a.waitReady(t)
	p := producer(t, b.Addr())
	var ids []string
	for i := range 8 {
		acc, f := a.place(t, fmt.Sprintf("+155501000%02d", 10+i))
		ids = append(ids, acc.CallID)
		switch i % 3 {
		case 0:
			produceAll(t, p, eventRecords(t, f.completed())...)
			produceAll(t, p, attemptRecord(t, f.attempt(1, schemas.StatusQueued, 1, f.at.Add(time.Second), 500, "", schemas.WebhookRetry)),
				attemptRecord(t, f.attempt(1, schemas.StatusQueued, 2, f.at.Add(2*time.Second), 200, "", schemas.WebhookSuccess)))
		case 1:
			produceAll(t, p, eventRecords(t, f.busy())...)
		}
	}
	// Everything read back before the snapshot.
	testutil.Eventually(t, 10*time.Second, "events read", func() bool {
		for i, id := range ids {
			c, _ := a.state(t, id)
			want := []int{5, 4, 0}[i%3]
			if c.Sequence != want {
				return false
			}
			if i%3 == 0 {
				_, d := a.call(t, "GET", "/v1/api/call/"+id+"/deliveries", "")
				if !strings.Contains(d, `"attempt":2`) {
					return false
				}
			}
		}
		return true
	})
	snapshot := func(r *runningIngest) []string {
		var out []string
		for _, id := range ids {
			_, body := r.call(t, "GET", "/v1/api/call/"+id, "")
			_, d := r.call(t, "GET", "/v1/api/call/"+id+"/deliveries", "")
			out = append(out, body, d)
		}
		_, l := r.call(t, "GET", "/v1/api/calls?limit=200", "")
		return append(out, l)
	}
	before := snapshot(a)
	a.stop(t)

	restarted := startIngest(t, b.Addr())
	restarted.waitReady(t)
	after := snapshot(restarted)
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("after the restart\n got %s\nwant %s", after[i], before[i])
		}
	}
	var l CallList
	_ = json.Unmarshal([]byte(after[len(after)-1]), &l)
	if len(l.Calls) != len(ids) {
		t.Fatalf("%d calls listed after the restart", len(l.Calls))
	}
	m := gather(t, restarted.reg)
	for name, want := range map[string]float64{
		"dialstream_ingest_projection_calls":                                            8,
		"dialstream_ingest_projection_partitions_loading":                               0,
		`dialstream_ingest_projection_records_total{result="taken",topic="requested"}`:  8,
		`dialstream_ingest_projection_records_total{result="taken",topic="events"}`:     3*5 + 3*4,
		`dialstream_ingest_projection_records_total{result="taken",topic="deliveries"}`: 6,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if m["dialstream_ingest_projection_load_seconds"] <= 0 {
		t.Errorf("load seconds %v", m["dialstream_ingest_projection_load_seconds"])
	}
}

// Paging over HTTP while calls keep arriving: the pages hold exactly the
// calls that existed when paging began, newest first, each once.
func TestComponentPagingWhileCallsArrive(t *testing.T) {
	b := stateBroker(t)
	a := startIngest(t, b.Addr())
	a.waitReady(t)
	var existing []string
	for i := range 23 {
		acc, _ := a.place(t, fmt.Sprintf("+155501001%02d", i))
		existing = append([]string{acc.CallID}, existing...)
	}
	// Calls keep arriving, on this replica and through Kafka, while pages
	// are read.
	stop := make(chan struct{})
	var arrived atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			code, _ := a.call(t, "POST", "/v1/api/call", `{"to":"+15550100200","call_agent_id":"`+demoAgent+`"}`)
			if code == 202 {
				arrived.Add(1)
			}
		}
	}()
	var seen []string
	cursor := ""
	for {
		q := "/v1/api/calls?limit=4"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		if len(seen) == 0 {
			// The first page is read once some new calls are in, so it
			// starts above the existing ones.
			testutil.Eventually(t, 10*time.Second, "new calls", func() bool { return arrived.Load() >= 3 })
		}
		code, body := a.call(t, "GET", q, "")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var l CallList
		_ = json.Unmarshal([]byte(body), &l)
		seen = append(seen, ids(l.Calls)...)
		if l.NextCursor == "" {
			break
		}
		cursor = l.NextCursor
	}
	close(stop)
	<-done
	// Drop the new calls that were on the first pages (they arrived before
	// the page was read); after them come exactly the existing ones.
	i := slices.Index(seen, existing[0])
	if i < 0 {
		t.Fatalf("the newest existing call was never listed: %v", seen)
	}
	if !slices.Equal(seen[i:], existing) {
		t.Fatalf("pages gave\n%v\nwant\n%v", seen[i:], existing)
	}
	uniq := map[string]bool{}
	for _, id := range seen {
		if uniq[id] {
			t.Fatalf("call %s listed twice", id)
		}
		uniq[id] = true
	}
	if arrived.Load() < 3 {
		t.Fatalf("only %d calls arrived while paging", arrived.Load())
	}
}

// /readyz is 503 until the call state has read every partition up to the
// end it had at start; the state routes answer 503 meanwhile, never a wrong
// 404.
func TestComponentReadyWaitsForCallState(t *testing.T) {
	b := stateBroker(t)
	a := startIngest(t, b.Addr())
	a.waitReady(t)
	acc, f := a.place(t, "+15550100001")
	produceAll(t, producer(t, b.Addr()), eventRecords(t, f.busy())...)
	a.stop(t)

	fault := b.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: schemas.TopicEvents, Err: kerr.UnknownServerError, Count: -1})
	r := startIngest(t, b.Addr())
	testutil.Eventually(t, 10*time.Second, "a faulted fetch", func() bool { return fault.Hits() > 0 })
	code, body := r.call(t, "GET", "/readyz", "")
	if code != 503 {
		t.Fatalf("readyz %d %s", code, body)
	}
	assertJSON(t, []byte(body), `{"status":"not_ready","reason":"call state: still loading from Kafka"}`)
	code, body = r.call(t, "GET", "/v1/api/call/"+acc.CallID, "")
	if code != 503 {
		t.Fatalf("GET while loading: %d %s", code, body)
	}
	if m := gather(t, r.reg); m["dialstream_ingest_projection_partitions_loading"] < 1 {
		t.Fatalf("partitions loading %v", m["dialstream_ingest_projection_partitions_loading"])
	}
	fault.Remove()
	r.waitReady(t)
	c, body := r.state(t, acc.CallID)
	if c.Outcome != schemas.OutcomeBusy || c.JobID != acc.JobID {
		t.Fatalf("%s", body)
	}
}

// gather flattens a registry's counters and gauges: "name{k="v",...}" (or
// "name" alone) -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			if len(ls) > 0 {
				name += "{" + strings.Join(ls, ",") + "}"
			}
			out[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

// The bounds hold on a start: with INGEST_CALLS_MAX=3 a replica keeps the
// 3 newest calls, and reads only about that many calls' records however
// many the retention window holds; calls older than INGEST_CALLS_RETENTION
// are not read at all.
func TestComponentCallStateBoundsOnStart(t *testing.T) {
	b := stateBroker(t)
	a := startIngest(t, b.Addr())
	a.waitReady(t)
	a.stop(t)
	now := time.Now().UTC()
	var recs []*kgo.Record
	var fs []fixture
	for i := range 300 {
		f := demoCall(i, now.Add(-time.Duration(300-i)*time.Second))
		recs = append(recs, f.request(t, 0, 0))
		fs = append(fs, f)
	}
	produceAll(t, producer(t, b.Addr()), recs...)

	r := startIngest(t, b.Addr(), func(c *Config) { c.CallsMax = 3 })
	r.waitReady(t)
	_, body := r.call(t, "GET", "/v1/api/calls", "")
	var l CallList
	_ = json.Unmarshal([]byte(body), &l)
	if want := []string{fs[299].id, fs[298].id, fs[297].id}; !slices.Equal(ids(l.Calls), want) {
		t.Fatalf("kept %v, want %v", ids(l.Calls), want)
	}
	m := gather(t, r.reg)
	read := m[`dialstream_ingest_projection_records_total{result="taken",topic="requested"}`] +
		m[`dialstream_ingest_projection_records_total{result="skipped",topic="requested"}`]
	if lb := float64(3 * (&follower{maxCalls: 3}).lookback(schemas.TopicRequested, 3)); read > lb || read < 3 {
		t.Fatalf("read %v requests, lookback allows %v", read, lb)
	}
	if m[`dialstream_ingest_projection_evictions_total{reason="count"}`] == 0 {
		t.Fatal("no call evicted for the count")
	}
	r.stop(t)

	// A retention shorter than the calls' age: none is read.
	old := startIngest(t, b.Addr(), func(c *Config) { c.CallsRetention = time.Second })
	old.waitReady(t)
	if _, body := old.call(t, "GET", "/v1/api/calls", ""); body != `{"status":"success","calls":[]}` {
		t.Fatalf("calls past the retention are served: %s", body)
	}
}
