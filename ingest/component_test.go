package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// Component tests: the handler against the embedded Kafka-protocol broker
// (franz-go's kfake) in process, with the producer options Run uses.

type brokerEnv struct {
	broker *kafkax.Broker
	kcfg   kafkax.Config
	tp     trace.TracerProvider // nil: no Kafka tracing hooks, the global provider for requests
	cl     *kgo.Client
	srv    *httptest.Server
}

func startBroker(t *testing.T, produceTimeout time.Duration) *brokerEnv {
	t.Helper()
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kcfg := kafkax.Config{Brokers: []string{b.Addr()}, ClientID: "ingest-test", Partitions: 3,
		ReplicationFactor: -1, ProduceTimeout: produceTimeout}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adminCl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer adminCl.Close()
	if err := kafkax.CreateTopics(ctx, adminCl, kcfg.TopicsConfig(), kafkax.CallTopicNames...); err != nil {
		t.Fatal(err)
	}
	return &brokerEnv{broker: b, kcfg: kcfg}
}

// serve starts the API over loopback HTTP with a producer built like Run's.
func (e *brokerEnv) serve(t *testing.T) *httptest.Server {
	t.Helper()
	opts, err := kafkaOpts(e.kcfg, prometheus.NewRegistry(), e.tp)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	h, err := NewHandler(Config{Registry: testRegistry(t, true), Suppressions: readyTable(), Kafka: e.kcfg, Metrics: prometheus.NewRegistry(),
		Logger: discardLogger(), TracerProvider: e.tp, Store: dbtest.Open(t, callrecords.SQLite, callrecords.Options{})}, cl)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.cl, e.srv = cl, srv
	return srv
}

func post(t testing.TB, url, idemKey, body string) (int, http.Header, []byte) {
	t.Helper()
	r, _ := http.NewRequest(http.MethodPost, url+"/v1/api/call", strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+demoKey)
	r.Header.Set("x-workspace-id", "ws_demo")
	r.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		r.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// readAll returns every record of the requested topic, reading up to the
// end offsets that exist now.
func readAll(t *testing.T, addr string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(schemas.TopicRequested),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, schemas.TopicRequested)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	var out []*kgo.Record
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", len(out), total, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		out = append(out, fs.Records()...)
	}
	return out
}

// A POST writes exactly one record: key = callId, CloudEvents headers, a
// body the schema accepts, at the partition-offset the jobId names.
func TestComponentPostWritesOneRecord(t *testing.T) {
	e := startBroker(t, 5*time.Second)
	srv := e.serve(t)
	body := `{"to":"+1 (202) 555-0123","call_agent_id":"` + demoAgent + `","callback_url":"https://example.com/h",` +
		`"dynamic_variables":{"firstName":"Ada","Zipcode":94105},"metadata":{"crm":{"id":7}}}`
	code, _, b := post(t, srv.URL, "", body)
	if code != http.StatusAccepted {
		t.Fatalf("%d %s", code, b)
	}
	var resp CallResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, e.broker.Addr())
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	assertJSON(t, b, mustJSON(t, CallResponse{Status: "success",
		Message: "Outbound call job scheduled for agent " + demoAgent + " to number +12025550123",
		CallID:  resp.CallID, RoomName: resp.RoomName, JobID: fmt.Sprintf("%d-%d", r.Partition, r.Offset)}))
	if string(r.Key) != resp.CallID || !callIDRE.MatchString(resp.CallID) || !roomRE.MatchString(resp.RoomName) {
		t.Fatalf("key %q, response %+v", r.Key, resp)
	}
	for k, want := range map[string]string{
		schemas.HeaderSpecVersion: "1.0", schemas.HeaderType: schemas.TypeCallRequested,
		schemas.HeaderSource: EventSource, schemas.HeaderSubject: resp.CallID,
		schemas.HeaderContentType: "application/json",
	} {
		if got := kafkax.Header(r, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if kafkax.Header(r, schemas.HeaderID) == "" || kafkax.Header(r, schemas.HeaderTime) == "" {
		t.Errorf("ce_id/ce_time missing")
	}
	d := decodeData(t, r)
	if d.CallID != resp.CallID || d.RoomName != resp.RoomName || d.To != "+12025550123" || d.WorkspaceID != "ws_demo" ||
		d.DynamicVariables["Zipcode"] != "94105" || string(d.Metadata) != `{"crm":{"id":7}}` {
		t.Fatalf("data %+v", d)
	}
}

// A broker that refuses every produce: 503, and the refused call never
// appears in the topic, not even after the broker recovers.
func TestComponentBrokerRefuses(t *testing.T) {
	e := startBroker(t, time.Second)
	srv := e.serve(t)
	fault := e.broker.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	start := time.Now()
	code, h, b := post(t, srv.URL, "refused", validBody)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") != "2" {
		t.Fatalf("%d %v %s", code, h, b)
	}
	assertJSON(t, b, errBody(t, "the call was not scheduled: Kafka did not acknowledge it within 1s; retry later, with the same Idempotency-Key so that a retry can never place the call twice"))
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("503 took %s", d)
	}
	if fault.Hits() == 0 {
		t.Fatal("the produce never reached the broker")
	}
	fault.Remove()
	// Let any retry the client might still hold run out before looking.
	if err := e.cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if recs := readAll(t, e.broker.Addr()); len(recs) != 0 {
		t.Fatalf("%d records after a 503", len(recs))
	}
	// The broker is back: the retry with the same key is accepted once.
	// Until the client has settled the refused record, the key is in flight.
	testutil.Eventually(t, 10*time.Second, "the retry to be taken", func() bool {
		code, _, b = post(t, srv.URL, "refused", validBody)
		return code != http.StatusConflict
	})
	if code != http.StatusAccepted {
		t.Fatalf("retry: %d %s", code, b)
	}
	recs := readAll(t, e.broker.Addr())
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	var resp CallResponse
	_ = json.Unmarshal(b, &resp)
	if want := fmt.Sprintf("%d-0", recs[0].Partition); resp.JobID != want || recs[0].Offset != 0 {
		t.Fatalf("jobId %s, record at %d-%d", resp.JobID, recs[0].Partition, recs[0].Offset)
	}
}

