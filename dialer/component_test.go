package dialer

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// Component tests: the dialer against the embedded broker and a fake LiveKit.

const componentRegistryYAML = testRegistryYAML + `
  - {id: agent_quick, workspace: ws_b, livekit_agent_name: agent-quick, sip_trunk_id: ST_q, ringing_timeout: 1s, max_call_duration: 1m}
`

type component struct {
	t    *testing.T
	b    *kafkax.Broker
	lk   *fakeLiveKit
	cfg  Config
	log  *kafkaLog
	prod *kgo.Client
	d    *runningDialer
}

func newComponent(t *testing.T, mod func(*Config)) *component {
	b := startBroker(t, 3)
	lk := newFakeLiveKit()
	cfg := testConfig(t, b.Addr(), testRegistry(t, componentRegistryYAML))
	cfg.liveKit = lk
	if mod != nil {
		mod(&cfg)
	}
	c := &component{t: t, b: b, lk: lk, cfg: cfg}
	c.d = startDialer(t, cfg)
	c.log = collect(t, b.Addr())
	c.prod = newProducer(t, b.Addr())
	return c
}

func (c *component) request(ws, agent, to string) string {
	id := newCallID()
	produce(c.t, c.prod, requestRecord(c.t, schemas.CallRequested{CallID: id, WorkspaceID: ws, CallAgentID: agent, To: to}))
	return id
}

func (c *component) waitEnded(ids ...string) {
	c.t.Helper()
	testutil.Eventually(c.t, 20*time.Second, fmt.Sprintf("%d calls ended", len(ids)), func() bool {
		for _, id := range ids {
			if c.log.ended(c.t, id) == nil {
				return false
			}
		}
		return true
	})
}

func (c *component) waitStatus(id string, s schemas.Status) {
	c.t.Helper()
	testutil.Eventually(c.t, 20*time.Second, fmt.Sprintf("call %s %s", id, s), func() bool {
		for _, ev := range c.log.callEvents(c.t, id) {
			if ev.Status == s {
				return true
			}
		}
		return false
	})
}

// The same call id requested twice (and again after it ended) is dialed once.
func TestDuplicateRequestDialsOnce(t *testing.T) {
	c := newComponent(t, nil)
	id := newCallID()
	req := schemas.CallRequested{CallID: id, WorkspaceID: "ws_a", CallAgentID: "agent_a", To: "+15550100486"}
	produce(t, c.prod, requestRecord(t, req), requestRecord(t, req))
	c.waitEnded(id)
	produce(t, c.prod, requestRecord(t, req))
	testutil.Eventually(t, 10*time.Second, "three duplicates... two counted", func() bool {
		return c.d.metric("dialstream_dialer_duplicate_requests_total") == 2
	})
	if n := c.lk.dialsTo(roomNameFor("agent_a", id)); n != 1 {
		t.Fatalf("dialed %d times", n)
	}
	checkLifecycle(t, c.log.callEvents(t, id), schemas.OutcomeBusy)
}

