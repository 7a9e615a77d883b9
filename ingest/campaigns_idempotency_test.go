package ingest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// Idempotency-Key on POST /v1/api/campaigns, against the embedded broker:
// what a retrying client sees, and what lands on the commands topic.

const campaignWithContacts = "{" + campaignBase + `,"start":true,"contacts":[{"to":"+15550100001","contact_id":"c-1"},{"to":"+15550100002"}]}`

// createdOnTopic counts the campaign.created records of the commands topic.
func (e *kafkaEnv) createdOnTopic(t *testing.T) int {
	t.Helper()
	n := 0
	for _, r := range e.commands(t) {
		if ceType(r) == schemas.TypeCampaignCreated {
			n++
		}
	}
	return n
}

func (e *kafkaEnv) createKeyed(t *testing.T, key, body string) *httptest.ResponseRecorder {
	t.Helper()
	return e.do(t, req{path: "/v1/api/campaigns", idemKey: key, body: body})
}

func TestCampaignIdempotencyReplay(t *testing.T) {
	e := newKafkaEnv(t)
	first := e.createKeyed(t, "campaign-7", campaignWithContacts)
	if first.Code != 201 || first.Header().Get(HeaderReplayed) != "" {
		t.Fatalf("first: %d %v %s", first.Code, first.Header(), first.Body)
	}
	var got CampaignCreated
	mustUnmarshal(t, first.Body.Bytes(), &got)
	if want := deriveCampaignID([]byte(defaultIdemSecret), "ws_demo", "campaign-7", campaignBodyHash([]byte(campaignWithContacts))); got.CampaignID != want || got.Contacts.Accepted != 2 {
		t.Fatalf("answer %s; want campaign_id %s, derived from the key", first.Body, want)
	}
	written := len(e.commands(t))
	// The same campaign written differently (member order, white space) is
	// the same body.
	same := `{ "start": true, "pacing": {"max_concurrent": 10, "calls_per_second": 2}, "name": "renewals",
	  "call_agent_id": "` + demoAgent + `", "callback_url": "https://example.com/hooks",
	  "schedule": {"default_timezone": "America/New_York", "windows": [{"start": "10:00", "end": "19:00", "days": ["mon","tue","wed","thu","fri"]}]},
	  "retry": {"busy": {"max_attempts": 3, "delay_seconds": 600}},
	  "contacts": [{"contact_id": "c-1", "to": "+15550100001"}, {"to": "+15550100002"}] }`
	const retries = 5
	for i := range retries {
		body := campaignWithContacts
		if i%2 == 1 {
			body = same
		}
		w := e.createKeyed(t, "campaign-7", body)
		if w.Code != 201 || w.Header().Get(HeaderReplayed) != "true" || w.Body.String() != first.Body.String() {
			t.Fatalf("retry %d: %d %v %s", i, w.Code, w.Header(), w.Body)
		}
	}
	if n := e.createdOnTopic(t); n != 1 {
		t.Fatalf("%d campaign.created records after %d retries, want 1", n, retries)
	}
	if n := len(e.commands(t)); n != written {
		t.Fatalf("the retries wrote %d records", n-written)
	}

	// Another body under the key is refused, the inline contacts included,
	// and writes nothing.
	reused := errBody(t, "this Idempotency-Key was already used with a different request body; use a new key for a new campaign")
	for _, body := range []string{
		strings.Replace(campaignWithContacts, `"+15550100002"`, `"+15550100003"`, 1),
		strings.Replace(campaignWithContacts, `,{"to":"+15550100002"}`, "", 1),
		strings.Replace(campaignWithContacts, `"calls_per_second":2`, `"calls_per_second":3`, 1),
		"{" + campaignBase + "}",
	} {
		w := e.createKeyed(t, "campaign-7", body)
		if w.Code != 422 {
			t.Fatalf("different body: %d %s", w.Code, w.Body)
		}
		assertJSON(t, w.Body.Bytes(), reused)
	}
	if n := len(e.commands(t)); n != written {
		t.Fatalf("the refusals wrote %d records", n-written)
	}

	// Scopes: the key is ws_other's own, and POST /v1/api/call's own.
	w := e.do(t, req{path: "/v1/api/campaigns", key: otherKey, workspace: "ws_other", idemKey: "campaign-7",
		body: strings.Replace(campaignWithContacts, demoAgent, otherAgent, 1)})
	var other CampaignCreated
	mustUnmarshal(t, w.Body.Bytes(), &other)
	if w.Code != 201 || w.Header().Get(HeaderReplayed) != "" || other.CampaignID == got.CampaignID {
		t.Fatalf("ws_other: %d %v %s", w.Code, w.Header(), w.Body)
	}
	w = e.do(t, req{idemKey: "campaign-7", body: validBody})
	if w.Code != 202 || w.Header().Get(HeaderReplayed) != "" {
		t.Fatalf("the key on /v1/api/call: %d %v %s", w.Code, w.Header(), w.Body)
	}
	var call CallResponse
	mustUnmarshal(t, w.Body.Bytes(), &call)
	if call.CallID == got.CampaignID {
		t.Fatalf("the call id is the campaign id %s", got.CampaignID)
	}
	if w := e.createKeyed(t, "campaign-7", campaignWithContacts); w.Code != 201 || w.Body.String() != first.Body.String() {
		t.Fatalf("replay after the other scopes: %d %s", w.Code, w.Body)
	}
	if n := e.createdOnTopic(t); n != 2 {
		t.Fatalf("%d campaign.created records, want ws_demo's and ws_other's", n)
	}

	// A refused create stores nothing: the key can be used once the body is
	// fixed.
	bad := strings.Replace(campaignWithContacts, `"end":"19:00"`, `"end":"09:00"`, 1)
	if w := e.createKeyed(t, "fix-me", bad); w.Code != 422 {
		t.Fatalf("invalid: %d %s", w.Code, w.Body)
	}
	if w := e.createKeyed(t, "fix-me", campaignWithContacts); w.Code != 201 || w.Header().Get(HeaderReplayed) != "" {
		t.Fatalf("fixed: %d %v %s", w.Code, w.Header(), w.Body)
	}
}

