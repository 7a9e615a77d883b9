package notifier

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// committed returns the group's committed offsets on the events topic, and
// the topic's end offsets.
func (e *testEnv) committed() (got, end map[int32]int64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(e.cl)
	offs, err := adm.FetchOffsets(ctx, e.cfg.withDefaults().GroupID)
	if err != nil {
		e.t.Fatal(err)
	}
	got, end = map[int32]int64{}, map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == schemas.TopicEvents {
			got[o.Partition] = o.At
		}
	})
	lo, err := adm.ListEndOffsets(ctx, schemas.TopicEvents)
	if err != nil {
		e.t.Fatal(err)
	}
	lo.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	return got, end
}

// A graceful stop commits everything that finished: the next instance starts
// after it and delivers nothing twice.
func TestGracefulStopCommitsFinished(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, nil)
	var ids []string
	for range 5 {
		ids = append(ids, e.emit(event(callID(), "ws_a", 1, schemas.StatusQueued, rc.URL))...)
	}
	rc.allTaken(t, 20*time.Second, ids)
	e.stop()
	got, end := e.committed()
	for p, off := range end {
		if got[p] != off {
			t.Fatalf("partition %d committed %d, end %d: finished work was not committed on exit", p, got[p], off)
		}
	}
	e.start()
	ids = append(ids, e.emit(event(callID(), "ws_a", 1, schemas.StatusQueued, rc.URL+"/after"))...)
	rc.allTaken(t, 20*time.Second, ids)
	if n := rc.count(); n != 6 {
		t.Fatalf("%d deliveries of 6 events after restart (taken %v): something was delivered twice", n, rc.taken())
	}
}

// failProduceTo makes the broker refuse every produce request that writes to
// topic until the returned func is called.
func failProduceTo(t *testing.T, e *testEnv, topic string, refused *atomic.Int32) (stop func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	td, err := kadm.NewClient(e.cl).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	id := td[topic].ID
	var on atomic.Bool
	on.Store(true)
	e.broker.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.broker.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		hit := false
		for _, tp := range pr.Topics {
			hit = hit || tp.Topic == topic || tp.TopicID == id
		}
		if !on.Load() || !hit {
			return nil, nil, false
		}
		refused.Add(1)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		resp.Version = pr.Version
		for _, tp := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
			for _, pp := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = pp.Partition, kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	return func() { on.Store(false) }
}

// When the DLQ write fails, the event is not marked (watermill's rule): a
// stop commits nothing past it, and the next instance handles it again and
// gets it into the DLQ. Nothing is lost.
func TestDLQWriteFailureKeepsEventUncommitted(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request, http.ResponseWriter) int { return http.StatusBadRequest })
	e := newEnv(t, func(c *Config) {
		c.Timeout = time.Second
		c.Kafka.ProduceTimeout = time.Second
	})
	var refused atomic.Int32
	healDLQ := failProduceTo(t, e, schemas.TopicWebhookDLQ, &refused)
	e.emit(event(callID(), "ws_a", 1, schemas.StatusQueued, rc.URL))
	testutil.Eventually(t, 20*time.Second, "DLQ writes refused and retried", func() bool {
		return e.metric("dialstream_notifier_produce_failures_total", "kind", "dlq") >= 2
	})
	e.stop()
	got, end := e.committed()
	for p, off := range end {
		if off > 0 && got[p] >= off {
			t.Fatalf("partition %d committed to %d although its event never reached the DLQ", p, got[p])
		}
	}
	if n := len(e.records(schemas.TopicWebhookDLQ)); n != 0 {
		t.Fatalf("%d DLQ records while the DLQ refused writes", n)
	}

	healDLQ()
	e.start()
	dlq := e.waitRecords(schemas.TopicWebhookDLQ, 1, 20*time.Second, nil)
	if header(dlq[0], kafkax.HeaderDLQErrorClass) != string(DLQFinalStatus) {
		t.Fatalf("DLQ class %s", header(dlq[0], kafkax.HeaderDLQErrorClass))
	}
	if rc.count() != 2 {
		t.Fatalf("%d requests, want 2 (the second instance redid the unmarked event)", rc.count())
	}
	t.Logf("broker refused %d DLQ writes; event reached the DLQ after restart", refused.Load())
}