// Poison records from a direct producer go to the DLQ with the reason and
// become rejected calls; the partition moves on and dials the next request.
func TestPoisonRecords(t *testing.T) {
	c := newComponent(t, nil)
	manual := newProducer(t, c.b.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	hdrs := func(typ string) []kgo.RecordHeader {
		return []kgo.RecordHeader{{Key: schemas.HeaderSpecVersion, Value: []byte("1.0")}, {Key: schemas.HeaderID, Value: []byte(newCallID())},
			{Key: schemas.HeaderType, Value: []byte(typ)}, {Key: schemas.HeaderSource, Value: []byte("/direct")},
			{Key: schemas.HeaderContentType, Value: []byte("application/json")}}
	}
	body := func(m map[string]any) []byte { b, _ := json.Marshal(m); return b }
	valid := func(id, ws, agent string) map[string]any {
		return map[string]any{"call_id": id, "workspace_id": ws, "call_agent_id": agent, "to": "+15550100486",
			"requested_at": time.Now().UTC().Format(time.RFC3339), "callback_url": "https://example.com/cb", "metadata": map[string]any{"k": 1}}
	}
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = newCallID()
	}
	missingTo := valid(ids[1], "ws_a", "agent_a")
	delete(missingTo, "to")
	cases := []struct {
		rec   *kgo.Record
		class string
		ws    string
	}{
		{&kgo.Record{Key: []byte(ids[0]), Value: []byte(`{"call_id": "` + ids[0] + `", oops`), Headers: hdrs(schemas.TypeCallRequested)}, classSchema, "unknown"},
		{&kgo.Record{Key: []byte(ids[1]), Value: body(missingTo), Headers: hdrs(schemas.TypeCallRequested)}, classSchema, "ws_a"},
		{&kgo.Record{Key: []byte(ids[2]), Value: body(valid(ids[2], "ws_a", "no_such_agent")), Headers: hdrs(schemas.TypeCallRequested)}, classUnknownAgent, "ws_a"},
		{&kgo.Record{Key: []byte(ids[3]), Value: body(valid(ids[3], "ws_a", "agent_b")), Headers: hdrs(schemas.TypeCallRequested)}, classUnknownAgent, "ws_a"},
		{&kgo.Record{Key: []byte(ids[4]), Value: body(valid(ids[4], "ws_a", "agent_a"))}, classHeaders, "ws_a"},
		{&kgo.Record{Key: []byte(ids[5]), Value: body(valid(ids[5], "ws_nope", "agent_a")), Headers: hdrs(schemas.TypeCallRequested)}, classUnknownWorkspace, "unknown"},
		{&kgo.Record{Key: []byte("not-the-call-id"), Value: body(valid(ids[6], "ws_a", "agent_a")), Headers: hdrs(schemas.TypeCallRequested)}, classKey, "ws_a"},
		{&kgo.Record{Value: []byte("\x00\x01garbage")}, classHeaders, "unknown"},
	}
	for _, cs := range cases {
		cs.rec.Topic, cs.rec.Partition = schemas.TopicRequested, 0
		produce(t, manual, cs.rec)
	}
	// The last one names no call: its id is derived from where it sits.
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%d", schemas.TopicRequested, 0, cases[7].rec.Offset))
	ids[7] = hex.EncodeToString(sum[:12])

	good := newCallID()
	rec := requestRecord(t, schemas.CallRequested{CallID: good, WorkspaceID: "ws_a", CallAgentID: "agent_a", To: "+15550100486"})
	rec.Partition = 0
	produce(t, manual, rec)

	c.waitEnded(append([]string{good}, ids...)...)
	checkLifecycle(t, c.log.callEvents(t, good), schemas.OutcomeBusy)
	if n := c.lk.dialsTo(roomNameFor("agent_a", good)); n != 1 {
		t.Fatalf("valid call after the poison dialed %d times", n)
	}
	for i, cs := range cases {
		evs := c.log.callEvents(t, ids[i])
		if len(evs) != 1 || evs[0].Outcome != schemas.OutcomeRejected || evs[0].Sequence != 1 || evs[0].Reason == "" {
			t.Fatalf("case %d (%s): events %+v", i, cs.class, evs)
		}
		if evs[0].WorkspaceID != cs.ws {
			t.Errorf("case %d: workspace %q, want %q", i, evs[0].WorkspaceID, cs.ws)
		}
		if c.lk.dialsTo(roomNameFor("agent_a", ids[i])) != 0 {
			t.Fatalf("case %d was dialed", i)
		}
	}
	if ev := c.log.ended(t, ids[2]); len(ev.Errors) == 0 || ev.Errors[0].Field != "/call_agent_id" || ev.CallbackURL == "" {
		t.Fatalf("unknown agent rejection: %+v", ev)
	}
	testutil.Eventually(t, 10*time.Second, "8 DLQ records", func() bool { return len(c.log.dlqRecords()) == len(cases) })
	for i, r := range c.log.dlqRecords() {
		if got := kafkax.Header(r, kafkax.HeaderDLQErrorClass); got != cases[i].class {
			t.Errorf("DLQ record %d: class %q, want %q", i, got, cases[i].class)
		}
		if kafkax.Header(r, kafkax.HeaderDLQError) == "" || kafkax.Header(r, kafkax.HeaderDLQSourceTopic) != schemas.TopicRequested ||
			kafkax.Header(r, kafkax.HeaderDLQSourceOffset) != fmt.Sprint(cases[i].rec.Offset) || !bytes.Equal(r.Value, cases[i].rec.Value) {
			t.Errorf("DLQ record %d lacks its reason or source: %v", i, r.Headers)
		}
	}
}

func signedWebhook(t *testing.T, url, key, secret string, ev *livekit.WebhookEvent) *http.Response {
	t.Helper()
	body, err := protojson.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/webhook+json")
	if key != "" {
		sum := sha256.Sum256(body)
		tok, err := auth.NewAccessToken(key, secret).SetValidFor(time.Minute).SetSha256(base64.StdEncoding.EncodeToString(sum[:])).ToJWT()
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// Forged and unsigned webhooks are refused and change nothing; a signed one
// about the callee leaving ends the call.
func TestWebhookAuthentication(t *testing.T) {
	c := newComponent(t, nil)
	id := c.request("ws_a", "agent_a", "+15550100999")
	c.waitStatus(id, schemas.StatusAnswered)
	room := roomNameFor("agent_a", id)
	meta, _ := json.Marshal(roomMetadata{CallID: id, WorkspaceID: "ws_a", CallAgentID: "agent_a"})
	left := &livekit.WebhookEvent{Event: "participant_left", Id: "EV_1", CreatedAt: time.Now().Unix(),
		Room: &livekit.Room{Name: room, Metadata: string(meta)},
		Participant: &livekit.ParticipantInfo{Identity: calleeIdentity(id), Kind: livekit.ParticipantInfo_SIP,
			DisconnectReason: livekit.DisconnectReason_CLIENT_INITIATED}}
	url := "http://" + c.d.addr + webhookPath

	if r := signedWebhook(t, url, "", "", left); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned: %d", r.StatusCode)
	}
	if r := signedWebhook(t, url, testAPIKey, "not-the-secret-0123456789abcdefghij", left); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged: %d", r.StatusCode)
	}
	if r := signedWebhook(t, url, "otherkey", testAPISecret, left); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown key: %d", r.StatusCode)
	}
	other := &livekit.WebhookEvent{Event: "room_finished", Room: &livekit.Room{Name: "someone-elses-room"}}
	if r := signedWebhook(t, url, testAPIKey, testAPISecret, other); r.StatusCode != http.StatusOK {
		t.Fatalf("foreign room: %d", r.StatusCode)
	}
	if n := c.log.commandsOfType(TypeLiveKitEvent); n != 0 {
		t.Fatalf("refused webhooks produced %d commands", n)
	}
	if ev := c.log.ended(t, id); ev != nil {
		t.Fatalf("a refused webhook ended the call: %+v", ev)
	}
	if got := c.d.metric("dialstream_dialer_livekit_webhooks_total", "result", whUnauthorized); got != 3 {
		t.Fatalf("unauthorized webhooks counted %v", got)
	}

	if r := signedWebhook(t, url, testAPIKey, testAPISecret, left); r.StatusCode != http.StatusOK {
		t.Fatalf("signed: %d", r.StatusCode)
	}
	if n := c.log.commandsOfType(TypeLiveKitEvent); n != 1 {
		// The command is acked before the 200; the collector may lag.
		testutil.Eventually(t, 5*time.Second, "the webhook's command", func() bool { return c.log.commandsOfType(TypeLiveKitEvent) == 1 })
	}
	c.waitEnded(id)
	evs := c.log.callEvents(t, id)
	checkLifecycle(t, evs, schemas.OutcomeCompleted)
	if end := evs[len(evs)-1]; end.EndedBy != schemas.EndedByCallee || end.TalkDurationSeconds == nil {
		t.Fatalf("ended %+v", end)
	}
}