// Once the store has forgotten a key (expiry here; eviction, a restart or
// another replica alike), the same body still gets its campaign id, and
// another body under the key is another campaign: never new contacts merged
// into the first campaign under its agent and pacing.
func TestCampaignIdempotencyKeyReusedAfterExpiry(t *testing.T) {
	e := newKafkaEnv(t)
	now := time.Now()
	var mu sync.Mutex
	e.hd.idem.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	later := func() { mu.Lock(); defer mu.Unlock(); now = now.Add(e.hd.cfg.IdempotencyTTL + time.Minute) }

	w := e.createKeyed(t, "order-1", campaignWithContacts)
	if w.Code != 201 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	var first CampaignCreated
	mustUnmarshal(t, w.Body.Bytes(), &first)
	before := e.commands(t)

	later()
	w = e.createKeyed(t, "order-1", campaignWithContacts)
	var same CampaignCreated
	mustUnmarshal(t, w.Body.Bytes(), &same)
	if w.Code != 201 || w.Header().Get(HeaderReplayed) != "" || same.CampaignID != first.CampaignID {
		t.Fatalf("same body after expiry: %d %v %s, want a new write under campaign %s", w.Code, w.Header(), w.Body, first.CampaignID)
	}

	later()
	other := strings.Replace(strings.Replace(campaignWithContacts, `"+15550100002"`, `"+15550100003"`, 1), `"calls_per_second":2`, `"calls_per_second":3`, 1)
	w = e.createKeyed(t, "order-1", other)
	var second CampaignCreated
	mustUnmarshal(t, w.Body.Bytes(), &second)
	if w.Code != 201 || second.CampaignID == first.CampaignID || second.Contacts.Accepted != 2 {
		t.Fatalf("another body after expiry: %d %s, want a campaign other than %s", w.Code, w.Body, first.CampaignID)
	}

	// The first campaign's records are what the first two creates wrote:
	// its create twice (a duplicate the scheduler drops) and its contacts,
	// the first body's, nothing of the other body.
	var firstRecs, secondRecs []*kgo.Record
	for _, r := range e.commands(t) {
		switch string(r.Key) {
		case first.CampaignID:
			firstRecs = append(firstRecs, r)
		case second.CampaignID:
			secondRecs = append(secondRecs, r)
		default:
			t.Fatalf("a record of campaign %s", r.Key)
		}
	}
	if len(firstRecs) != 2*len(before) {
		t.Fatalf("campaign %s has %d records, want the %d of its create written twice", first.CampaignID, len(firstRecs), len(before))
	}
	for _, r := range firstRecs {
		if strings.Contains(string(r.Value), "+15550100003") || strings.Contains(string(r.Value), `"calls_per_second":3`) {
			t.Fatalf("the other body reached campaign %s: %s", first.CampaignID, r.Value)
		}
	}
	var types []string
	for _, r := range secondRecs {
		types = append(types, ceType(r))
	}
	if len(types) != 2 || types[0] != schemas.TypeCampaignCreated || types[1] != schemas.TypeCampaignContacts ||
		!strings.Contains(string(secondRecs[1].Value), "+15550100003") {
		t.Fatalf("campaign %s records %v", second.CampaignID, types)
	}
}

