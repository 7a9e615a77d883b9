package ingest

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// Tests of GET /v1/api/events/stream on a handler whose reader is fed by
// the test (fakeFeed); events_stream_component_test.go has the real topic.

// fakeFeed stands in for the call events topic: records sent to recs are
// read, in order.
type fakeFeed struct{ recs chan *kgo.Record }

func newFakeFeed() *fakeFeed { return &fakeFeed{recs: make(chan *kgo.Record, 4096)} }

func (f *fakeFeed) open(context.Context) (eventReader, error) { return f, nil }

func (f *fakeFeed) poll(ctx context.Context) ([]*kgo.Record, error) {
	select {
	case r := <-f.recs:
		return []*kgo.Record{r}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *fakeFeed) close() {}

// streamEnv is a handler with a fake feed, served over real HTTP (a stream
// never ends, so a recorder cannot hold it).
func streamEnv(t *testing.T, mod ...func(*Config)) (*testEnv, *fakeFeed, *httptest.Server) {
	t.Helper()
	env := newTestEnv(t, mod...)
	feed := newFakeFeed()
	env.hd.events.feed = feed.open
	srv := httptest.NewServer(env.h)
	t.Cleanup(srv.Close)
	t.Cleanup(env.hd.events.close)
	return env, feed, srv
}

// sseStream is an open stream as a client reads it, line by line.
type sseStream struct {
	code   int
	header http.Header
	body   string // the answer's body when it is not a stream
	lines  chan string
	cancel context.CancelFunc

	mu   sync.Mutex
	read []string // every line read so far
}

// openStream GETs the stream as key/ws; a 200 is read in the background.
func openStream(t *testing.T, base, key, ws, query string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	u := base + "/v1/api/events/stream"
	if query != "" {
		u += "?" + query
	}
	hr, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	hr.Header.Set("Authorization", "Bearer "+key)
	hr.Header.Set("x-workspace-id", ws)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	s := &sseStream{code: resp.StatusCode, header: resp.Header, lines: make(chan string, 1024), cancel: cancel}
	if resp.StatusCode != 200 {
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		resp.Body.Close()
		s.body = b.String()
		close(s.lines)
		return s
	}
	go func() {
		defer close(s.lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.read = append(s.read, sc.Text())
			s.mu.Unlock()
			s.lines <- sc.Text()
		}
	}()
	return s
}

// waitLine reads lines until one contains want, and returns it; it fails
// the test when the stream ends or d passes first.
func (s *sseStream) waitLine(t *testing.T, d time.Duration, want string) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("the stream ended before a line with %q; read %q", want, s.all())
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			t.Fatalf("no line with %q within %s; read %q", want, d, s.all())
		}
	}
}

// ended waits for the server to end the stream.
func (s *sseStream) ended(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case _, ok := <-s.lines:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("the stream did not end within %s; read %q", d, s.all())
		}
	}
}

func (s *sseStream) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.read...)
}

// dataOf decodes a "data: " line.
func dataOf(t *testing.T, line string) StreamEvent {
	t.Helper()
	var ev StreamEvent
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return ev
}

