package ingest

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Idempotency-Key (IETF httpapi draft "The Idempotency-Key HTTP Header
// Field"): a client that may retry a POST sends a unique key with it.
//
//   - Same workspace, same key, same body (compared by fingerprint of the
//     normalized body): the first answer is replayed with
//     Idempotent-Replayed: true, and nothing is written.
//   - Same key, different body: 422.
//   - Same key while the first request is still being processed: 409.
//
// The store is in memory, per replica, bounded by INGEST_IDEMPOTENCY_MAX_KEYS
// and INGEST_IDEMPOTENCY_TTL; only accepted answers are stored, so a request
// refused for bad input may be corrected and resent under the same key.
//
// POST /v1/api/call and POST /v1/api/campaigns share the store, each in its
// own scope (idemScope): one key sent to both routes is two independent
// keys. Refusing the second use with a 422, as a key reused for another
// body, was weighed and not taken: the two answers share no body to
// compare, and a client that names keys after its own order ids would be
// refused a campaign for an order that also placed a call.
//
// Replicas do not share the store: a retry that lands on another replica (or
// after this one restarted, or after the key was evicted) is not recognized
// there and writes a second record. That second record is harmless because a
// request with an Idempotency-Key does not get a random call id: its callId
// and roomName are derived from HMAC(secret, workspace, key). Both records
// carry the same call id, and the dialer, which dials a call id at most once,
// places one call. The trade-off: the cross-replica case answers with a new
// jobId (the second record's position) and does not compare bodies, so a key
// reused for a different call on another replica is dropped by the dialer as
// a duplicate rather than refused with 422. A shared store (Redis, a
// compacted topic) would close that gap at the cost of a dependency ingest
// does not otherwise have.
//
// A campaign created with a key gets its campaign_id the same way
// (deriveCampaignID), for the same reason: the scheduler ignores a second
// campaign.created for a campaign it has, and skips contacts whose id or
// number the campaign has already, so a second write of one create adds no
// campaign and no contact. Unlike a call id, the campaign id also hashes the
// request body (campaignBodyHash): the store is the only thing that answers
// 422 for another body, and once it has forgotten the key (expiry, eviction,
// restart, another replica) a key-only id would merge a different create
// into the old campaign, its contacts dialed with the old agent and pacing,
// behind a 201. With the body in the id, the same body keeps its id
// everywhere, and another body is another campaign, never a merge. The
// trade-off: after the store forgot the key, a reused key is not refused but
// creates a second campaign. That is also why a campaign create that failed
// (503, with or without its contacts written) releases its key at once
// rather than waiting for a late acknowledgement as a call does
// (settleLate): the retry writes under the same campaign id, and what the
// first attempt wrote after all is a duplicate the scheduler drops.

// maxIdemKey is the longest Idempotency-Key accepted (the schema's cap on
// idempotency_key).
const maxIdemKey = schemaMaxIdemKey

// parseIdempotencyKey returns the key of an Idempotency-Key header. The draft
// defines the value as a Structured Fields string ("\"abc\""); the bare token
// form most clients send (abc) is accepted too.
func parseIdempotencyKey(v string) (string, string) {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		if strings.ContainsAny(v, `"\`) {
			return "", "Idempotency-Key must not contain quotes or backslashes"
		}
	}
	if v == "" {
		return "", "Idempotency-Key must not be empty"
	}
	if len(v) > maxIdemKey {
		return "", "Idempotency-Key must be at most 255 characters"
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e {
			return "", "Idempotency-Key must be printable ASCII (a UUID is a good key)"
		}
	}
	return v, ""
}

// defaultIdemSecret keys the id derivation when INGEST_IDEMPOTENCY_SECRET is
// not set.
const defaultIdemSecret = "dialstream-ingest-idempotency-v1"

// deriveIDs returns the call id (24 lowercase hex) and the room-name suffix
// (10 of [a-z0-9]) for a workspace's Idempotency-Key, the same on every
// replica that shares the secret.
func deriveIDs(secret []byte, workspace, key string) (callID, suffix string) {
	sum := idemMAC(secret, "", workspace, key, nil) // 32 bytes: 12 for the id, 20 for the suffix
	callID = hex.EncodeToString(sum[:12])
	var b [10]byte
	for i := range b {
		// 65536 % 36 = 16: a bias of 16 in 65536, irrelevant for a room name.
		b[i] = roomAlphabet[binary.BigEndian.Uint16(sum[12+2*i:])%36]
	}
	return callID, string(b[:])
}

// deriveCampaignID returns the campaign id (24 lowercase hex) for a
// workspace's Idempotency-Key on POST /v1/api/campaigns and the hash of the
// request body (campaignBodyHash): the same on every replica that shares
// the secret, for as long as the client resends the same body; never the
// call id the same key gets on POST /v1/api/call.
func deriveCampaignID(secret []byte, workspace, key string, body [32]byte) string {
	return hex.EncodeToString(idemMAC(secret, "campaign", workspace, key, body[:])[:12])
}

// idemMAC is HMAC(secret, domain, len(workspace), workspace, key, suffix).
// The domain keeps the routes' ids apart; the call ids' is empty, with no
// suffix, so they are what they were before campaigns had keys (replicas of
// two versions agree), and no other domain's input can equal theirs: it
// starts with the 8-byte length, whose first byte is 0, and a domain starts
// with a letter. A domain's suffix has a fixed length, so key and suffix do
// not run into each other.
func idemMAC(secret []byte, domain, workspace, key string, suffix []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(domain))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(workspace)))
	mac.Write(n[:])
	mac.Write([]byte(workspace))
	mac.Write([]byte(key))
	mac.Write(suffix)
	return mac.Sum(nil)
}

const roomAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomIDs returns a random call id and room-name suffix.
func randomIDs() (callID, suffix string) {
	var id [12]byte
	_, _ = rand.Read(id[:])
	var b [10]byte
	var buf [32]byte
	for i := 0; i < len(b); {
		_, _ = rand.Read(buf[:])
		for _, c := range buf {
			if c >= 252 { // 252 = 7*36: reject to keep the draw uniform
				continue
			}
			b[i] = roomAlphabet[c%36]
			if i++; i == len(b) {
				break
			}
		}
	}
	return hex.EncodeToString(id[:]), string(b[:])
}

// storedResponse is an answer to replay.
type storedResponse struct {
	code int
	body []byte
}

type idemEntry struct {
	scope       string
	fingerprint [32]byte
	done        bool
	resp        storedResponse
	expires     time.Time
	elem        *list.Element
}

type idemOutcome int

const (
	idemNew      idemOutcome = iota // the caller owns the key now
	idemReplay                      // answer with the stored response
	idemInFlight                    // 409
	idemMismatch                    // 422
)

// idemStore remembers keys in insertion order: expiry and eviction both take
// the oldest first. In-flight entries are never evicted (their number is
// bounded by the requests being served), finished ones are when the store is
// full.
type idemStore struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	now     func() time.Time
	entries map[string]*idemEntry
	order   *list.List
}

func newIdemStore(ttl time.Duration, max int) *idemStore {
	return &idemStore{ttl: ttl, max: max, now: time.Now, entries: map[string]*idemEntry{}, order: list.New()}
}

// idemScope is the store's key: the route (routeCall, routeCampaigns), the
// workspace and the client's key.
func idemScope(route, workspace, key string) string {
	return route + "\x00" + workspace + "\x00" + key
}

// begin claims scope for a request with fingerprint fp, or says how to answer.
func (s *idemStore) begin(scope string, fp [32]byte) (*idemEntry, idemOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e, ok := s.entries[scope]; ok {
		if e.done && !now.Before(e.expires) {
			s.removeLocked(e)
		} else {
			switch {
			case e.fingerprint != fp:
				return e, idemMismatch
			case !e.done:
				return e, idemInFlight
			default:
				return e, idemReplay
			}
		}
	}
	s.evictLocked(now)
	e := &idemEntry{scope: scope, fingerprint: fp, expires: now.Add(s.ttl)}
	e.elem = s.order.PushBack(e)
	s.entries[scope] = e
	return e, idemNew
}

// complete stores the answer to replay for e's key.
func (s *idemStore) complete(e *idemEntry, resp storedResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries[e.scope] != e {
		return
	}
	e.done, e.resp = true, resp
	e.expires = s.now().Add(s.ttl)
	s.order.MoveToBack(e.elem)
}

// release forgets e's key: the request failed and may be retried.
func (s *idemStore) release(e *idemEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries[e.scope] == e {
		s.removeLocked(e)
	}
}

func (s *idemStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *idemStore) removeLocked(e *idemEntry) {
	delete(s.entries, e.scope)
	s.order.Remove(e.elem)
}

// evictLocked drops expired entries and, while the store is full, the oldest
// finished one.
func (s *idemStore) evictLocked(now time.Time) {
	for el := s.order.Front(); el != nil; {
		next := el.Next()
		e := el.Value.(*idemEntry)
		if e.done && !now.Before(e.expires) {
			s.removeLocked(e)
		} else if e.done {
			break // entries behind a live finished one expire later
		}
		el = next
	}
	for el := s.order.Front(); len(s.entries) >= s.max && el != nil; {
		next := el.Next()
		if e := el.Value.(*idemEntry); e.done {
			s.removeLocked(e)
		}
		el = next
	}
}

// idempotencyKey reads the request's Idempotency-Key header: "" when there
// is none, a 400 when there are several or the one is malformed.
func idempotencyKey(c *gin.Context) (string, *apiError) {
	v := c.Request.Header.Values("Idempotency-Key")
	if len(v) == 0 {
		return "", nil
	}
	if len(v) > 1 {
		return "", &apiError{code: http.StatusBadRequest, reason: reasonIdempotencyInvalid, message: "send one Idempotency-Key header, not several"}
	}
	k, msg := parseIdempotencyKey(v[0])
	if msg != "" {
		return "", &apiError{code: http.StatusBadRequest, reason: reasonIdempotencyInvalid, message: msg}
	}
	return k, nil
}

// idemClaim is a request's hold on its Idempotency-Key: the handler defers
// done, which releases the key unless the request completed it or handed it
// on (settleLate). An in-flight entry never expires, so a key left claimed
// by a path that forgot to release it, or by a panic between claim and
// complete (recovered into a 500), would answer 409 until the replica
// restarts; the defer covers every path, the ones written later included.
// A nil claim (no key) does nothing.
type idemClaim struct {
	store *idemStore
	e     *idemEntry
	owned bool // false once completed or handed on
}

// complete stores the answer to replay for the key.
func (c *idemClaim) complete(resp storedResponse) {
	if c == nil || !c.owned {
		return
	}
	c.owned = false
	c.store.complete(c.e, resp)
}

// handOff gives the entry to the caller, who must complete or release it
// (settleLate, once Kafka has answered a record the client was told 503
// about); done leaves it alone from here. Nil without a key.
func (c *idemClaim) handOff() *idemEntry {
	if c == nil {
		return nil
	}
	c.owned = false
	return c.e
}

// done releases the key unless it was completed or handed on: the request
// failed, or panicked, and may be retried.
func (c *idemClaim) done() {
	if c == nil || !c.owned {
		return
	}
	c.owned = false
	c.store.release(c.e)
}

// claimIdempotencyKey looks workspace ws's key up in route's scope, for a
// request whose normalized body hashes to fp. It answers the replay, the 409
// and the 422 itself and returns answered; otherwise the caller holds the
// returned claim and must defer its done. No key: nil, not answered.
// noun names what a new key would make ("call", "campaign").
func (h *handler) claimIdempotencyKey(c *gin.Context, route, ws, key string, fp [32]byte, noun string) (claim *idemClaim, answered bool) {
	if key == "" {
		return nil, false
	}
	e, outcome := h.idem.begin(idemScope(route, ws, key), fp)
	switch outcome {
	case idemReplay:
		h.m.replayed.Inc()
		c.Header(HeaderReplayed, "true")
		c.Data(e.resp.code, "application/json; charset=utf-8", e.resp.body)
		return nil, true
	case idemInFlight:
		h.fail(c, &apiError{code: http.StatusConflict, reason: reasonIdempotencyBusy, retryAfter: 1,
			message: "a request with this Idempotency-Key is still being processed; retry later to get its answer"})
		return nil, true
	case idemMismatch:
		h.fail(c, &apiError{code: http.StatusUnprocessableEntity, reason: reasonIdempotencyReused,
			message: "this Idempotency-Key was already used with a different request body; use a new key for a new " + noun})
		return nil, true
	}
	return &idemClaim{store: h.idem, e: e, owned: true}, false
}
