package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// testEnv is an embedded broker with a notifier running against it.
type testEnv struct {
	t       testing.TB
	broker  *kafkax.Broker
	cfg     Config
	cl      *kgo.Client
	stop    func()
	started bool
	httpURL string // the notifier's /healthz, /readyz, /metrics
}

func startBroker(t testing.TB) *kafkax.Broker {
	t.Helper()
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0", Partitions: 2, MinSessionTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// topicsClient creates the notifier's topics (those of schedule included) on
// b as Run does, and returns a client of b.
func topicsClient(t testing.TB, b *kafkax.Broker, k kafkax.Config, schedule []time.Duration) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := createTopics(ctx, cl, k, schedule); err != nil {
		t.Fatal(err)
	}
	return cl
}

func baseConfig(t testing.TB, b *kafkax.Broker) Config {
	return Config{
		HTTPAddr:       "127.0.0.1:0",
		Registry:       testRegistry(t),
		RetrySchedule:  []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond},
		Timeout:        2 * time.Second,
		ConnectTimeout: time.Second,
		AllowCIDRs:     loopback,
		Kafka: kafkax.Config{Brokers: []string{b.Addr()}, ClientID: "test-notifier", Partitions: 2,
			CreateTopics: true, SessionTimeout: time.Second, ProduceTimeout: 5 * time.Second},
		Metrics: prometheus.NewRegistry(),
		Logger:  testLogger(t),
	}
}

// testLogger writes the notifier's log into the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newEnv starts a broker and a notifier; mod adjusts the config first.
func newEnv(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	b := startBroker(t)
	cfg := baseConfig(t, b)
	if mod != nil {
		mod(&cfg)
	}
	// The topics exist before anything is produced: a producer that asks for
	// a missing topic backs off for seconds before asking again.
	cl := topicsClient(t, b, cfg.Kafka, cfg.RetrySchedule)
	e := &testEnv{t: t, broker: b, cfg: cfg, cl: cl}
	e.start()
	return e
}

// start runs a notifier with e.cfg (and a fresh metrics registry) until stop.
func (e *testEnv) start() {
	t := e.t
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.Listener = ln
	e.httpURL = "http://" + ln.Addr().String()
	if e.cfg.Metrics == nil || e.started {
		e.cfg.Metrics = prometheus.NewRegistry()
	}
	e.started = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := e.cfg
	go func() { done <- Run(ctx, cfg) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			t0 := time.Now()
			defer func() { t.Logf("notifier stopped in %s", time.Since(t0).Round(time.Millisecond)) }()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return 30s after cancel")
			}
		})
	}
	t.Cleanup(e.stop)
}

// callID returns a fresh 24-hex call id.
func callID() string { return fmt.Sprintf("%016x%08x", rand.Uint64(), rand.Uint32()) }

// event builds a lifecycle event of a call to url.
func event(call, workspace string, seq int, status schemas.Status, url string) schemas.CallEvent {
	ev := schemas.CallEvent{CallID: call, WorkspaceID: workspace, Sequence: seq, Status: status,
		OccurredAt: time.Now().UTC(), CallbackURL: url, To: "+15550100001"}
	if status == schemas.StatusEnded {
		ev.Outcome, ev.EndedBy = schemas.OutcomeCompleted, schemas.EndedByCallee
	}
	return ev
}

// emit writes lifecycle events to the events topic; it returns their ids.
func (e *testEnv) emit(evs ...schemas.CallEvent) []string {
	e.t.Helper()
	ids := make([]string, len(evs))
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		ids[i] = schemas.EventID(ev.CallID, ev.Sequence)
		r, err := schemas.NewRecord(schemas.TopicEvents, ev.CallID, schemas.Meta{ID: ids[i], Type: ev.Status.Type(),
			Source: "/test", Subject: ev.CallID}, ev)
		if err != nil {
			e.t.Fatal(err)
		}
		recs[i] = r
	}
	if err := e.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

// records reads a whole topic as it is now.
func (e *testEnv) records(topic string) []*kgo.Record {
	e.t.Helper()
	return readTopic(e.t, e.broker.Addr(), topic)
}

func readTopic(t testing.TB, addr, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends := map[int32]int64{}
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	lo.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	var out []*kgo.Record
	seen := map[int32]int64{}
	caughtUp := func() bool {
		for p, end := range ends {
			if end > 0 && seen[p] < end {
				return false
			}
		}
		return true
	}
	for !caughtUp() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			seen[r.Partition] = r.Offset + 1
		})
	}
	return out
}