// With max concurrency 2, a burst of 10 never has more than 2 live calls,
// and a call of a second workspace is not delayed by the first's queue.
func TestAdmissionLimits(t *testing.T) {
	c := newComponent(t, nil)
	// Rings long enough that ws_a's queue (5 waves of 2) lasts about 2s,
	// far above the bound asserted for ws_b's wait even on a loaded machine.
	c.lk.ringFor = 400 * time.Millisecond
	var ids []string
	for range 10 {
		ids = append(ids, c.request("ws_a", "agent_a", "+15550100777"))
	}
	other := c.request("ws_b", "agent_b", "+15550100777")
	c.waitEnded(append(ids, other)...)

	type span struct{ from, to time.Time }
	var spans []span
	for _, id := range ids {
		evs := c.log.callEvents(t, id)
		checkLifecycle(t, evs, schemas.OutcomeBusy)
		spans = append(spans, span{evs[1].OccurredAt, evs[len(evs)-1].OccurredAt})
	}
	for _, s := range spans {
		live := 0
		for _, o := range spans {
			if !o.from.After(s.from) && o.to.After(s.from) {
				live++
			}
		}
		if live > 2 {
			t.Fatalf("%d calls of ws_a live at %s", live, s.from)
		}
	}
	evs := c.log.callEvents(t, other)
	checkLifecycle(t, evs, schemas.OutcomeBusy)
	if wait := evs[1].OccurredAt.Sub(evs[0].OccurredAt); wait > time.Second {
		t.Fatalf("ws_b's call waited %s for admission behind ws_a's queue", wait)
	}
	// The limit was exercised, not just never reached: some of ws_a's calls
	// waited in the queue for a slot (a ring of 400ms each). How long the
	// last one waited depends on how fast the burst was produced, so only
	// the longest wait is asserted.
	var longest time.Duration
	for _, id := range ids {
		evs := c.log.callEvents(t, id)
		longest = max(longest, evs[1].OccurredAt.Sub(evs[0].OccurredAt))
	}
	if longest < 300*time.Millisecond {
		t.Fatalf("no call of ws_a waited for admission (longest wait %s): the limit was never reached", longest)
	}
}

// A queued call canceled is never dialed; an answered call canceled is hung
// up. A cancel from another workspace changes nothing.
func TestCancelComponent(t *testing.T) {
	c := newComponent(t, nil)
	a1 := c.request("ws_a", "agent_a", "+15550100999")
	a2 := c.request("ws_a", "agent_a", "+15550100999")
	c.waitStatus(a1, schemas.StatusAnswered)
	c.waitStatus(a2, schemas.StatusAnswered)
	q := c.request("ws_a", "agent_a", "+15550100999") // max 2 live: waits
	c.waitStatus(q, schemas.StatusQueued)
	produce(t, c.prod, cancelRecord(t, q, "ws_a"))
	c.waitEnded(q)
	checkLifecycle(t, c.log.callEvents(t, q), schemas.OutcomeCanceled)
	if n := c.lk.dialsTo(roomNameFor("agent_a", q)); n != 0 {
		t.Fatalf("canceled queued call dialed %d times", n)
	}

	produce(t, c.prod, cancelRecord(t, a1, "ws_b"))
	produce(t, c.prod, cancelRecord(t, a1, "ws_a"))
	c.waitEnded(a1)
	evs := c.log.callEvents(t, a1)
	checkLifecycle(t, evs, schemas.OutcomeCanceled)
	if end := evs[len(evs)-1]; end.EndedBy != schemas.EndedByClient || end.TalkDurationSeconds == nil {
		t.Fatalf("ended %+v", end)
	}
	testutil.Eventually(t, 5*time.Second, "the canceled call's room deleted", func() bool { return c.lk.deletes(roomNameFor("agent_a", a1)) > 0 })
	if got := c.d.metric("dialstream_dialer_commands_ignored_total", "reason", string(ignoreWrongWorkspace)); got != 1 {
		t.Fatalf("wrong-workspace cancels ignored: %v", got)
	}
}

