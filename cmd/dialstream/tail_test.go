package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/ingest"
	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// runIngest runs ingest.Run on an embedded broker; it returns the API's
// URL and a producer on the broker.
func runIngest(t *testing.T) (string, *kgo.Client) {
	t.Helper()
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sup := compliance.NewTable()
	sup.SetReady()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ingest.Run(ctx, ingest.Config{Listener: ln, Registry: cliRegistry(t), Suppressions: sup, Metrics: prometheus.NewRegistry(),
			DatabaseURL: dbtest.URL(t, callrecords.SQLite),
			Kafka: kafkax.Config{Brokers: []string{b.Addr()}, ClientID: "cli-test", Partitions: 3, ReplicationFactor: -1,
				CreateTopics: true, ProduceTimeout: 5 * time.Second}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingest.Run: %v", err)
		}
	})
	url := "http://" + ln.Addr().String()
	testutil.Eventually(t, 20*time.Second, "ingest ready", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return url, cl
}

// streamsOpen reads ingest's open stream gauge.
func streamsOpen(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "dialstream_ingest_event_streams "); ok {
			return v
		}
	}
	return ""
}

func callEvent(t *testing.T, ev schemas.CallEvent) *kgo.Record {
	t.Helper()
	r, err := schemas.NewRecord(schemas.TopicEvents, ev.CallID, schemas.Meta{ID: schemas.EventID(ev.CallID, ev.Sequence),
		Type: ev.Status.Type(), Source: "/dialstream/dialer", Subject: ev.CallID, Time: ev.OccurredAt}, ev)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tail prints the workspace's events as the dialer writes them, one line
// each (or the API's JSON with --json), and never another workspace's.
func TestTailFollowsEvents(t *testing.T) {
	url, cl := runIngest(t)
	ctx, cancel := context.WithCancel(context.Background())
	text, js, errOut := &testutil.Buffer{}, &testutil.Buffer{}, &testutil.Buffer{}
	done := make(chan error, 2)
	go func() { done <- tailMain(ctx, nil, cliEnv(url), text, errOut) }()
	go func() { done <- tailMain(ctx, []string{"--json"}, cliEnv(url), js, errOut) }()
	testutil.Eventually(t, 10*time.Second, "both tails connected", func() bool { return streamsOpen(t, url) == "2" })

	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ours := "0000000000000000000ca111"
	theirs := "0000000000000000000b0b01"
	ended := schemas.CallEvent{CallID: ours, WorkspaceID: cliWSName, Sequence: 4, Status: schemas.StatusEnded, OccurredAt: at.Add(2500 * time.Millisecond),
		To: "+15550100001", CallAgentID: cliAgent, Outcome: schemas.OutcomeBusy, SIPStatusCode: 486, SIPStatus: "Busy Here", EndedBy: schemas.EndedByCallee,
		Reason: "sip status 486: Busy Here", CampaignID: "0123456789abcdef01234567", ContactID: "c-1", Attempt: 2}
	recs := []*kgo.Record{
		callEvent(t, schemas.CallEvent{CallID: theirs, WorkspaceID: "ws_other", Sequence: 1, Status: schemas.StatusQueued, OccurredAt: at, To: "+15550100002"}),
		callEvent(t, schemas.CallEvent{CallID: ours, WorkspaceID: cliWSName, Sequence: 1, Status: schemas.StatusQueued, OccurredAt: at, To: "+15550100001", CallAgentID: cliAgent}),
		callEvent(t, ended),
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	want := "2026-03-01T10:00:00.000Z  " + ours + "  queued\n" +
		"2026-03-01T10:00:02.500Z  " + ours + "  ended        busy  campaign=0123456789abcdef01234567 contact=c-1 attempt=2\n"
	testutil.EventuallyWhy(t, 10*time.Second, "the events printed", func() (bool, string) { return text.String() == want, text.String() })
	testutil.EventuallyWhy(t, 10*time.Second, "the events as JSON", func() (bool, string) {
		return strings.Count(js.String(), "\n") == 2, js.String()
	})
	var ev ingest.StreamEvent
	last := strings.Split(strings.TrimSpace(js.String()), "\n")[1]
	if err := json.Unmarshal([]byte(last), &ev); err != nil || ev.CallID != ours || ev.SIPStatusCode != 486 || ev.ContactID != "c-1" {
		t.Fatalf("%q: %v", last, err)
	}
	if strings.Contains(text.String()+js.String(), theirs) {
		t.Fatalf("another workspace's call shows:\n%s%s", text.String(), js.String())
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("tail after Ctrl-C: %v", err)
		}
	}
	if errOut.String() != "" {
		t.Fatalf("stderr %q", errOut.String())
	}
}

// When the server ends the stream (a slow client dropped, a restart), tail
// says so and reconnects; a refusal that retrying cannot fix ends it.
func TestTailReconnects(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+cliKey || r.URL.Query().Get("campaign_id") != "0123456789abcdef01234567" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			fmt.Fprint(w, `{"status":"error","message":"invalid API key"}`)
			return
		}
		n := conns.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, ": stream open\n\nid: x-%d\ndata: {\"callId\":\"0000000000000000000ca11%d\",\"id\":\"x\",\"type\":\"t\",\"sequence\":%d,\"status\":\"dialing\",\"occurred_at\":\"2026-03-01T10:00:0%dZ\"}\n\n", n, n, n, n)
		if n == 1 {
			fmt.Fprint(w, "event: close\ndata: {\"reason\":\"slow_consumer\"}\n\n")
			return
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &testutil.Buffer{}, &testutil.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- tailMain(ctx, []string{"--campaign", "0123456789abcdef01234567"}, cliEnv(srv.URL), out, errOut)
	}()
	want := "2026-03-01T10:00:01.000Z  0000000000000000000ca111  dialing\n2026-03-01T10:00:02.000Z  0000000000000000000ca112  dialing\n"
	testutil.EventuallyWhy(t, 10*time.Second, "both connections' events", func() (bool, string) { return out.String() == want, out.String() })
	if errOut.String() != "tail: the server closed the stream: slow_consumer; reconnecting in 1s (events in between are not shown)\n" {
		t.Fatalf("stderr %q", errOut.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	err := tailMain(context.Background(), nil, cliEnv(srv.URL), out, errOut)
	var ae *apiError
	if !errors.As(err, &ae) || err.Error() != "tail: 401: invalid API key" {
		t.Fatalf("%v", err)
	}
}

// A server that takes the connection and never sends the stream's headers
// is given up on after the header timeout, so tail reconnects.
func TestTailHeaderTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(srv.Close)
	cl := &apiClient{base: srv.URL, key: cliKey, workspace: cliWSName, http: streamHTTP(100 * time.Millisecond)}
	var out bytes.Buffer
	tl := tailer{cl: cl, path: "/v1/api/events/stream", out: &out, errOut: &out, idle: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := tl.follow(ctx)
	if got || err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("follow: %v, %v (ctx %v)", got, err, ctx.Err())
	}
}
