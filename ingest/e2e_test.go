package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/dialer"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/livekitdev"
	"github.com/dialstream/dialstream/internal/phonesim"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// End to end: a client follows its calls through the API alone, by polling
// GET, against the real pipeline: the embedded broker, a real
// livekit-server with its in-process Redis, the phone simulator on its SIP
// bus, the dialer and ingest. Skips without the livekit-server binary,
// except under CI=true.

const (
	e2eAPIKey    = "devkey"
	e2eAPISecret = "dialstream-test-secret-0123456789abcdef"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPipeline starts livekit-server, the simulator, the broker, a dialer
// and ingest; it returns ingest.
func startPipeline(t *testing.T) *runningIngest {
	t.Helper()
	lksdk.SetLogger(phonesim.NewSDKLogger(discardLogger()))
	dialerAddr := freePort(t)
	lk := livekitdev.StartT(t, livekitdev.Config{APIKey: e2eAPIKey, APISecret: e2eAPISecret, LogLevel: "warn",
		WebhookURLs: []string{"http://" + dialerAddr + "/livekit/webhook"}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sim, err := phonesim.Start(ctx, phonesim.Config{RedisAddr: lk.RedisAddr(), LiveKitURL: lk.URL(), APIKey: e2eAPIKey,
		APISecret: e2eAPISecret, HTTPAddr: "127.0.0.1:0", Logger: discardLogger(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	trunk, err := livekitdev.EnsureOutboundTrunk(ctx, lk.URL(), e2eAPIKey, e2eAPISecret, "dialstream-ingest-e2e", []string{"+15550109999"})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Parse([]byte(`
workspaces:
  - id: ws_demo
    api_key_sha256: ["`+registry.HashKey(demoKey)+`"]
    limits: {max_concurrent_calls: 10, calls_per_second: 100, burst: 100, requests_per_second: 1000}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
agents:
  - id: `+demoAgent+`
    workspace: ws_demo
    livekit_agent_name: dialstream-e2e-agent
    sip_trunk_id: `+trunk+`
    caller_id: "+15550109999"
    ringing_timeout: 3s
    max_call_duration: 5m
`), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0", Partitions: 3, MinSessionTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)

	dctx, stopDialer := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- dialer.Run(dctx, dialer.Config{
			Kafka: kafkax.Config{Brokers: []string{b.Addr()}, ClientID: "ingest-e2e-dialer", Partitions: 3, ReplicationFactor: -1,
				CreateTopics: true, SessionTimeout: time.Second, ProduceTimeout: 5 * time.Second},
			HTTPAddr: dialerAddr, Group: dialer.DefaultGroup, MaxQueuedPerPartition: 1000,
			WatchdogInterval: 100 * time.Millisecond, WatchdogGrace: 2 * time.Second, RoomCheckInterval: time.Second,
			MaxQueueWait: time.Hour, EndedRetention: time.Hour, DrainTimeout: 5 * time.Second,
			LiveKitURL: lk.URL(), LiveKitAPIKey: e2eAPIKey, LiveKitAPISecret: e2eAPISecret,
			Registry: reg, Logger: discardLogger(), Metrics: prometheus.NewRegistry(),
		})
	}()
	t.Cleanup(func() {
		stopDialer()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dialer.Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("dialer did not stop")
		}
	})
	testutil.Eventually(t, 30*time.Second, "dialer ready", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("dialer exited: %v", err)
		default:
		}
		resp, err := http.Get("http://" + dialerAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	in := startIngest(t, b.Addr(), func(c *Config) { c.Registry = reg })
	in.waitReady(t)
	return in
}

// follow polls GET until the call reaches status (or ended), returning the
// statuses seen in the order first seen, and the last state.
func follow(t *testing.T, in *runningIngest, id string, until schemas.Status, timeout time.Duration) ([]schemas.Status, Call) {
	t.Helper()
	var seen []schemas.Status
	var c Call
	testutil.EventuallyWhy(t, timeout, "call "+id+" to reach "+string(until), func() (bool, string) {
		var body string
		c, body = in.state(t, id)
		if c.CallID != id {
			t.Fatalf("GET: %s", body)
		}
		if len(seen) == 0 || seen[len(seen)-1] != c.Status {
			seen = append(seen, c.Status)
		}
		return c.Status == until || c.Status == schemas.StatusEnded, fmt.Sprintf("still %s (seen %v)", c.Status, seen)
	})
	return seen, c
}

func TestEndToEndFollowCallByPolling(t *testing.T) {
	in := startPipeline(t)

	// A call the simulator answers, talks on for 3 s and hangs up.
	code, body := in.call(t, "POST", "/v1/api/call", `{"to":"`+phonesim.NumberAnswer+`","call_agent_id":"`+demoAgent+`",`+
		`"dynamic_variables":{"firstName":"Ada"},"metadata":{"crm_id":"42"}}`)
	if code != 202 {
		t.Fatalf("%d %s", code, body)
	}
	var acc CallResponse
	_ = json.Unmarshal([]byte(body), &acc)
	seen, c := follow(t, in, acc.CallID, schemas.StatusEnded, 60*time.Second)
	if seen[0] != schemas.StatusQueued {
		t.Fatalf("first status seen %s: the accepted call was not visible at once", seen[0])
	}
	order := []schemas.Status{schemas.StatusQueued, schemas.StatusDialing, schemas.StatusRinging, schemas.StatusAnswered, schemas.StatusEnded}
	last := -1
	for _, s := range seen {
		i := slices.Index(order, s)
		if i <= last {
			t.Fatalf("statuses went backwards: %v", seen)
		}
		last = i
	}
	if c.Outcome != schemas.OutcomeCompleted || c.EndedBy != schemas.EndedByCallee || c.Sequence != 5 || c.JobID != acc.JobID ||
		c.RoomName != acc.RoomName || c.To != phonesim.NumberAnswer || c.DynamicVariables["firstName"] != "Ada" ||
		string(c.Metadata) != `{"crm_id":"42"}` || c.TalkDurationSeconds == nil || *c.TalkDurationSeconds < 2 ||
		c.RingDurationSeconds == nil || *c.RingDurationSeconds <= 0 {
		t.Fatalf("ended call %+v", c)
	}
	// queued_at is the request record's Kafka timestamp: milliseconds.
	stamps := []time.Time{c.RequestedAt.Truncate(time.Millisecond), c.QueuedAt, c.DialingAt, c.RingingAt, c.AnsweredAt, c.EndedAt}
	for i := 1; i < len(stamps); i++ {
		if stamps[i].IsZero() || stamps[i].Before(stamps[i-1]) {
			t.Fatalf("stage timestamps out of order: %v", stamps)
		}
	}
	for i, ev := range c.Events {
		if ev.Sequence != i+1 || ev.Status != order[i] || ev.ID != schemas.EventID(acc.CallID, i+1) {
			t.Fatalf("events %+v", c.Events)
		}
	}

	// A call that would never hang up, canceled through the API once
	// answered: it ends canceled by the client.
	code, body = in.call(t, "POST", "/v1/api/call", `{"to":"`+phonesim.NumberHold+`","call_agent_id":"`+demoAgent+`"}`)
	if code != 202 {
		t.Fatalf("%d %s", code, body)
	}
	_ = json.Unmarshal([]byte(body), &acc)
	if _, c = follow(t, in, acc.CallID, schemas.StatusAnswered, 30*time.Second); c.Status != schemas.StatusAnswered {
		t.Fatalf("held call %s", c.Status)
	}
	code, body = in.call(t, "POST", "/v1/api/call/"+acc.CallID+"/cancel", `{"reason":"e2e test"}`)
	if code != 202 {
		t.Fatalf("cancel: %d %s", code, body)
	}
	_, c = follow(t, in, acc.CallID, schemas.StatusEnded, 30*time.Second)
	if c.Outcome != schemas.OutcomeCanceled || c.EndedBy != schemas.EndedByClient || c.Reason != "e2e test" || c.CancelRequestedAt.IsZero() {
		t.Fatalf("canceled call %+v", c)
	}
	// Both are listed, newest first.
	code, body = in.call(t, "GET", "/v1/api/calls", "")
	var l CallList
	_ = json.Unmarshal([]byte(body), &l)
	if code != 200 || len(l.Calls) != 2 || l.Calls[0].CallID != acc.CallID || l.Calls[0].Outcome != schemas.OutcomeCanceled ||
		l.Calls[1].Outcome != schemas.OutcomeCompleted {
		t.Fatalf("list: %d %s", code, body)
	}
}