// A malformed key is a 400 before anything else, and writes nothing.
func TestCampaignIdempotencyKeyMalformed(t *testing.T) {
	e := newKafkaEnv(t)
	createCommandsTopic(t, e.addr)
	for _, tc := range []struct {
		keys []string
		msg  string
	}{
		{[]string{`""`}, "Idempotency-Key must not be empty"},
		{[]string{"caf\u00e9"}, "Idempotency-Key must be printable ASCII (a UUID is a good key)"},
		{[]string{`"a"b"`}, "Idempotency-Key must not contain quotes or backslashes"},
		{[]string{strings.Repeat("k", 256)}, "Idempotency-Key must be at most 255 characters"},
		{[]string{"one", "two"}, "send one Idempotency-Key header, not several"},
	} {
		hr := newRequest(req{path: "/v1/api/campaigns", body: campaignWithContacts})
		for _, k := range tc.keys {
			hr.Header.Add("Idempotency-Key", k)
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, hr)
		if w.Code != 400 {
			t.Fatalf("%q: %d %s", tc.keys, w.Code, w.Body)
		}
		assertJSON(t, w.Body.Bytes(), errBody(t, tc.msg))
	}
	if n := len(e.commands(t)); n != 0 {
		t.Fatalf("malformed keys wrote %d records", n)
	}
}

// Concurrent duplicates: one request creates the campaign; each other one is
// a replay of its answer or a 409 with Retry-After: 1; one campaign.created.
func TestCampaignIdempotentConcurrent(t *testing.T) {
	e := newKafkaEnv(t)
	createCommandsTopic(t, e.addr)
	const n = 16
	answers := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			answers[i] = e.createKeyed(t, "same-campaign", campaignWithContacts)
		}()
	}
	close(gate)
	wg.Wait()
	var created string
	var replays, busy int
	for _, w := range answers {
		switch {
		case w.Code == 201 && w.Header().Get(HeaderReplayed) == "":
			if created != "" {
				t.Fatalf("two requests created the campaign:\n%s\n%s", created, w.Body)
			}
			created = w.Body.String()
		case w.Code == 201:
			replays++
		case w.Code == 409 && w.Header().Get("Retry-After") == "1":
			busy++
		default:
			t.Fatalf("unexpected answer %d %v %s", w.Code, w.Header(), w.Body)
		}
	}
	if created == "" {
		t.Fatal("no request created the campaign")
	}
	for _, w := range answers {
		if w.Code == 201 && w.Body.String() != created {
			t.Fatalf("answers differ:\n%s\n%s", created, w.Body)
		}
	}
	if w := e.createKeyed(t, "same-campaign", campaignWithContacts); w.Code != 201 || w.Body.String() != created {
		t.Fatalf("replay: %d %s", w.Code, w.Body)
	}
	if got := e.createdOnTopic(t); got != 1 {
		t.Fatalf("%d campaign.created records, want 1 (%d replays, %d in flight)", got, replays, busy)
	}
	t.Logf("%d requests: 1 created, %d replays, %d answered 409", n, replays, busy)
}

// failContacts fails the contacts records while fail is set: the campaign
// is created, its contacts are not.
type failContacts struct {
	Producer
	fail atomic.Bool
}

func (f *failContacts) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderType && string(h.Value) == schemas.TypeCampaignContacts && f.fail.Load() {
			promise(r, errors.New("kafka: NOT_ENOUGH_REPLICAS"))
			return
		}
	}
	f.Producer.Produce(ctx, r, promise)
}

// A create that failed half-way (the campaign written, its contacts not)
// releases its key; the retry writes under the same campaign id, so the
// second campaign.created is a duplicate of one campaign, which the
// scheduler ignores (scheduler/machine.go applyCreated), never a second
// campaign.
func TestCampaignIdempotencyRetryAfter503(t *testing.T) {
	e := newKafkaEnv(t)
	createCommandsTopic(t, e.addr)
	fp := &failContacts{Producer: e.hd.p}
	fp.fail.Store(true)
	e.hd.p = fp
	w := e.createKeyed(t, "half-way", campaignWithContacts)
	if w.Code != 503 || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("first: %d %v %s", w.Code, w.Header(), w.Body)
	}
	id := deriveCampaignID([]byte(defaultIdemSecret), "ws_demo", "half-way", campaignBodyHash([]byte(campaignWithContacts)))
	if !strings.Contains(w.Body.String(), "campaign "+id+" was created") {
		t.Fatalf("first: %s", w.Body)
	}
	fp.fail.Store(false)
	w = e.createKeyed(t, "half-way", campaignWithContacts)
	if w.Code != http.StatusCreated || w.Header().Get(HeaderReplayed) != "" {
		t.Fatalf("retry: %d %v %s", w.Code, w.Header(), w.Body)
	}
	var got CampaignCreated
	mustUnmarshal(t, w.Body.Bytes(), &got)
	if got.CampaignID != id || got.Contacts.Accepted != 2 {
		t.Fatalf("retry: %s, want campaign %s with its 2 contacts", w.Body, id)
	}
	recs := e.commands(t)
	var types []string
	for _, r := range recs {
		if string(r.Key) != id {
			t.Fatalf("a record of another campaign: %s", r.Key)
		}
		types = append(types, ceType(r))
	}
	if len(types) != 3 || types[0] != schemas.TypeCampaignCreated || types[1] != schemas.TypeCampaignCreated || types[2] != schemas.TypeCampaignContacts {
		t.Fatalf("records %v", types)
	}
	if w := e.createKeyed(t, "half-way", campaignWithContacts); w.Code != 201 || w.Header().Get(HeaderReplayed) != "true" {
		t.Fatalf("replay: %d %v %s", w.Code, w.Header(), w.Body)
	}
}