// A stream shows its workspace's call events as they are read, each once,
// with the call's campaign facts, the number masked where the workspace
// masks; another workspace's events never; the scheduler's campaign events
// on the same topic never (they are not StreamEvents); and campaign_id
// narrows it to one campaign.
func TestEventStreamShowsOwnWorkspaceOnly(t *testing.T) {
	_, feed, srv := streamEnv(t)
	demo := openStream(t, srv.URL, demoKey, "ws_demo", "")
	other := openStream(t, srv.URL, otherKey, "ws_other", "")
	masked := openStream(t, srv.URL, maskedKey, "ws_masked", "")
	for _, s := range []*sseStream{demo, other, masked} {
		if s.code != 200 || s.header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
			t.Fatalf("%d %s %s", s.code, s.header, s.body)
		}
		s.waitLine(t, 5*time.Second, ": stream open")
	}
	camp := "0123456789abcdef01234567"
	demoCamp := openStream(t, srv.URL, demoKey, "ws_demo", "campaign_id="+camp)
	demoCamp.waitLine(t, 5*time.Second, ": stream open")

	a := demoCall(1, t0)
	b := fixture{id: "00000000000000000000b0b0", ws: "ws_other", agent: otherAgent, to: "+15550100002", room: otherAgent + "-abcdefghij", at: t0}
	m := fixture{id: "00000000000000000000beef", ws: "ws_masked", agent: "masked_agent", to: "+15550100486", room: "masked_agent-abcdefghij", at: t0}
	ended := a.busy()[3]
	ended.CampaignID, ended.ContactID, ended.Attempt = camp, "c-1", 2
	// The scheduler's campaign event, on the calls' events topic, of ws_demo
	// and of the campaign the demoCamp stream follows.
	campEv, err := schemas.NewRecord(schemas.TopicEvents, camp, schemas.Meta{
		ID: schemas.CampaignEventID(camp, 1), Type: schemas.CampaignEventStarted.Type(), Source: "/dialstream/scheduler",
		Subject: camp, Time: t0}, schemas.CampaignEventData{CampaignID: camp, WorkspaceID: "ws_demo", Sequence: 1,
		Event: schemas.CampaignEventStarted, Status: schemas.CampaignRunning, OccurredAt: t0, Name: "renewals", CallAgentID: demoAgent,
		Counters: schemas.CampaignCounters{ByState: map[schemas.ContactStatus]int{}, ByOutcome: map[schemas.Outcome]int{}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range append(eventRecords(t, append(a.dialing(), ended)), campEv, eventRecord(t, b.event(1, schemas.StatusQueued, t0)), eventRecord(t, m.event(1, schemas.StatusQueued, t0))) {
		feed.recs <- r
	}

	got := []StreamEvent{dataOf(t, demo.waitLine(t, 5*time.Second, "data: ")), dataOf(t, demo.waitLine(t, 5*time.Second, "data: ")),
		dataOf(t, demo.waitLine(t, 5*time.Second, "data: "))}
	for i, want := range []struct {
		seq    int
		status schemas.Status
	}{{1, schemas.StatusQueued}, {2, schemas.StatusDialing}, {4, schemas.StatusEnded}} {
		if got[i].CallID != a.id || got[i].Sequence != want.seq || got[i].Status != want.status || got[i].ID != schemas.EventID(a.id, want.seq) {
			t.Fatalf("event %d: %+v", i, got[i])
		}
	}
	end := got[2]
	if end.Outcome != schemas.OutcomeBusy || end.SIPStatusCode != 486 || end.Type != "dialstream.call.ended.v1" || end.To != a.to ||
		end.CallAgentID != demoAgent || end.CampaignID != camp || end.ContactID != "c-1" || end.Attempt != 2 {
		t.Fatalf("ended: %+v", end)
	}
	if l := other.waitLine(t, 5*time.Second, "data: "); dataOf(t, l).CallID != b.id {
		t.Fatalf("ws_other got %s", l)
	}
	if ev := dataOf(t, masked.waitLine(t, 5*time.Second, "data: ")); ev.To != "********0486" {
		t.Fatalf("masked workspace: to %q", ev.To)
	}
	if ev := dataOf(t, demoCamp.waitLine(t, 5*time.Second, "data: ")); ev.Sequence != 4 || ev.CampaignID != camp {
		t.Fatalf("campaign stream: %+v", ev)
	}
	// A last marker event for every stream: one reader hands records out in
	// order, so once a stream shows its marker, anything leaked to it
	// earlier has been read too.
	marker := demoCall(2, t0).event(1, schemas.StatusQueued, t0)
	marker.CampaignID, marker.ContactID, marker.Attempt = camp, "c-2", 1
	for _, r := range []*kgo.Record{eventRecord(t, marker), eventRecord(t, b.event(2, schemas.StatusDialing, t0)), eventRecord(t, m.event(2, schemas.StatusDialing, t0))} {
		feed.recs <- r
	}
	demo.waitLine(t, 5*time.Second, `"callId":"`+marker.CallID+`"`)
	demoCamp.waitLine(t, 5*time.Second, `"callId":"`+marker.CallID+`"`)
	other.waitLine(t, 5*time.Second, `"sequence":2`)
	masked.waitLine(t, 5*time.Second, `"sequence":2`)
	for name, s := range map[string]*sseStream{"ws_demo": demo, "ws_other": other, "ws_masked": masked, "ws_demo campaign": demoCamp} {
		var events []string
		for _, l := range s.all() {
			if strings.HasPrefix(l, "data: ") {
				events = append(events, l)
			}
		}
		want := map[string]int{"ws_demo": 4, "ws_other": 2, "ws_masked": 2, "ws_demo campaign": 2}[name]
		if len(events) != want {
			t.Errorf("%s: %d events, want %d: %q", name, len(events), want, events)
		}
		for _, l := range events {
			ws, ok := map[string]string{a.id: "ws_demo", marker.CallID: "ws_demo", b.id: "ws_other", m.id: "ws_masked"}[dataOf(t, l).CallID]
			if !ok || !strings.HasPrefix(name, ws) {
				t.Errorf("%s's stream shows an event not its own: %s", name, l)
			}
		}
	}
}

// Past INGEST_EVENT_STREAMS_PER_WORKSPACE streams of one workspace on a
// replica, a new one is a 429 with Retry-After; another workspace is not
// affected, and a stream that closes frees its slot.
func TestEventStreamCap(t *testing.T) {
	env, _, srv := streamEnv(t, func(c *Config) { c.EventStreamsPerWorkspace = 2 })
	first := openStream(t, srv.URL, demoKey, "ws_demo", "")
	second := openStream(t, srv.URL, demoKey, "ws_demo", "")
	for _, s := range []*sseStream{first, second} {
		s.waitLine(t, 5*time.Second, ": stream open")
	}
	third := openStream(t, srv.URL, demoKey, "ws_demo", "")
	if third.code != 429 || third.header.Get("Retry-After") != "5" ||
		!strings.Contains(third.body, "workspace ws_demo has its limit of 2 event streams open on this server") {
		t.Fatalf("third stream: %d %s %s", third.code, third.header, third.body)
	}
	openStream(t, srv.URL, otherKey, "ws_other", "").waitLine(t, 5*time.Second, ": stream open")
	first.cancel()
	testutil.Eventually(t, 5*time.Second, "the closed stream's slot freed", func() bool { return env.hd.events.streams() == 2 })
	openStream(t, srv.URL, demoKey, "ws_demo", "").waitLine(t, 5*time.Second, ": stream open")
	_, m := env.get(t, "/metrics")
	assertContains(t, m, "dialstream_ingest_event_streams 3", `dialstream_ingest_requests_total{code="429",route="/v1/api/events/stream"} 1`)
}

// Past INGEST_EVENT_STREAMS_MAX streams on a replica, of all workspaces
// together, a new one is a 503 with Retry-After, even for a workspace below
// its own cap; a stream that closes frees its slot.
func TestEventStreamReplicaCap(t *testing.T) {
	env, _, srv := streamEnv(t, func(c *Config) { c.EventStreamsPerWorkspace = 2; c.EventStreamsMax = 3 })
	first := openStream(t, srv.URL, demoKey, "ws_demo", "")
	for _, s := range []*sseStream{first, openStream(t, srv.URL, demoKey, "ws_demo", ""), openStream(t, srv.URL, otherKey, "ws_other", "")} {
		s.waitLine(t, 5*time.Second, ": stream open")
	}
	full := openStream(t, srv.URL, maskedKey, "ws_masked", "")
	if full.code != 503 || full.header.Get("Retry-After") != "5" ||
		!strings.Contains(full.body, "this server has its limit of 3 event streams open; retry after 5s") {
		t.Fatalf("fourth stream: %d %s %s", full.code, full.header, full.body)
	}
	first.cancel()
	testutil.Eventually(t, 5*time.Second, "the closed stream's slot freed", func() bool { return env.hd.events.streams() == 2 })
	openStream(t, srv.URL, maskedKey, "ws_masked", "").waitLine(t, 5*time.Second, ": stream open")
}

// A client that stops reading is dropped once streamQueue events wait for
// it, and told why; the reader never waits for it, so a stream that keeps
// up gets every event.
func TestEventStreamDropsSlowClient(t *testing.T) {
	env := newTestEnv(t)
	hub := env.hd.events
	feed := newFakeFeed()
	hub.feed = feed.open
	t.Cleanup(hub.close)
	slow, err := hub.subscribe(context.Background(), "ws_demo", "")
	if err != nil {
		t.Fatal(err)
	}
	fast, err := hub.subscribe(context.Background(), "ws_demo", "")
	if err != nil {
		t.Fatal(err)
	}
	f := demoCall(1, t0)
	got := 0
	for seq := 1; seq <= streamQueue+1; seq++ {
		feed.recs <- eventRecord(t, f.event(seq, schemas.StatusQueued, t0))
		select {
		case <-fast.frames:
			got++
		case <-time.After(5 * time.Second):
			t.Fatalf("the reading stream got %d events, then none", got)
		}
	}
	select {
	case <-slow.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow stream was not dropped")
	}
	if slow.why != closeSlow || len(slow.frames) != streamQueue || hub.streams() != 1 {
		t.Fatalf("why %q, %d frames held, %d streams", slow.why, len(slow.frames), hub.streams())
	}
	_, m := env.get(t, "/metrics")
	assertContains(t, m, "dialstream_ingest_event_streams_dropped_total 1")
}

// A stream outlives the HTTP server's read and write timeouts (heartbeats
// keep arriving long after both passed), and the server's shutdown ends it
// with a close message instead of waiting for it.
func TestEventStreamOutlivesServerTimeouts(t *testing.T) {
	env := newTestEnv(t)
	feed := newFakeFeed()
	env.hd.events.feed = feed.open
	env.hd.events.heartbeat = 50 * time.Millisecond
	srv := httptest.NewUnstartedServer(env.h)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	s := openStream(t, srv.URL, demoKey, "ws_demo", "")
	s.waitLine(t, 5*time.Second, ": stream open")
	start := time.Now()
	for time.Since(start) < time.Second {
		s.waitLine(t, time.Second, ": heartbeat")
	}
	feed.recs <- eventRecord(t, demoCall(1, t0).event(1, schemas.StatusQueued, t0))
	s.waitLine(t, 5*time.Second, `"status":"queued"`)

	env.hd.events.close()
	s.waitLine(t, 5*time.Second, "event: close")
	if l := s.waitLine(t, 5*time.Second, "data: "); l != `data: {"reason":"shutdown"}` {
		t.Fatalf("close data %q", l)
	}
	s.ended(t, 5*time.Second)
	if again := openStream(t, srv.URL, demoKey, "ws_demo", ""); again.code != 503 || again.header.Get("Retry-After") != "1" {
		t.Fatalf("a stream opened after shutdown: %d %s", again.code, again.body)
	}
}

// campaign_id must be a campaign id, and no other parameter is known.
func TestEventStreamQuery(t *testing.T) {
	_, _, srv := streamEnv(t)
	for q, want := range map[string]string{
		"campaign_id=nope": "invalid query parameter campaign_id: must be a campaign id: 24 lowercase hex",
		"since=1":          "invalid query parameter since: unknown query parameter; the parameters are campaign_id",
	} {
		s := openStream(t, srv.URL, demoKey, "ws_demo", q)
		if s.code != 400 || !strings.Contains(s.body, want) {
			t.Errorf("%s: %d %s", q, s.code, s.body)
		}
	}
}

// checkStreamContract is TestOpenAPIContract's part for the event stream:
// a real stream's answer, its message's data against StreamEvent, and every
// refusal.
func checkStreamContract(c *contract) {
	t := c.t
	const (
		pStream = "/v1/api/events/stream"
		camp    = "0123456789abcdef01234567"
	)
	get := func(path string) req { return req{method: "GET", path: path, contentType: "-"} }
	env, feed, srv := streamEnv(t, func(c *Config) { c.EventStreamsPerWorkspace = 1 })
	s := openStream(t, srv.URL, demoKey, "ws_demo", "campaign_id="+camp)
	s.waitLine(t, 5*time.Second, ": stream open")
	ev := demoCall(1, t0).busy()[3]
	ev.CampaignID, ev.ContactID, ev.Attempt = camp, "c-1", 1
	feed.recs <- eventRecord(t, ev)
	line := s.waitLine(t, 5*time.Second, "data: ")
	c.validate(pStream, get(pStream+"?campaign_id="+camp), s.code, s.header, []byte(strings.Join(s.all(), "\n")+"\n"))
	var v any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &v); err != nil {
		t.Fatal(err)
	}
	if err := c.doc.Components.Schemas["StreamEvent"].Value.VisitJSON(v); err != nil {
		t.Errorf("%s is not a StreamEvent: %v", line, err)
	}

	noWS := func(r req) req { r.workspace = "-"; return r }
	noAuth := func(r req) req { r.key = "-"; return r }
	wrongWS := func(r req) req { r.workspace = "ws_other"; return r }
	c.check(env, pStream, get(pStream), 429) // its one stream is open
	c.check(env, pStream, get(pStream+"?campaign_id=x"), 400)
	c.check(env, pStream, noWS(get(pStream)), 400)
	c.check(env, pStream, noAuth(get(pStream)), 401)
	c.check(env, pStream, wrongWS(get(pStream)), 403)
	c.check(newTestEnv(t), pStream, get(pStream), 503) // no Kafka to read
}
