package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// TestMain lets the test binary double as a scheduler process, so the crash
// test can SIGKILL a real one: with SCHEDULER_TEST_CHILD=1 it runs what
// `dialstream scheduler` runs (env config, Run until SIGTERM).
func TestMain(m *testing.M) {
	if os.Getenv("SCHEDULER_TEST_CHILD") == "1" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
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
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		return 1
	}
	return 0
}

// The service tests' workspace: calling hours all day (the campaigns'
// windows are what they test), ws_b for isolation.
const testRegistryYAML = `
workspaces:
  - id: ws_a
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}}
  - id: ws_b
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}}
agents:
  - {id: agent_a, workspace: ws_a, livekit_agent_name: demo, sip_trunk_id: ST_x}
  - {id: agent_b, workspace: ws_b, livekit_agent_name: demo, sip_trunk_id: ST_x}
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
	return kafkax.Config{Brokers: []string{b.Addr()}, Partitions: 3, ReplicationFactor: 1, CreateTopics: true, SessionTimeout: time.Second}
}

// startScheduler runs a scheduler in this process until the test ends (or
// stop is called) and waits until it is ready.
func startScheduler(t *testing.T, b *kafkax.Broker, clock func() time.Time) (stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := Config{Listener: ln, Kafka: kafkaConfig(b), Registry: testRegistry(t), Metrics: prometheus.NewRegistry(),
		MaxWake: 100 * time.Millisecond, clock: clock, Logger: obs.NewLogger(os.Stderr, "text", "warn")}
	go func() { done <- Run(ctx, cfg) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("scheduler: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	waitReady(t, "http://"+ln.Addr().String())
	return stop
}

// pipeline plays the rest of the call pipeline around a scheduler: it
// writes the commands ingest would write, reads the call requests the
// scheduler releases and the campaign events, and ends calls as the dialer
// would, with an ended event carrying the campaign.
type pipeline struct {
	t     *testing.T
	cl    *kgo.Client
	mu    sync.Mutex
	req   []schemas.CallRequested     // every call.requested read, in order
	reqAt []time.Time                 // when each was read
	can   []schemas.CallCancel        // cancels on the requested topic
	evs   []schemas.CampaignEventData // campaign events
}

func newPipeline(t *testing.T, b *kafkax.Broker) *pipeline {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerLinger(0),
		kgo.ConsumeTopics(schemas.TopicRequested, schemas.TopicEvents), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if err := kafkax.CreateTopics(cctx, cl, kafkaConfig(b).TopicsConfig(), append([]string{schemas.TopicRequested,
		schemas.TopicEvents, schemas.TopicRequestsDLQ}, campaignTopics...)...); err != nil {
		t.Fatal(err)
	}
	p := &pipeline{t: t, cl: cl}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(p.read)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return p
}

func (p *pipeline) read(r *kgo.Record) {
	ev, err := schemas.Decode(r)
	if err != nil {
		p.t.Errorf("undecodable record on %s: %v", r.Topic, err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case ev.Type == schemas.TypeCallRequested:
		var req schemas.CallRequested
		mustUnmarshal(p.t, ev.Data, &req)
		p.req, p.reqAt = append(p.req, req), append(p.reqAt, time.Now())
	case ev.Type == schemas.TypeCallCancel:
		var c schemas.CallCancel
		mustUnmarshal(p.t, ev.Data, &c)
		p.can = append(p.can, c)
	case r.Topic == schemas.TopicEvents && ev.Source == ceSource:
		var e schemas.CampaignEventData
		mustUnmarshal(p.t, ev.Data, &e)
		p.evs = append(p.evs, e)
	}
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	if err := json.Unmarshal(b, v); err != nil {
		t.Errorf("decode %s: %v", b, err)
	}
}

func (p *pipeline) requests() []schemas.CallRequested {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]schemas.CallRequested(nil), p.req...)
}

// seen is requests with when each was read.
func (p *pipeline) seen() ([]schemas.CallRequested, []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]schemas.CallRequested(nil), p.req...), append([]time.Time(nil), p.reqAt...)
}

func (p *pipeline) campaignEvents() []schemas.CampaignEventData {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]schemas.CampaignEventData(nil), p.evs...)
}

// send writes a command (as ingest would) to the commands topic.
func (p *pipeline) send(typ, key string, data any) {
	p.t.Helper()
	r, err := schemas.NewRecord(schemas.TopicCampaignCommands, key, schemas.Meta{Type: typ, Source: "/test", Subject: key}, data)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
}

// end writes the ended event of a released call, as the dialer would.
func (p *pipeline) end(req schemas.CallRequested, o schemas.Outcome) {
	p.t.Helper()
	ev := schemas.CallEvent{CallID: req.CallID, WorkspaceID: req.WorkspaceID, Sequence: 2, Status: schemas.StatusEnded,
		OccurredAt: time.Now().UTC(), To: req.To, CallAgentID: req.CallAgentID, Outcome: o, EndedBy: schemas.EndedByCallee}
	if req.Campaign != nil {
		ev.CampaignID, ev.ContactID, ev.Attempt = req.Campaign.CampaignID, req.Campaign.ContactID, req.Campaign.Attempt
	}
	r, err := schemas.NewRecord(schemas.TopicEvents, req.CallID, schemas.Meta{ID: schemas.EventID(req.CallID, 2),
		Type: schemas.TypeCallEnded, Source: "/dialstream/dialer", Subject: req.CallID}, ev)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
}

// waitReady waits until the scheduler at base answers /readyz with 200.
func waitReady(t *testing.T, base string) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "the scheduler to be ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// testClock is the wall clock moved by an offset the test sets: time runs
// (pacing intervals pass) and the test jumps it across windows.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// set makes now() read at.
func (c *testClock) set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = time.Until(at)
}

var allWeek = []schemas.Window{{Days: schemas.Weekdays[:], Start: "00:00", End: "24:00"}}

func campaignID(n int) string { return fmt.Sprintf("%024x", n) }
