package recorder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// TestMain lets the test binary double as a recorder process, so the crash
// test can SIGKILL a real one: with RECORDER_TEST_CHILD=1 it runs what
// cmd/dialstream's recorder command runs (env config, Run until SIGTERM).
// Otherwise it runs the tests and stops the PostgreSQL they started.
func TestMain(m *testing.M) {
	if os.Getenv("RECORDER_TEST_CHILD") == "1" {
		os.Exit(childMain())
	}
	os.Exit(dbtest.Main(m))
}

func childMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l := envconfig.New()
	cfg := LoadConfig(l)
	if err := l.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "config:", err)
		return 2
	}
	cfg.Logger = obs.NewLogger(os.Stderr, "text", "info")
	if err := Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "recorder:", err)
		return 1
	}
	return 0
}

const testRegistryYAML = `
workspaces:
  - id: ws_a
  - id: ws_b
`

func testRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	r, err := registry.Parse([]byte(testRegistryYAML), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func startBroker(t testing.TB) *kafkax.Broker {
	t.Helper()
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0", Partitions: 3, MinSessionTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func kafkaConfig(b *kafkax.Broker) kafkax.Config {
	return kafkax.Config{Brokers: []string{b.Addr()}, Partitions: 3, CreateTopics: true, SessionTimeout: time.Second}
}

// producer writes call records to b, creating the topics the recorder reads.
func producer(t testing.TB, b *kafkax.Broker) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kafkax.CreateTopics(ctx, cl, kafkaConfig(b).TopicsConfig(), recordedTopics...); err != nil {
		t.Fatal(err)
	}
	return cl
}

var statuses = schemas.Statuses

func callID(n int) string { return fmt.Sprintf("%024x", n) }

// callRecords are one call's records as the pipeline writes them: its
// request, its five lifecycle events and one delivery attempt per event.
func callRecords(t testing.TB, id, ws string, at time.Time) []*kgo.Record {
	t.Helper()
	req := schemas.CallRequested{CallID: id, WorkspaceID: ws, To: "+15550001234", CallAgentID: "agent_a",
		RequestedAt: at, Metadata: json.RawMessage(`{"crm":"x-1"}`)}
	r, err := schemas.NewRecord(schemas.TopicRequested, id, schemas.Meta{Type: schemas.TypeCallRequested, Source: "/test", Subject: id}, req)
	if err != nil {
		t.Fatal(err)
	}
	out := []*kgo.Record{r}
	for i, st := range statuses {
		out = append(out, eventRecord(t, id, ws, i+1, st, at), attemptRecord(t, id, ws, i+1, st, at))
	}
	return out
}

func eventRecord(t testing.TB, id, ws string, seq int, st schemas.Status, at time.Time) *kgo.Record {
	t.Helper()
	ev := schemas.CallEvent{CallID: id, WorkspaceID: ws, Sequence: seq, Status: st, RequestedAt: &at,
		OccurredAt: at.Add(time.Duration(seq) * time.Second), To: "+15550001234", CallAgentID: "agent_a"}
	if st == schemas.StatusEnded {
		ev.Outcome, ev.EndedBy = schemas.OutcomeCompleted, schemas.EndedByCallee
	}
	r, err := schemas.NewRecord(schemas.TopicEvents, id, schemas.Meta{ID: schemas.EventID(id, seq), Type: st.Type(), Source: "/test", Subject: id}, ev)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func attemptRecord(t testing.TB, id, ws string, seq int, st schemas.Status, at time.Time) *kgo.Record {
	t.Helper()
	a := schemas.WebhookAttempt{EventID: schemas.EventID(id, seq), EventType: st.Type(), CallID: id, WorkspaceID: ws,
		Sequence: seq, Attempt: 1, MaxAttempts: 8, URL: "https://example.test/hook", AttemptedAt: at.Add(time.Duration(seq) * time.Second),
		StatusCode: 200, Result: schemas.WebhookSuccess}
	r, err := schemas.NewRecord(schemas.TopicWebhookDeliveries, id, schemas.Meta{Type: schemas.TypeWebhookAttempt, Source: "/test", Subject: id}, a)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func produce(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// running is a recorder started in this process.
type running struct {
	addr    string
	metrics *prometheus.Registry
	stop    func()
}

func start(t testing.TB, cfg Config) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var once bool
	stop := func() {
		if once {
			return
		}
		once = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of its context ending")
		}
	}
	t.Cleanup(stop)
	return &running{addr: ln.Addr().String(), metrics: cfg.Metrics, stop: stop}
}

// counter sums the series of a counter family whose labels contain match.
func counter(t testing.TB, g prometheus.Gatherer, name string, match map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range match {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == k && lp.GetValue() == v)
				}
				if !found {
					continue series
				}
			}
			if m.Counter != nil {
				sum += m.GetCounter().GetValue()
			} else {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// scrape reads one sample from a /metrics endpoint (a child process's).
func scrape(addr, sample string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err
		}
	}
	return 0, fmt.Errorf("no sample %s", sample)
}

// eventsOf reads the sequences of a call's events as stored, in order.
func eventsOf(t testing.TB, st *callrecords.Store, ws, id string) []int {
	t.Helper()
	c, ok, err := st.Get(context.Background(), ws, id)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil
	}
	seqs := make([]int, len(c.Events))
	for i, e := range c.Events {
		seqs[i] = e.Sequence
	}
	return seqs
}

// count runs a COUNT(*) query.
func count(t testing.TB, st *callrecords.Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

var _ = testutil.Eventually
