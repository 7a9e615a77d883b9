package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

func TestDeriveIDs(t *testing.T) {
	id, suffix := deriveIDs([]byte("s"), "ws_demo", "k")
	id2, suffix2 := deriveIDs([]byte("s"), "ws_demo", "k")
	if id != id2 || suffix != suffix2 || !callIDRE.MatchString(id) || !roomRE.MatchString("a-"+suffix) {
		t.Fatalf("%s %s / %s %s", id, suffix, id2, suffix2)
	}
	for _, other := range [][3]string{{"s", "ws_other", "k"}, {"s", "ws_demo", "k2"}, {"t", "ws_demo", "k"}, {"s", "ws_dem", "ok"}} {
		if o, _ := deriveIDs([]byte(other[0]), other[1], other[2]); o == id {
			t.Fatalf("%v collides", other)
		}
	}
	// Pinned: replicas of two versions must derive the same call id.
	if id != "488906ea0fddfe1edc6cbc84" {
		t.Fatalf("the call id of a key changed: %s", id)
	}
	for range 100 {
		id, suffix := randomIDs()
		if !callIDRE.MatchString(id) || !roomRE.MatchString("a-"+suffix) {
			t.Fatalf("%s %s", id, suffix)
		}
	}
}

// A campaign's id derives from its key and its body, and is never the call
// id the same key gets.
func TestDeriveCampaignID(t *testing.T) {
	body := campaignBodyHash([]byte(`{"name":"a"}`))
	id := deriveCampaignID([]byte("s"), "ws_demo", "k", body)
	// Pinned: replicas of two versions must derive the same campaign id for
	// one retried create.
	if id != "efc3e5c912d16e0726933d2b" || id != deriveCampaignID([]byte("s"), "ws_demo", "k", campaignBodyHash([]byte(` { "name" : "a" } `))) {
		t.Fatalf("campaign id %s, or not the same for the same JSON", id)
	}
	if callID, _ := deriveIDs([]byte("s"), "ws_demo", "k"); callID == id {
		t.Fatalf("call and campaign share the id %s", id)
	}
	for _, other := range [][3]string{{"s", "ws_other", "k"}, {"s", "ws_demo", "k2"}, {"t", "ws_demo", "k"}, {"s", "ws_dem", "ok"}} {
		if o := deriveCampaignID([]byte(other[0]), other[1], other[2], body); o == id {
			t.Fatalf("%v collides", other)
		}
	}
	if o := deriveCampaignID([]byte("s"), "ws_demo", "k", campaignBodyHash([]byte(`{"name":"b"}`))); o == id {
		t.Fatalf("another body has the id %s", id)
	}
}

// Adding a campaign again keeps one entry in the eviction order: evicting
// the oldest must not delete the one just re-added.
func TestOwnCampaignsReAdd(t *testing.T) {
	o := newOwnCampaigns()
	def := func(id string) schemas.Campaign { return schemas.Campaign{CampaignID: id, WorkspaceID: "ws_demo"} }
	o.add(def("again"), schemas.CampaignDraft, 0)
	o.add(def("again"), schemas.CampaignDraft, 0)
	for i := range maxOwnCampaigns - 1 {
		o.add(def(fmt.Sprintf("c%d", i)), schemas.CampaignDraft, 0)
	}
	if _, ok := o.get("ws_demo", "again"); !ok {
		t.Fatal("the re-added campaign was forgotten before the store was full")
	}
	if len(o.order) != maxOwnCampaigns {
		t.Fatalf("%d ids in order, want %d", len(o.order), maxOwnCampaigns)
	}
}

func TestIdemStoreTTLAndBound(t *testing.T) {
	now := time.Unix(0, 0)
	s := newIdemStore(time.Hour, 3)
	s.now = func() time.Time { return now }
	fp := [32]byte{1}
	done := func(k string) {
		e, o := s.begin(k, fp)
		if o != idemNew {
			t.Fatalf("%s: outcome %d", k, o)
		}
		s.complete(e, storedResponse{code: 202, body: []byte(k)})
	}
	done("a")
	done("b")
	inflight, _ := s.begin("c", fp)
	if e, o := s.begin("a", fp); o != idemReplay || string(e.resp.body) != "a" {
		t.Fatalf("replay a: %d", o)
	}
	if _, o := s.begin("a", [32]byte{2}); o != idemMismatch {
		t.Fatalf("mismatch: %d", o)
	}
	if _, o := s.begin("c", fp); o != idemInFlight {
		t.Fatalf("in flight: %d", o)
	}
	// Full: the oldest finished key goes, the in-flight one stays.
	done("d")
	if s.len() != 3 {
		t.Fatalf("len %d", s.len())
	}
	if _, o := s.begin("a", fp); o != idemNew {
		t.Fatalf("a should have been evicted: %d", o)
	}
	if _, o := s.begin("c", fp); o != idemInFlight {
		t.Fatalf("in-flight c evicted: %d", o)
	}
	s.release(inflight)
	if _, o := s.begin("c", fp); o != idemNew {
		t.Fatalf("released c: %d", o)
	}
	// Expiry.
	now = now.Add(time.Hour)
	if _, o := s.begin("d", fp); o != idemNew {
		t.Fatalf("expired d: %d", o)
	}
	// A store full of in-flight keys still takes new requests.
	s2 := newIdemStore(time.Hour, 2)
	for i := range 5 {
		if _, o := s2.begin(fmt.Sprint(i), fp); o != idemNew {
			t.Fatal(o)
		}
	}
}

func TestParseIdempotencyKey(t *testing.T) {
	for in, want := range map[string]string{`abc`: "abc", `"abc"`: "abc", ` 8e0f-4 `: "8e0f-4", `"a b"`: "a b"} {
		if got, msg := parseIdempotencyKey(in); got != want || msg != "" {
			t.Errorf("%q: %q %q", in, got, msg)
		}
	}
	for _, in := range []string{``, `""`, `"a"b"`, "a\x01", "é"} {
		if _, msg := parseIdempotencyKey(in); msg == "" {
			t.Errorf("%q accepted", in)
		}
	}
}