// The delivery log entry is durable before its event is committed: while
// the broker refuses writes to the delivery log, a delivered event stays
// unmarked (a stop commits nothing past it) and its attempt is retried,
// counted as a delivery_log write failure; the next instance delivers it
// again and logs it, and only then commits it.
func TestDeliveryLogWriteFailureKeepsEventUncommitted(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, func(c *Config) { c.Kafka.ProduceTimeout = time.Second })
	var refused atomic.Int32
	healLog := failProduceTo(t, e, schemas.TopicWebhookDeliveries, &refused)
	call := callID()
	ids := e.emit(event(call, "ws_a", 1, schemas.StatusQueued, rc.URL))
	rc.allTaken(t, 20*time.Second, ids)
	testutil.Eventually(t, 20*time.Second, "delivery log writes refused and retried", func() bool {
		return e.metric("dialstream_notifier_produce_failures_total", "kind", produceLog) >= 2
	})
	e.stop()
	assertCommitted := func(want bool) {
		t.Helper()
		got, end := e.committed()
		for p, off := range end {
			if off > 0 && (got[p] >= off) != want {
				t.Fatalf("partition %d committed to %d of %d; want everything committed: %v", p, got[p], off, want)
			}
		}
	}
	assertCommitted(false)
	if a := e.attempts(call); len(a) != 0 {
		t.Fatalf("%d delivery log entries while the log refused writes", len(a))
	}

	healLog()
	e.start()
	testutil.Eventually(t, 20*time.Second, "the attempt in the delivery log", func() bool { return len(e.attempts(call)) > 0 })
	if a := e.attempts(call)[0]; a.Result != schemas.WebhookSuccess || a.StatusCode != http.StatusNoContent {
		t.Fatalf("logged attempt %+v", a)
	}
	if n := rc.count(); n != 2 {
		t.Fatalf("%d requests, want 2 (the second instance redid the unmarked event)", n)
	}
	e.stop()
	assertCommitted(true)
	t.Logf("broker refused %d delivery log writes; the event was logged and committed after restart", refused.Load())
}

// Two instances share the group: a second one joining mid-stream takes
// partitions over (the first commits and hands them off on revoke), and
// every event is delivered.
func TestSecondInstanceJoinsMidStream(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request, _ http.ResponseWriter) int { return 204 })
	e := newEnv(t, nil)
	var ids []string
	for range 20 {
		ids = append(ids, e.emit(event(callID(), "ws_a", 1, schemas.StatusQueued, rc.URL))...)
	}
	cfg2 := e.cfg
	cfg2.Metrics = prometheus.NewRegistry()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg2.Listener = ln
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg2) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for range 20 {
		ids = append(ids, e.emit(event(callID(), "ws_a", 1, schemas.StatusQueued, rc.URL))...)
	}
	rc.allTaken(t, 30*time.Second, ids)
	testutil.Eventually(t, 20*time.Second, "the second instance delivering", func() bool {
		for range 5 {
			e.emit(event(callID(), "ws_a", 1, schemas.StatusQueued, rc.URL))
		}
		return gather(t, cfg2.Metrics, "dialstream_notifier_webhook_attempts_total", "result", "success") > 0
	})
}

// /healthz, /readyz (the one ops format) and /metrics (with franz-go's client
// metrics under the notifier's namespace), and extra routes (Config.Routes):
// one on the notifier's own server receives the notifier's deliveries,
// signature verified.
func TestHTTPEndpoints(t *testing.T) {
	type received struct {
		webhookID string
		verified  bool
	}
	got := make(chan received, 10)
	e := newEnv(t, func(c *Config) {
		c.Routes = map[string]http.Handler{"POST /dev/webhooks": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			err := Verify(r.Header, body, []string{secretBNew}, time.Now(), 5*time.Minute)
			got <- received{r.Header.Get(HeaderWebhookID), err == nil}
		})}
	})
	get := func(path string) (int, string) {
		resp, err := http.Get(e.httpURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testutil.Eventually(t, 10*time.Second, "ready", func() bool { c, _ := get("/readyz"); return c == 200 })
	if c, body := get("/readyz"); c != 200 || strings.TrimSpace(body) != `{"status":"ready"}` {
		t.Fatalf("readyz %d %s", c, body)
	}
	if c, body := get("/healthz"); c != 200 || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Fatalf("healthz %d %s", c, body)
	}
	call := callID()
	e.emit(event(call, "ws_b", 1, schemas.StatusQueued, e.httpURL+"/dev/webhooks"))
	var r received
	testutil.Eventually(t, 20*time.Second, "the event at the route on the notifier's server", func() bool {
		select {
		case r = <-got:
			return true
		default:
			return false
		}
	})
	if !r.verified || r.webhookID != schemas.EventID(call, 1) {
		t.Fatalf("the route received %+v", r)
	}
	_, m := get("/metrics")
	for _, name := range []string{`dialstream_notifier_webhook_attempts_total{result="gone"} 0`,
		`dialstream_notifier_ssrf_refusals_total{range="metadata"} 0`, "dialstream_notifier_kafka_"} {
		if !strings.Contains(m, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}