// Concurrent identical requests with one Idempotency-Key write one record;
// every answer is the accepted body or 409, and later ones replay it.
func TestComponentIdempotentConcurrent(t *testing.T) {
	e := startBroker(t, 5*time.Second)
	srv := e.serve(t)
	const n = 32
	var wg sync.WaitGroup
	type answer struct {
		code int
		body string
	}
	answers := make([]answer, n)
	startGate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			code, _, b := post(t, srv.URL, "same-key", validBody)
			answers[i] = answer{code, string(b)}
		}()
	}
	close(startGate)
	wg.Wait()
	var accepted []string
	for _, a := range answers {
		switch a.code {
		case http.StatusAccepted:
			accepted = append(accepted, a.body)
		case http.StatusConflict:
		default:
			t.Fatalf("unexpected answer %d %s", a.code, a.body)
		}
	}
	if len(accepted) == 0 {
		t.Fatal("no request was accepted")
	}
	for _, a := range accepted[1:] {
		if a != accepted[0] {
			t.Fatalf("accepted answers differ:\n%s\n%s", accepted[0], a)
		}
	}
	code, h, b := post(t, srv.URL, "same-key", validBody)
	if code != http.StatusAccepted || h.Get(HeaderReplayed) != "true" || string(b) != accepted[0] {
		t.Fatalf("replay: %d %v %s", code, h, b)
	}
	if code, _, _ := post(t, srv.URL, "same-key", `{"to":"+15550100002","call_agent_id":"`+demoAgent+`"}`); code != 422 {
		t.Fatalf("different body: %d", code)
	}
	recs := readAll(t, e.broker.Addr())
	if len(recs) != 1 {
		t.Fatalf("%d records, want exactly 1", len(recs))
	}
	var resp CallResponse
	_ = json.Unmarshal([]byte(accepted[0]), &resp)
	if string(recs[0].Key) != resp.CallID || resp.JobID != fmt.Sprintf("%d-%d", recs[0].Partition, recs[0].Offset) {
		t.Fatalf("record %s at %d-%d, answer %+v", recs[0].Key, recs[0].Partition, recs[0].Offset, resp)
	}
}