// While the first create with a key is being written, a second one is a
// 409 with Retry-After: 1; a different body is a 422 even then.
func TestCampaignIdempotencyInFlight(t *testing.T) {
	env, finish := inFlight(t, req{path: "/v1/api/campaigns", idemKey: "k", body: campaignWithContacts})
	w := env.do(t, req{path: "/v1/api/campaigns", idemKey: "k", body: campaignWithContacts})
	if w.Code != 409 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("in flight: %d %v", w.Code, w.Header())
	}
	assertJSON(t, w.Body.Bytes(), errBody(t, "a request with this Idempotency-Key is still being processed; retry later to get its answer"))
	if w := env.do(t, req{path: "/v1/api/campaigns", idemKey: "k", body: "{" + campaignBase + "}"}); w.Code != 422 {
		t.Fatalf("different body in flight: %d %s", w.Code, w.Body)
	}
	first := finish()
	if first.Code != 201 {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	if w := env.do(t, req{path: "/v1/api/campaigns", idemKey: "k", body: campaignWithContacts}); w.Code != 201 || w.Body.String() != first.Body.String() {
		t.Fatalf("after: %d %s", w.Code, w.Body)
	}
}

// panicOnce arms a panic in the request's goroutine once: in the
// producer's Produce (POST /v1/api/call calls it there; the campaign route
// produces from goroutines of its own, where a panic is no request's) and
// in the records' CampaignNumbers (the campaign route's contacts check).
type panicOnce struct {
	Producer
	campaignStore
	armed atomic.Bool
}

func (p *panicOnce) fire() {
	if p.armed.CompareAndSwap(true, false) {
		panic("bug")
	}
}

func (p *panicOnce) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.fire()
	p.Producer.Produce(ctx, r, promise)
}

func (p *panicOnce) CampaignNumbers(ctx context.Context, ws, id string, numbers []string) (map[string]string, error) {
	p.fire()
	return p.campaignStore.CampaignNumbers(ctx, ws, id, numbers)
}

// A panic between claiming a key and completing it (recovered into a 500)
// releases the key, on both routes that take one: the retry is served, not
// answered 409 until the replica restarts.
func TestIdempotencyKeyReleasedAfterPanic(t *testing.T) {
	e := newKafkaEnv(t)
	createCommandsTopic(t, e.addr)
	pc := &panicOnce{Producer: e.hd.p}
	pp := &panicOnce{campaignStore: e.hd.campaigns}
	for _, tc := range []struct {
		route string
		arm   *panicOnce
		r     req
		code  int
	}{
		{"/v1/api/call", pc, req{idemKey: "panics", body: validBody}, http.StatusAccepted},
		{"/v1/api/campaigns", pp, req{path: "/v1/api/campaigns", idemKey: "panics", body: campaignWithContacts}, http.StatusCreated},
	} {
		e.hd.p, e.hd.campaigns = pc, pp
		tc.arm.armed.Store(true)
		if w := e.do(t, tc.r); w.Code != http.StatusInternalServerError || tc.arm.armed.Load() {
			t.Fatalf("%s, a panic while served: %d %s", tc.route, w.Code, w.Body)
		}
		if w := e.do(t, tc.r); w.Code != tc.code || w.Header().Get(HeaderReplayed) != "" {
			t.Fatalf("%s, retry after the panic: %d %s", tc.route, w.Code, w.Body)
		}
		if w := e.do(t, tc.r); w.Code != tc.code || w.Header().Get(HeaderReplayed) != "true" {
			t.Fatalf("%s, second retry: %d %v %s", tc.route, w.Code, w.Header(), w.Body)
		}
	}
}