// Past DIALER_MAX_QUEUED_PER_PARTITION the partition's later requests are
// deferred and replayed once the queue drains: every call is still queued
// once, dialed once and ended once.
func TestAdmissionOverflow(t *testing.T) {
	c := newComponent(t, func(cfg *Config) { cfg.MaxQueuedPerPartition = 3 })
	c.lk.ringFor = 100 * time.Millisecond
	manual := newProducer(t, c.b.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var ids []string
	for i := range 11 {
		ws, agent := "ws_a", "agent_a"
		if i == 10 {
			ws, agent = "ws_b", "agent_b"
		}
		id := newCallID()
		rec := requestRecord(t, schemas.CallRequested{CallID: id, WorkspaceID: ws, CallAgentID: agent, To: "+15550100777"})
		rec.Partition = 1
		produce(t, manual, rec)
		ids = append(ids, id)
	}
	// A cancel for a deferred call must still find it after the replay.
	produce(t, manual, func() *kgo.Record { r := cancelRecord(t, ids[9], "ws_a"); r.Partition = 1; return r }())
	c.waitEnded(ids...)
	for i, id := range ids {
		agent := "agent_a"
		if i == 10 {
			agent = "agent_b"
		}
		// Call 9 waits behind nine calls of ws_a (two at a time, each ringing
		// 100ms) while its cancel is produced right after it: it ends
		// canceled, never dialed.
		want, dials := schemas.OutcomeBusy, 1
		if i == 9 {
			want, dials = schemas.OutcomeCanceled, 0
		}
		checkLifecycle(t, c.log.callEvents(t, id), want)
		if n := c.lk.dialsTo(roomNameFor(agent, id)); n != dials {
			t.Fatalf("call %d dialed %d times, want %d", i, n, dials)
		}
	}
	if c.d.metric("dialstream_dialer_admission_overflows_total") == 0 {
		t.Fatal("the queue bound was never reached")
	}
}

// A dial whose dialer stopped mid-ring is never dialed again: after the
// ringing timeout + grace the next dialer asks LiveKit, finds no callee,
// deletes the room and ends the call failed.
func TestInDoubtDialIsNotRedialed(t *testing.T) {
	c := newComponent(t, func(cfg *Config) { cfg.DrainTimeout = 0 })
	id := c.request("ws_b", "agent_quick", "+15550100480")
	room := roomNameFor("agent_quick", id)
	testutil.Eventually(t, 10*time.Second, "the dial", func() bool { return c.lk.dialsTo(room) == 1 })
	c.d.stop(t)
	d2 := startDialer(t, c.cfg)
	c.waitEnded(id)
	evs := c.log.callEvents(t, id)
	checkLifecycle(t, evs, schemas.OutcomeFailed)
	if end := evs[len(evs)-1]; end.Reason != inDoubtReason {
		t.Fatalf("ended %+v", end)
	}
	if n := c.lk.dialsTo(room); n != 1 {
		t.Fatalf("redialed: %d dials", n)
	}
	if c.lk.deletes(room) == 0 {
		t.Fatal("the in-doubt call's room was not deleted")
	}
	if d2.metric("dialstream_dialer_in_doubt_dials_total", "resolution", "failed") != 1 {
		t.Fatal("in-doubt resolution not counted")
	}
}

// A dial whose dialer stopped while the callee answered is adopted as
// answered; when LiveKit later no longer has the callee and no webhook said
// so, the room check ends it.
func TestInDoubtDialAnsweredIsAdopted(t *testing.T) {
	c := newComponent(t, func(cfg *Config) { cfg.DrainTimeout = 0 })
	id := c.request("ws_b", "agent_quick", "+15550100480")
	room := roomNameFor("agent_quick", id)
	testutil.Eventually(t, 10*time.Second, "the dial", func() bool { return c.lk.dialsTo(room) == 1 })
	c.d.stop(t)
	c.checkAdopted(id, room, func() { startDialer(t, c.cfg) })
}

// checkAdopted puts id's callee in its room, its SIP call active, then runs
// resume (what lets the dialer ask LiveKit again), and checks that the call
// is adopted as answered, completes once LiveKit no longer has the callee,
// and was dialed once.
func (c *component) checkAdopted(id, room string, resume func()) {
	c.t.Helper()
	c.lk.mu.Lock()
	c.lk.participants[room] = []*livekit.ParticipantInfo{{Identity: calleeIdentity(id), Kind: livekit.ParticipantInfo_SIP,
		Attributes: map[string]string{livekit.AttrSIPCallStatus: "active"}}}
	c.lk.mu.Unlock()
	resume()
	c.waitStatus(id, schemas.StatusAnswered)
	c.lk.mu.Lock()
	delete(c.lk.participants, room)
	c.lk.mu.Unlock()
	c.waitEnded(id)
	checkLifecycle(c.t, c.log.callEvents(c.t, id), schemas.OutcomeCompleted)
	if n := c.lk.dialsTo(room); n != 1 {
		c.t.Fatalf("dialed %d times, want once", n)
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{MaxQueuedPerPartition: 0}.Validate()
	if err == nil {
		t.Fatal("empty config accepted")
	}
	for _, want := range []string{"KAFKA_BROKERS", "DIALSTREAM_REGISTRY", "LIVEKIT_URL", "LIVEKIT_API_KEY", "DIALER_MAX_QUEUED_PER_PARTITION", "DIALER_WATCHDOG_INTERVAL"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

// shortWindow makes a claim's window (ringing + dial overhead + clock
// margin) a couple of seconds, so a claim that never sent its dial is
// dialed again within a test.
func shortWindow(cfg *Config) {
	cfg.dialOverhead, cfg.clockMargin = 500*time.Millisecond, 300*time.Millisecond
}

// A dial starts only after the group confirms this process still owns the
// partition. When the coordinator refuses (the member's session is gone),
// the call keeps its durable claim and is not dialed. That claim rang
// nothing: it is not ended in doubt, it is dialed once under a new claim
// when its window has passed, and ends as the phone answers.
func TestFenceRefusalDialsOnceUnderANewClaim(t *testing.T) {
	c := newComponent(t, shortWindow)
	var refuse atomic.Bool
	refuse.Store(true)
	c.b.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.b.KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.UnknownMemberID.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	id := c.request("ws_b", "agent_quick", "+15550100486")
	c.waitStatus(id, schemas.StatusDialing)
	testutil.Eventually(t, 5*time.Second, "the fence refusal", func() bool { return c.d.metric("dialstream_dialer_fence_failures_total") == 1 })
	if n := c.lk.totalDials(); n != 0 {
		t.Fatalf("dialed %d times without the fence", n)
	}
	refuse.Store(false)
	c.waitEnded(id)
	evs := c.log.callEvents(t, id)
	checkLifecycle(t, evs, schemas.OutcomeBusy)
	if n := c.lk.totalDials(); n != 1 {
		t.Fatalf("dialed %d times, want once", n)
	}
	if got := c.d.metric("dialstream_dialer_in_doubt_dials_total", "resolution", "redialed"); got != 1 {
		t.Fatalf("in_doubt_dials_total{redialed} = %v, want 1", got)
	}
}

// The crash variant: the dialer stops for good between the durable claim
// and the dial (here, while LiveKit holds its room creation). The next
// dialer finds a claim with no sending record and dials the call once.
func TestStopBetweenClaimAndDialDialsOnce(t *testing.T) {
	c := newComponent(t, func(cfg *Config) { shortWindow(cfg); cfg.DrainTimeout = 0 })
	c.lk.holdRooms(true)
	id := c.request("ws_b", "agent_quick", "+15550100486")
	c.waitStatus(id, schemas.StatusDialing)
	testutil.Eventually(t, 5*time.Second, "the dial held at CreateRoom", func() bool { return c.lk.roomsHeld() == 1 })
	c.d.stop(t)
	c.lk.holdRooms(false)
	cfg := c.cfg
	cfg.HTTPAddr = freeAddr(t)
	c.d = startDialer(t, cfg)
	c.waitEnded(id)
	checkLifecycle(t, c.log.callEvents(t, id), schemas.OutcomeBusy)
	if n := c.lk.totalDials(); n != 1 {
		t.Fatalf("dialed %d times, want once", n)
	}
}

// LiveKit unreachable before the SIP request rang nothing: the call waits,
// is dialed once LiveKit is back, and ends as the phone answers.
func TestLiveKitDownBeforeTheDialWaits(t *testing.T) {
	c := newComponent(t, shortWindow)
	c.lk.setDown(true)
	id := c.request("ws_b", "agent_quick", "+15550100486")
	c.waitStatus(id, schemas.StatusDialing)
	testutil.Eventually(t, 10*time.Second, "a second claim while LiveKit is down", func() bool {
		return c.d.metric("dialstream_dialer_in_doubt_dials_total", "resolution", "redialed") >= 1
	})
	if ev := c.log.ended(t, id); ev != nil {
		t.Fatalf("the call ended while LiveKit was down: %+v", ev)
	}
	c.lk.setDown(false)
	c.waitEnded(id)
	checkLifecycle(t, c.log.callEvents(t, id), schemas.OutcomeBusy)
	if n := c.lk.totalDials(); n != 1 {
		t.Fatalf("dialed %d times, want once", n)
	}
}

// A dial whose connection to LiveKit breaks after the request was sent
// (LiveKit died while the phone rang) is not a failed call: it may have
// rung. The dial asks LiveKit again until LiveKit answers, the call ending
// neither failed nor twice meanwhile; LiveKit, back, has no callee, so the
// room is deleted and the call ends in doubt. It is never dialed again.
func TestLiveKitLostDuringTheDial(t *testing.T) {
	c, id, room := lostDial(t)
	testutil.Eventually(t, 10*time.Second, "the dial to ask LiveKit again", func() bool {
		return c.d.metric("dialstream_dialer_livekit_requests_total", "method", "ListParticipants", "result", "error") >= 2
	})
	if ev := c.log.ended(t, id); ev != nil {
		t.Fatalf("the call ended while LiveKit could not say how its dial went: %+v", ev)
	}
	c.lk.setDown(false)
	c.waitEnded(id)
	evs := c.log.callEvents(t, id)
	checkLifecycle(t, evs, schemas.OutcomeFailed)
	if end := evs[len(evs)-1]; end.Reason != lostReason || end.EndedBy != schemas.EndedByDialer {
		t.Fatalf("ended %+v, want failed by the dialer: %q", end, lostReason)
	}
	if n := c.lk.dialsTo(room); n != 1 {
		t.Fatalf("dialed %d times, want once", n)
	}
	if c.lk.deletes(room) == 0 {
		t.Fatal("the room of the dial in doubt was not deleted")
	}
	if n := c.d.metric("dialstream_dialer_in_doubt_dials_total", "resolution", "failed"); n != 1 {
		t.Fatalf("in-doubt dials resolved failed: %v, want 1", n)
	}
}

// The same broken connection while the callee answered: LiveKit, asked
// again, has the callee in the call, so the call is adopted as answered and
// completes when the callee leaves.
func TestLiveKitLostDuringTheDialAnsweredIsAdopted(t *testing.T) {
	c, id, room := lostDial(t)
	c.checkAdopted(id, room, func() { c.lk.setDown(false) })
}

// LiveKit, back from a crash, still lists the callee of a dial in flight
// as in the call (its store outlives the process), but no node hosts the
// room: the callee is not adopted, the room is deleted and the call is in
// doubt, instead of a phantom answered call that would stay open until
// max_call_duration.
func TestLiveKitLostDuringTheDialStaleCalleeIsNotAdopted(t *testing.T) {
	c, id, room := lostDial(t)
	c.lk.mu.Lock()
	c.lk.participants[room] = []*livekit.ParticipantInfo{{Identity: calleeIdentity(id), Kind: livekit.ParticipantInfo_SIP,
		Attributes: map[string]string{livekit.AttrSIPCallStatus: "active"}}}
	c.lk.unhosted[room] = true
	c.lk.mu.Unlock()
	c.lk.setDown(false)
	c.waitEnded(id)
	evs := c.log.callEvents(t, id)
	checkLifecycle(t, evs, schemas.OutcomeFailed)
	if end := evs[len(evs)-1]; end.Reason != lostReason {
		t.Fatalf("ended %+v, want in doubt: %q", end, lostReason)
	}
	if c.lk.deletes(room) == 0 {
		t.Fatal("the room of the dial in doubt was not deleted")
	}
}

// An answered call whose room no LiveKit node hosts any more (livekit-server
// killed and restarted: no webhook comes, and its store still lists the
// callee) ends at the second room check that finds it so, completed by the
// system with that reason, not at max_call_duration. One such answer alone
// (a node too slow to answer the probe) ends nothing.
func TestAnsweredCallInAnUnhostedRoomEnds(t *testing.T) {
	for name, routed := range map[string]bool{"listed from LiveKit's store": false, "listing routed to the room's node": true} {
		t.Run(name, func(t *testing.T) { unhostedRoomEnds(t, routed) })
	}
}

func unhostedRoomEnds(t *testing.T, routedList bool) {
	c := newComponent(t, nil)
	c.lk.mu.Lock()
	c.lk.routedList = routedList
	c.lk.mu.Unlock()
	id := c.request("ws_b", "agent_quick", "+15550100001")
	room := roomNameFor("agent_quick", id)
	c.waitStatus(id, schemas.StatusAnswered)

	n := c.lk.checksOf(room)
	c.lk.setUnhosted(room, true)
	testutil.Eventually(t, 10*time.Second, "a room check that finds the room unhosted", func() bool {
		return c.lk.checksOf(room) >= n+1
	})
	c.lk.setUnhosted(room, false)
	n = c.lk.checksOf(room)
	testutil.Eventually(t, 10*time.Second, "two more room checks", func() bool { return c.lk.checksOf(room) >= n+2 })
	if ev := c.log.ended(t, id); ev != nil {
		t.Fatalf("one unhosted answer ended the call: %+v", ev)
	}

	c.lk.setUnhosted(room, true)
	c.waitEnded(id)
	evs := c.log.callEvents(t, id)
	checkLifecycle(t, evs, schemas.OutcomeCompleted)
	end := evs[len(evs)-1]
	if end.EndedBy != schemas.EndedBySystem || !strings.Contains(end.Reason, "no LiveKit node hosts the call's room") {
		t.Fatalf("ended %+v, want completed by the system: no node hosts the room", end)
	}
	if c.lk.deletes(room) == 0 {
		t.Fatal("the unhosted room was not deleted")
	}
}

// lostDial requests a call to an answering number whose dial loses LiveKit
// (sipLost: LiveKit is down from then on) and waits for the dial.
func lostDial(t *testing.T) (c *component, id, room string) {
	c = newComponent(t, nil)
	c.lk.failNextSIP(sipLost)
	id = c.request("ws_b", "agent_quick", "+15550100001")
	room = roomNameFor("agent_quick", id)
	testutil.Eventually(t, 10*time.Second, "the dial", func() bool { return c.lk.dialsTo(room) == 1 })
	return c, id, room
}

// A SIP request whose connection LiveKit refused never left, and one no SIP
// service took off LiveKit's bus (the phone network is down) reached no
// phone: nothing rang, so the call is not failed but dialed again, once,
// under a new claim.
func TestLiveKitRefusedTheDialWaits(t *testing.T) {
	for name, fault := range map[string]sipFault{"connection refused": sipRefused, "no SIP service": sipNoService} {
		t.Run(name, func(t *testing.T) {
			c := newComponent(t, shortWindow)
			c.lk.failNextSIP(fault)
			id := c.request("ws_b", "agent_quick", "+15550100486")
			c.waitEnded(id)
			evs := c.log.callEvents(t, id)
			checkLifecycle(t, evs, schemas.OutcomeBusy)
			if n := c.lk.totalDials(); n != 1 {
				t.Fatalf("dialed %d times, want once (the refused request rang nothing)", n)
			}
			if n := c.d.metric("dialstream_dialer_livekit_requests_total", "method", "CreateSIPParticipant", "result", "error"); n != 1 {
				t.Fatalf("CreateSIPParticipant errors: %v, want the one refused", n)
			}
		})
	}
}

// A dial whose SIP request LiveKit does not answer within the claim's window
// (the network to LiveKit cut mid-ring) may have rung: like a lost answer it
// is in doubt and settled by asking LiveKit, not failed; nor does a room
// LiveKit does not answer for within the window fail the call: it waits.
func TestDialWindowRunsOut(t *testing.T) {
	c := newComponent(t, shortWindow)
	id := c.request("ws_b", "agent_quick", "+15550100480") // rings until the dial's context ends
	c.waitEnded(id)
	evs := c.log.callEvents(t, id)
	checkLifecycle(t, evs, schemas.OutcomeFailed)
	if end := evs[len(evs)-1]; end.Reason != lostReason {
		t.Fatalf("ended %+v, want in doubt: %q", end, lostReason)
	}

	c.lk.holdRooms(true)
	id = c.request("ws_b", "agent_quick", "+15550100486")
	testutil.Eventually(t, 10*time.Second, "a second claim after CreateRoom outlived the first", func() bool {
		return c.lk.roomsHeld() >= 2
	})
	if ev := c.log.ended(t, id); ev != nil {
		t.Fatalf("the call ended while LiveKit did not answer: %+v", ev)
	}
	c.lk.holdRooms(false)
	c.waitEnded(id)
	checkLifecycle(t, c.log.callEvents(t, id), schemas.OutcomeBusy)
}

// A room request that times out on its own (the SDK's per-request
// deadline, LiveKit too slow to answer) while the dial still has time is
// not LiveKit refusing the call: nothing can have rung before the SIP
// request, so the call waits and is dialed, once, when LiveKit answers.
func TestRoomRequestTimeoutWaits(t *testing.T) {
	c := newComponent(t, shortWindow)
	c.lk.timeOutRooms(5) // more than one dial's attempts
	id := c.request("ws_b", "agent_quick", "+15550100486")
	c.waitEnded(id)
	checkLifecycle(t, c.log.callEvents(t, id), schemas.OutcomeBusy)
	if n := c.lk.totalDials(); n != 1 {
		t.Fatalf("dialed %d times, want once", n)
	}
	if n := c.d.metric("dialstream_dialer_livekit_requests_total", "method", "CreateRoom", "result", "error"); n < 5 {
		t.Fatalf("CreateRoom errors: %v, want the 5 timeouts", n)
	}
}

// DIALER_TRUNK_CALLS_PER_SECOND paces the dials of a trunk: a burst of
// calls due at once (here 20 admitted together) reaches the phone network
// evenly spaced at the rate, and every call is still dialed once.
func TestTrunkRatePacesABurst(t *testing.T) {
	c := newComponent(t, func(cfg *Config) {
		cfg.TrunkCallsPerSecond = 10
		cfg.Registry = testRegistry(t, burstRegistryYAML)
	})
	var ids []string
	for i := range 20 {
		ids = append(ids, c.request("ws_burst", []string{"agent_x", "agent_y"}[i%2], "+15550100486"))
	}
	c.waitEnded(ids...)
	for _, id := range ids {
		checkLifecycle(t, c.log.callEvents(t, id), schemas.OutcomeBusy)
	}
	at := c.lk.dialTimes()
	if len(at) != 20 {
		t.Fatalf("%d dials, want 20", len(at))
	}
	// One every 100 ms: dial i is at least i*100 ms after the first (less
	// a little for the timers).
	for i, ti := range at {
		if min := time.Duration(i) * 100 * time.Millisecond; ti.Sub(at[0]) < min-20*time.Millisecond {
			t.Fatalf("dial %d came %s after the first, want >= %s: the trunk's rate was not kept", i, ti.Sub(at[0]), min)
		}
	}
	if n := c.d.metric("dialstream_dialer_trunk_rate_waits_total", "result", "waited"); n < 19 {
		t.Fatalf("dials that waited for their turn: %v, want >= 19", n)
	}
}

// A turn on the trunk that comes too late for the claim's window (the
// ring would not fit) sends nothing: the call is dialed again, once, under
// a new claim, instead of failing.
func TestTrunkRateNoTurnWaits(t *testing.T) {
	c := newComponent(t, func(cfg *Config) {
		shortWindow(cfg)
		cfg.TrunkCallsPerSecond = 0.5 // one dial per 2 s, longer than the window's spare time
		cfg.Registry = testRegistry(t, burstRegistryYAML)
	})
	a, b := c.request("ws_burst", "agent_x", "+15550100486"), c.request("ws_burst", "agent_x", "+15550100486")
	c.waitEnded(a, b)
	for _, id := range []string{a, b} {
		checkLifecycle(t, c.log.callEvents(t, id), schemas.OutcomeBusy)
	}
	if n := c.lk.totalDials(); n != 2 {
		t.Fatalf("dialed %d times, want 2", n)
	}
	if n := c.d.metric("dialstream_dialer_trunk_rate_waits_total", "result", "no_turn"); n < 1 {
		t.Fatalf("no_turn: %v, want >= 1", n)
	}
}

// A sending record Kafka acknowledges late (a broker outage, a dialer cut off
// from it) is retracted, not followed by the SIP request: another owner of
// the partition counts the ring from the record's time and would take a
// request sent that late for dead while the phone still rang, deleting its
// room (seen in the 525-call TestDialerBrokerPartitioned: acknowledged 20 s
// late, the room closed while ringing). The call is dialed once, under a
// new claim.
func TestLateSendingRecordIsNotSent(t *testing.T) {
	c := newComponent(t, shortWindow)
	var armed atomic.Bool
	c.lk.mu.Lock()
	c.lk.onCreateRoom = func() { armed.Store(true) }
	c.lk.mu.Unlock()
	// The broker holds the acknowledgement of the dial's sending record
	// 2.5 s, more than the slack (a second, with the tests' 1 s grace).
	c.b.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.b.KeepControl()
		// Produce names topics by id (v13+): the first produce after the
		// room is made is the sending record, nothing else being written
		// then in this test.
		if armed.CompareAndSwap(true, false) {
			c.lk.mu.Lock()
			c.lk.onCreateRoom = nil
			c.lk.mu.Unlock()
			c.b.SleepControl(func() { time.Sleep(2500 * time.Millisecond) })
		}
		return nil, nil, false
	})
	id := c.request("ws_b", "agent_quick", "+15550100486")
	c.waitEnded(id)
	checkLifecycle(t, c.log.callEvents(t, id), schemas.OutcomeBusy)
	if n := c.lk.totalDials(); n != 1 {
		t.Fatalf("dialed %d times, want once", n)
	}
	c.lk.mu.Lock()
	rooms := c.lk.createRooms
	c.lk.mu.Unlock()
	if rooms < 2 {
		t.Fatalf("%d room requests: the late-acknowledged claim was sent instead of dialed again under a new one", rooms)
	}
	if n := c.d.metric("dialstream_dialer_late_sending_records_total"); n != 1 {
		t.Fatalf("late sending records: %v, want 1", n)
	}
}

// burstRegistryYAML is a workspace whose own limits hold nothing back, with
// two agents on one trunk.
var burstRegistryYAML = strings.Replace(testRegistryYAML, "agents:\n", `  - id: ws_burst
    limits: {max_concurrent_calls: 50, calls_per_second: 1000, burst: 1000}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
agents:
`, 1) + `
  - {id: agent_x, workspace: ws_burst, livekit_agent_name: agent-x, sip_trunk_id: ST_shared, ringing_timeout: 1s, max_call_duration: 1m}
  - {id: agent_y, workspace: ws_burst, livekit_agent_name: agent-y, sip_trunk_id: ST_shared, ringing_timeout: 1s, max_call_duration: 1m}
`

// Calls move cleanly between dialers when the group rebalances: a second
// dialer joins mid-burst and the first leaves; every call is dialed once
// and ends once.
func TestRebalanceHandsOverCalls(t *testing.T) {
	c := newComponent(t, nil)
	c.lk.ringFor = 200 * time.Millisecond
	var ids []string
	for range 12 {
		ids = append(ids, c.request("ws_a", "agent_a", "+15550100777"))
	}
	testutil.Eventually(t, 10*time.Second, "the first dials", func() bool { return c.lk.totalDials() >= 2 })
	cfg2 := c.cfg
	cfg2.HTTPAddr = freeAddr(t)
	startDialer(t, cfg2)
	testutil.Eventually(t, 10*time.Second, "more dials", func() bool { return c.lk.totalDials() >= 5 })
	c.d.stop(t) // leaves the group: its partitions move to the second dialer
	for range 4 {
		ids = append(ids, c.request("ws_a", "agent_a", "+15550100777"))
	}
	c.waitEnded(ids...)
	for _, id := range ids {
		evs := c.log.callEvents(t, id)
		checkLifecycle(t, evs, schemas.OutcomeBusy)
		if n := c.lk.dialsTo(roomNameFor("agent_a", id)); n != 1 {
			t.Fatalf("call %s dialed %d times", id, n)
		}
	}
}
