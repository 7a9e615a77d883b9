package ingest

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/notifier"
	"github.com/dialstream/dialstream/schemas"
)

// receiver is a callback endpoint that fails while down, and records every
// delivery it accepts (signature checked).
type receiver struct {
	t    *testing.T
	down atomic.Bool
	mu   sync.Mutex
	got  []delivered
	hits atomic.Int64
}

type delivered struct {
	webhookID string
	sequence  int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	if rc.down.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if err := notifier.Verify(r.Header, body, []string{demoWebhookSecret}, time.Now(), 5*time.Minute); err != nil {
		rc.t.Errorf("delivery not signed right: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p struct {
		Data struct {
			Sequence int `json:"sequence"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &p)
	rc.mu.Lock()
	rc.got = append(rc.got, delivered{webhookID: r.Header.Get(notifier.HeaderWebhookID), sequence: p.Data.Sequence})
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) delivered() []delivered {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivered(nil), rc.got...)
}

func startNotifier(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := notifier.Config{
		Listener: ln, GroupID: "ingest-test-notifier", Registry: testRegistry(t, true),
		RetrySchedule: []time.Duration{0, 50 * time.Millisecond}, Timeout: 2 * time.Second, ConnectTimeout: time.Second,
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Kafka: kafkax.Config{Brokers: []string{addr}, ClientID: "ingest-test-notifier", Partitions: 3, ReplicationFactor: -1,
			CreateTopics: true, SessionTimeout: time.Second, ProduceTimeout: 5 * time.Second},
		Metrics: prometheus.NewRegistry(), Logger: discardLogger(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- notifier.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("notifier.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("notifier did not stop")
		}
	})
	testutil.Eventually(t, 20*time.Second, "notifier ready", func() bool {
		resp, err := http.Get("http://" + ln.Addr().String() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// The scenario: the callback endpoint is down while a call's events
// are delivered, so the notifier exhausts its schedule and dead-letters
// them; the endpoint comes back; POST .../redeliver sends the original
// events to the redelivery topic, and the receiver gets every one of them
// again with its original webhook-id. The delivery log shows it all.
func TestComponentRedeliverAfterEndpointComesBack(t *testing.T) {
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0", Partitions: 3, MinSessionTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	rc := &receiver{t: t}
	rc.down.Store(true)
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)

	in := startIngest(t, b.Addr())
	in.waitReady(t)
	startNotifier(t, b.Addr())

	code, body := in.call(t, "POST", "/v1/api/call", `{"to":"+15550100001","call_agent_id":"`+demoAgent+`","callback_url":"`+hook.URL+`/hooks"}`)
	if code != 202 {
		t.Fatalf("%d %s", code, body)
	}
	var acc CallResponse
	_ = json.Unmarshal([]byte(body), &acc)
	c, _ := in.state(t, acc.CallID)
	f := fixture{id: acc.CallID, ws: "ws_demo", agent: demoAgent, to: "+15550100001", room: acc.RoomName,
		callback: hook.URL + "/hooks", at: c.RequestedAt}
	originals := eventRecords(t, f.completed())
	var originalIDs []string
	for _, r := range originals {
		originalIDs = append(originalIDs, kafkax.Header(r, schemas.HeaderID))
	}
	produceAll(t, producer(t, b.Addr()), originals...)

	// Every event fails twice and is dead-lettered; the log says so, event
	// by event (a duplicate entry must not stand in for a missing one).
	var ds DeliveryList
	testutil.Eventually(t, 20*time.Second, "every event exhausted", func() bool {
		ds = in.deliveries(t, acc.CallID)
		return eventsWith(ds, func(d Delivery) bool { return d.Result == schemas.WebhookExhausted }).equal(originalIDs)
	})
	for _, d := range ds.Deliveries {
		if d.StatusCode != 503 || d.Redelivery || !slices.Contains(originalIDs, d.EventID) || d.URL != hook.URL+"/hooks" {
			t.Fatalf("attempt %+v", d)
		}
	}
	if len(rc.delivered()) != 0 {
		t.Fatal("a delivery succeeded while the endpoint was down")
	}

	rc.down.Store(false)
	code, body = in.call(t, "POST", "/v1/api/call/"+acc.CallID+"/redeliver", "")
	if code != 202 {
		t.Fatalf("redeliver: %d %s", code, body)
	}
	var rr RedeliverResponse
	_ = json.Unmarshal([]byte(body), &rr)
	if len(rr.Events) != len(originals) {
		t.Fatalf("%s", body)
	}

	// The redelivery topic holds the original CloudEvents: same ce_id (the
	// webhook-id), same data.
	redeliver := readTopicRecords(t, b.Addr(), schemas.TopicWebhookRedeliver)
	if len(redeliver) != len(originals) {
		t.Fatalf("%d redelivery records", len(redeliver))
	}
	for _, r := range redeliver {
		i := slices.Index(originalIDs, kafkax.Header(r, schemas.HeaderID))
		if i < 0 || string(r.Value) != string(originals[i].Value) || string(r.Key) != acc.CallID {
			t.Fatalf("redelivery record %s %v", r.Key, r.Headers)
		}
	}

	// The receiver gets every event again, with its original webhook-id.
	testutil.Eventually(t, 20*time.Second, "the events redelivered", func() bool {
		took := eventSet{}
		for _, d := range rc.delivered() {
			took[d.webhookID] = true
		}
		return took.equal(originalIDs)
	})
	got := rc.delivered()
	var gotIDs []string
	for _, d := range got {
		gotIDs = append(gotIDs, d.webhookID)
		if d.webhookID != schemas.EventID(acc.CallID, d.sequence) {
			t.Errorf("webhook-id %s for sequence %d", d.webhookID, d.sequence)
		}
	}
	slices.Sort(gotIDs)
	want := slices.Clone(originalIDs)
	slices.Sort(want)
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("received webhook-ids %v, want %v", gotIDs, want)
	}
	// And the delivery log shows the redeliveries succeeding.
	testutil.Eventually(t, 10*time.Second, "redeliveries logged", func() bool {
		return eventsWith(in.deliveries(t, acc.CallID), func(d Delivery) bool {
			return d.Redelivery && d.Result == schemas.WebhookSuccess
		}).equal(originalIDs)
	})
}

// eventSet is a set of event ids (webhook-ids).
type eventSet map[string]bool

// equal says whether the set holds exactly ids.
func (s eventSet) equal(ids []string) bool {
	if len(s) != len(ids) {
		return false
	}
	for _, id := range ids {
		if !s[id] {
			return false
		}
	}
	return true
}

// eventsWith is the set of events with at least one delivery that keep
// accepts.
func eventsWith(ds DeliveryList, keep func(Delivery) bool) eventSet {
	s := eventSet{}
	for _, d := range ds.Deliveries {
		if keep(d) {
			s[d.EventID] = true
		}
	}
	return s
}

// deliveries is GET /v1/api/call/:callId/deliveries.
func (r *runningIngest) deliveries(t *testing.T, id string) DeliveryList {
	t.Helper()
	var ds DeliveryList
	_, body := r.call(t, "GET", "/v1/api/call/"+id+"/deliveries", "")
	_ = json.Unmarshal([]byte(body), &ds)
	return ds
}

// readTopicRecords reads a whole topic as it is now.
func readTopicRecords(t *testing.T, addr, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	var out []*kgo.Record
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), total, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}