// waitRecords polls a topic until it holds at least n records matching keep.
func (e *testEnv) waitRecords(topic string, n int, d time.Duration, keep func(*kgo.Record) bool) []*kgo.Record {
	e.t.Helper()
	var got []*kgo.Record
	testutil.Eventually(e.t, d, fmt.Sprintf("%d records on %s", n, topic), func() bool {
		got = got[:0]
		for _, r := range e.records(topic) {
			if keep == nil || keep(r) {
				got = append(got, r)
			}
		}
		return len(got) >= n
	})
	return got
}

// waitKeys polls a topic until every one of keys has a record there, and
// returns the records by key: counted per key, so a record written twice
// cannot stand in for one never written.
func (e *testEnv) waitKeys(topic string, keys []string, d time.Duration) map[string][]*kgo.Record {
	e.t.Helper()
	var byKey map[string][]*kgo.Record
	testutil.EventuallyWhy(e.t, d, fmt.Sprintf("a record of each of %d keys on %s", len(keys), topic), func() (bool, string) {
		byKey = map[string][]*kgo.Record{}
		for _, r := range e.records(topic) {
			byKey[string(r.Key)] = append(byKey[string(r.Key)], r)
		}
		for _, k := range keys {
			if len(byKey[k]) == 0 {
				return false, "none yet for " + k
			}
		}
		return true, ""
	})
	return byKey
}

// attempts decodes the delivery log entries for one call.
func (e *testEnv) attempts(call string) []schemas.WebhookAttempt {
	var out []schemas.WebhookAttempt
	for _, r := range e.records(schemas.TopicWebhookDeliveries) {
		ev, err := schemas.Decode(r)
		if err != nil {
			e.t.Fatalf("delivery log record: %v", err)
		}
		var a schemas.WebhookAttempt
		if err := json.Unmarshal(ev.Data, &a); err != nil {
			e.t.Fatal(err)
		}
		if a.CallID == call {
			out = append(out, a)
		}
	}
	return out
}

// metric reads one series of the notifier's registry (0 when absent).
func (e *testEnv) metric(name string, labels ...string) float64 {
	return gather(e.t, e.cfg.Metrics, name, labels...)
}

func gather(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	return 0
}

func matchLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// hit is one request a receiver got.
type hit struct {
	at     time.Time
	path   string
	header http.Header
	body   []byte
	status int
}

// receiver is a loopback webhook endpoint whose answers the test scripts.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	hits   []hit
	answer func(n int, r *http.Request, w http.ResponseWriter) int // n is 1-based
}

func newReceiver(t testing.TB, answer func(n int, r *http.Request, w http.ResponseWriter) int) *receiver {
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{at: time.Now(), path: r.URL.Path, header: r.Header.Clone(), body: body})
		n := len(rc.hits)
		rc.mu.Unlock()
		status := http.StatusNoContent
		if rc.answer != nil {
			status = rc.answer(n, r, w)
		}
		rc.mu.Lock()
		rc.hits[n-1].status = status
		rc.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

func (rc *receiver) count() int { return len(rc.got()) }

// taken counts, per webhook-id, the requests the receiver answered 2xx.
func (rc *receiver) taken() map[string]int {
	out := map[string]int{}
	for _, h := range rc.got() {
		if success(h.status) {
			out[h.header.Get(HeaderWebhookID)]++
		}
	}
	return out
}

// missing returns the ids the receiver has not taken yet. "Every event
// delivered" is counted per event this way, never in requests: at least once
// allows a duplicate, and a duplicate must not stand in for a lost event.
func (rc *receiver) missing(ids []string) []string {
	took := rc.taken()
	var out []string
	for _, id := range ids {
		if took[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// allTaken waits until the receiver has taken every one of ids.
func (rc *receiver) allTaken(t testing.TB, d time.Duration, ids []string) {
	t.Helper()
	testutil.EventuallyWhy(t, d, fmt.Sprintf("%d events delivered", len(ids)), func() (bool, string) {
		m := rc.missing(ids)
		return len(m) == 0, fmt.Sprintf("%d not delivered, e.g. %v", len(m), m[:min(len(m), 3)])
	})
}

// header returns the value of a header of a record.
func header(r *kgo.Record, k string) string { return kafkax.Header(r, k) }
