package ingest

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/recorder"
	"github.com/dialstream/dialstream/schemas"
)

// Component tests of the call state: ingest's Run and the recorder's
// against the embedded broker in process and a call records database, with
// lifecycle events and delivery attempts produced as the dialer and the
// notifier write them.

type runningIngest struct {
	url    string
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
	once   sync.Once
	db     string // its DATABASE_URL
}

// withDB makes an ingest use the call records database url (filled by
// another's recorder, or by none).
func withDB(url string) func(*Config) { return func(c *Config) { c.DatabaseURL = url } }

// startRecorder runs recorder.Run on addr's broker into the database url
// until the test ends, or until the returned stop is called.
func startRecorder(t *testing.T, addr, url string, reg *registry.Registry) (stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- recorder.Run(ctx, recorder.Config{Listener: ln, DatabaseURL: url, Registry: reg, Logger: discardLogger(),
			Kafka: kafkax.Config{Brokers: []string{addr}, ClientID: "recorder-test", Partitions: 3, ReplicationFactor: -1,
				CreateTopics: true, SessionTimeout: 6 * time.Second}})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			// A test that ends at once may stop it while it still migrates.
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("recorder.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
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
	if cfg.DatabaseURL == "" {
		// A database of its own, filled by a recorder of its own, as in
		// production: ingest writes only its own requests and cancels.
		cfg.DatabaseURL = dbtest.URL(t, callrecords.SQLite)
		startRecorder(t, addr, cfg.DatabaseURL, cfg.Registry)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningIngest{url: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1), reg: reg, db: cfg.DatabaseURL}
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

// Every replica answers from the call records the recorder writes: a call
// accepted by one is queued there at once (read-your-writes), the other
// shows it the same (with its jobId and dynamic_variables), and both follow
// its events and delivery attempts to the same end, on both engines.
func TestComponentCallStateFollowsKafka(t *testing.T) {
	for _, e := range dbtest.Engines {
		t.Run(string(e), func(t *testing.T) { testCallStateFollowsKafka(t, e) })
	}
}

func testCallStateFollowsKafka(t *testing.T, engine callrecords.Engine) {
	b := stateBroker(t)
	db := dbtest.URL(t, engine)
	startRecorder(t, b.Addr(), db, testRegistry(t, true))
	a := startIngest(t, b.Addr(), withDB(db))
	other := startIngest(t, b.Addr(), withDB(db))
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

// A restart of ingest answers every route identically without replaying
// history: the calls, their events and deliveries, the list and the
// export are the same byte for byte from a new process started with the
// recorder stopped and Kafka gone, since nothing is read into memory.
func TestComponentRestartAnswersIdentically(t *testing.T) {
	for _, e := range dbtest.Engines {
		t.Run(string(e), func(t *testing.T) { testRestartAnswersIdentically(t, e) })
	}
}

func testRestartAnswersIdentically(t *testing.T, engine callrecords.Engine) {
	b := stateBroker(t)
	db := dbtest.URL(t, engine)
	stopRecorder := startRecorder(t, b.Addr(), db, testRegistry(t, true))
	a := startIngest(t, b.Addr(), withDB(db))
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
	// Everything recorded (and every request read back) before the
	// snapshot.
	testutil.Eventually(t, 20*time.Second, "events recorded", func() bool {
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
		_, l2 := r.call(t, "GET", "/v1/api/calls?limit=3&status=ended", "")
		_, csv := r.call(t, "GET", "/v1/api/calls/export?format=csv", "")
		_, nd := r.call(t, "GET", "/v1/api/calls/export?format=ndjson", "")
		return append(out, l, l2, csv, nd)
	}
	before := snapshot(a)
	a.stop(t)
	stopRecorder()
	addr := b.Addr()
	b.Close()

	restarted := startIngest(t, addr, withDB(db), func(c *Config) { c.Kafka.CreateTopics = false })
	after := snapshot(restarted)
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("after the restart\n got %s\nwant %s", after[i], before[i])
		}
	}
	var l CallList
	_ = json.Unmarshal([]byte(after[2*len(ids)]), &l)
	if len(l.Calls) != len(ids) {
		t.Fatalf("%d calls listed after the restart", len(l.Calls))
	}
	if n := strings.Count(after[len(after)-1], "\n"); n != len(ids) {
		t.Fatalf("%d calls exported after the restart", n)
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

// Read-your-writes through the real recorder: a GET right after each 202
// sees the call, and the calls are settled by the recorder's stored offsets
// (ownwrites.go), not only by ingest's fallback write. A recorder that
// joins its group late makes the first reads fall back, so calls are
// placed until the recorder settles one (at most 60 s).
func TestComponentReadYourWritesByRecorder(t *testing.T) {
	b := stateBroker(t)
	r := startIngest(t, b.Addr())
	r.waitReady(t)
	placed := 0
	settled := func(by string) int {
		return int(gather(t, r.reg)[`dialstream_ingest_own_requests_settled_total{by="`+by+`"}`])
	}
	deadline := time.Now().Add(60 * time.Second)
	for settled("recorder") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d calls in 60 s the recorder settled none (ingest wrote %d): ingest does not see the recorder's offsets", placed, settled("ingest"))
		}
		r.place(t, fmt.Sprintf("+1555010%04d", placed%10000))
		placed++
	}
	// Every call a read waited for is settled once, by one of the two.
	testutil.Eventually(t, 10*time.Second, "every placed call settled", func() bool {
		return settled("recorder")+settled("ingest") == placed
	})
	if f := settled("failed"); f != 0 {
		t.Fatalf("%d fallback writes failed", f)
	}
	t.Logf("%d calls: %d settled by the recorder, %d by ingest's fallback write", placed, settled("recorder"), settled("ingest"))
}