// Two replicas do not share their key store; a retry that lands on the other
// one writes a second record, but with the same call id and room, so the
// dialer (which dials a call id once) places one call.
func TestComponentReplicasShareCallID(t *testing.T) {
	e := startBroker(t, 5*time.Second)
	a := e.serve(t)
	b := e.serve(t)
	_, _, ra := post(t, a.URL, "retry-elsewhere", validBody)
	_, _, rb := post(t, b.URL, "retry-elsewhere", validBody)
	var x, y CallResponse
	_ = json.Unmarshal(ra, &x)
	_ = json.Unmarshal(rb, &y)
	if x.CallID == "" || x.CallID != y.CallID || x.RoomName != y.RoomName {
		t.Fatalf("replicas disagree: %+v %+v", x, y)
	}
	recs := readAll(t, e.broker.Addr())
	if len(recs) != 2 || string(recs[0].Key) != x.CallID || string(recs[1].Key) != x.CallID || recs[0].Partition != recs[1].Partition {
		t.Fatalf("records: %d", len(recs))
	}
}

// Run end to end: topics created, ready only with Kafka, kprom metrics on
// the process registry, a call accepted, a clean stop.
func TestRun(t *testing.T) {
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{Listener: ln, Registry: testRegistry(t, true), Metrics: reg, Logger: discardLogger(),
		DatabaseURL: dbtest.URL(t, callrecords.SQLite),
		Kafka: kafkax.Config{Brokers: []string{b.Addr()}, Partitions: 4, ReplicationFactor: -1, CreateTopics: true,
			ProduceTimeout: 5 * time.Second}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	url := "http://" + ln.Addr().String()
	testutil.Eventually(t, 10*time.Second, "readyz", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	code, _, body := post(t, url, "", validBody)
	if code != 202 {
		t.Fatalf("%d %s", code, body)
	}
	recs := readAll(t, b.Addr())
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	// The topics are as `dialstream topics apply` makes them: the configured
	// partition count, and the spec's retention and cleanup policy.
	cl, _ := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	defer cl.Close()
	spec, err := kafkax.Topics(cfg.Kafka.TopicsConfig())
	if err != nil {
		t.Fatal(err)
	}
	spec = slices.DeleteFunc(spec, func(tp kafkax.Topic) bool { return !slices.Contains(topics, tp.Name) })
	plan, err := kafkax.PlanTopics(context.Background(), kadm.NewClient(cl), spec)
	if err != nil || len(spec) != len(topics) || len(plan.Changes) != 0 {
		t.Fatalf("topics differ from the spec: %v %v", plan.Changes, err)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`dialstream_ingest_kafka_produce_bytes_total{node_id="0",topic="dialstream.calls.requested"}`, "dialstream_ingest_calls_accepted_total 1"} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestRunConfigErrors(t *testing.T) {
	err := Run(context.Background(), Config{MaxVariables: 65})
	want := "ingest: DIALSTREAM_REGISTRY: required (path of the workspace/agent registry file)\n" +
		"INGEST_MAX_VARIABLES: must be between 1 and 64 (the call.requested.v1 schema cap), got 65\n" +
		"DATABASE_URL: required (the call records database: postgres://user:pass@host/db or sqlite://path)\n" +
		"KAFKA_BROKERS: required (comma-separated host:port list)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v", err)
	}
}

// One refused produce (a leader moving, say) is retried inside the produce
// timeout: the client sees 202, and the topic holds the call once.
func TestComponentTransientRefusalIsRetried(t *testing.T) {
	e := startBroker(t, 5*time.Second)
	srv := e.serve(t)
	fault := e.broker.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotLeaderForPartition, Count: 1})
	code, _, b := post(t, srv.URL, "", validBody)
	if code != http.StatusAccepted {
		t.Fatalf("%d %s", code, b)
	}
	if fault.Hits() != 1 {
		t.Fatalf("fault hits %d", fault.Hits())
	}
	if recs := readAll(t, e.broker.Addr()); len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
}

// /readyz follows Kafka: ready while the broker answers, not ready once it
// is gone; a POST then gets 503, not a hang.
func TestComponentReadyzFollowsKafka(t *testing.T) {
	e := startBroker(t, time.Second)
	srv := e.serve(t)
	get := func() int {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != 200 {
		t.Fatalf("readyz %d with the broker up", code)
	}
	e.broker.Close()
	testutil.Eventually(t, 10*time.Second, "readyz 503", func() bool { return get() == 503 })
	if code, _, b := post(t, srv.URL, "", validBody); code != 503 {
		t.Fatalf("%d %s", code, b)
	}
}
