package ingest

import (
	"encoding/binary"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/google/btree"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// The call-state projection: what GET /v1/api/call/:callId, GET
// /v1/api/calls, cancel, deliveries and redeliver read.
//
// # Storage: memory, rebuilt from Kafka
//
// Kafka already is the durable, replicated log of every call: its request
// (dialstream.calls.requested), its lifecycle events (dialstream.calls.events)
// and its webhook attempts (dialstream.webhooks.deliveries). Each ingest
// replica folds those topics into this in-memory store, reading every
// partition directly (no consumer group, so every replica sees every call)
// from INGEST_CALLS_RETENTION ago on each start. A restart loses nothing
// that Kafka still holds, and replicas stay alike without talking to each
// other.
//
// An embedded on-disk store (bbolt, Pebble) was weighed and not taken: it
// would be a second copy of the log whose offsets must be kept in step with
// Kafka's, a volume per replica (ingest would stop being a stateless
// Deployment), and it would not spare the catch-up on start, only shorten it.
// A compacted state topic would need a writer, i.e. a consumer group, on the
// API's read path. What memory costs instead: a start replays the retained
// window before /readyz turns ready (see follow.go), and memory grows with
// the calls retained. Both are bounded:
//
//   - by age (INGEST_CALLS_RETENTION, default 24h): a call whose requested_at
//     is older is dropped, and records of such calls are not taken in;
//   - by count (INGEST_CALLS_MAX, default 20000): past it the call with the
//     oldest requested_at is dropped first, and a record of a call older
//     than every call kept is not taken in.
//
// Measured (BenchmarkCallStateLoad, this project's 2-core machine): a typical
// call (its request, the original bytes of its five events, kept so that
// redeliver resends them unchanged, and two delivery attempts) keeps about
// 6.5 KiB of heap, more when its metadata or dynamic_variables are large or
// its webhooks were retried (at most maxDeliveriesPerCall attempts are
// kept); so ~130 MiB of live heap at the default count, twice that as Go's
// heap target (set GOMEMLIMIT in a tight container). A start reads ~130 µs
// of CPU per call (most of it validating requests against their schema):
// about 3 s for 20000 calls; it reads at most about INGEST_CALLS_MAX calls'
// records however many the retention window holds (follower.lookback). A call older than the retention is gone from
// the API (404) even though Kafka may still hold it; its webhooks were
// delivered long before.

// maxDeliveriesPerCall bounds the delivery attempts kept per call (the
// newest are kept): the default schedule makes at most 8 per event, but
// redeliveries add more without limit.
const maxDeliveriesPerCall = 200

// keyRank says how sure a call's position in the list is: a rank only gives
// way to a higher one, so a call moves at most a few times, and only in the
// rare cases where its first record seen is not its request.
type keyRank uint8

const (
	rankGuess   keyRank = iota // occurred_at or attempted_at of the first record seen
	rankLocal                  // requested_at of this replica's own record, not yet read back
	rankRequest                // requested_at of the call's first record in the requested topic
	rankDialer                 // requested_at on the call's lifecycle events: what the dialer took
)

// callKey orders calls: requested_at (Unix ns), then call id.
type callKey struct {
	at int64
	id string
}

func (a callKey) less(b callKey) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.id < b.id
}

// storedRecord is an event record's value and headers, copied out of the
// fetch buffer (a slice into it would keep the whole fetched batch alive)
// into one allocation: the value, then the headers packed as (uvarint key
// length, key, uvarint value length, value)... The key is the call id.
// Packing keeps a call's five events at about 4 KiB rather than twice that
// as separate header strings.
type storedRecord struct {
	buf      []byte
	valueLen int
}

func copyRecord(r *kgo.Record) storedRecord {
	n := len(r.Value)
	for _, h := range r.Headers {
		n += 2*binary.MaxVarintLen32 + len(h.Key) + len(h.Value)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, r.Value...)
	for _, h := range r.Headers {
		buf = binary.AppendUvarint(buf, uint64(len(h.Key)))
		buf = append(buf, h.Key...)
		buf = binary.AppendUvarint(buf, uint64(len(h.Value)))
		buf = append(buf, h.Value...)
	}
	return storedRecord{buf: buf[:len(buf):len(buf)], valueLen: len(r.Value)}
}

func (s storedRecord) value() []byte { return s.buf[:s.valueLen:s.valueLen] }

// record rebuilds the original record of topic, keyed by key.
func (s storedRecord) record(topic, key string) *kgo.Record {
	r := &kgo.Record{Topic: topic, Key: []byte(key), Value: s.value()}
	for b := s.buf[s.valueLen:]; len(b) > 0; {
		k, b2 := unpackBytes(b)
		v, b3 := unpackBytes(b2)
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: string(k), Value: v})
		b = b3
	}
	return r
}

func unpackBytes(b []byte) ([]byte, []byte) {
	n, w := binary.Uvarint(b)
	b = b[w:]
	return b[:n:n], b[n:]
}

// storedEvent is one lifecycle event of a call.
type storedEvent struct {
	id     string // ce_id: the webhook-id receivers saw
	seq    int
	status schemas.Status
	at     time.Time
	rec    storedRecord
}

// eventFacts are the fields of a lifecycle event the store keeps apart from
// its bytes.
type eventFacts struct {
	CallID      string          `json:"call_id"`
	WorkspaceID string          `json:"workspace_id"`
	Sequence    int             `json:"sequence"`
	Status      schemas.Status  `json:"status"`
	OccurredAt  time.Time       `json:"occurred_at"`
	RequestedAt *time.Time      `json:"requested_at"`
	CallAgentID string          `json:"call_agent_id"`
	Outcome     schemas.Outcome `json:"outcome"`
}

// eventTypes maps a status to its CloudEvent type, without building the
// string for every event.
var eventTypes = func() map[schemas.Status]string {
	m := map[schemas.Status]string{}
	for _, s := range schemas.EventStatuses {
		m[s] = s.Type()
	}
	return m
}()

// requestFacts is the call's request as the dialer took it.
type requestFacts struct {
	req       schemas.CallRequested
	partition int32
	offset    int64
	local     bool // from this replica's produce acknowledgement, not yet read back
}

type callRec struct {
	id, ws string
	key    callKey
	rank   keyRank
	req    *requestFacts
	events []storedEvent // ascending sequence, one per sequence
	// Summary fields the list filters on, kept as events arrive.
	agent   string
	outcome schemas.Outcome
	// deliveries are the call's webhook attempts in log order (newest
	// maxDeliveriesPerCall).
	deliveries []schemas.WebhookAttempt
	cancelAt   time.Time
}

// visible: a call exists for the API once its request or an event is known;
// delivery attempts alone do not make one.
func (c *callRec) visible() bool { return c.req != nil || len(c.events) > 0 }

func (c *callRec) status() schemas.Status {
	for i := len(c.events) - 1; i >= 0; i-- {
		if s := c.events[i].status; s.Lifecycle() {
			return s
		}
	}
	return schemas.StatusQueued
}

func keyOrder(a, b *callRec) bool { return a.key.less(b.key) }

// evictReason labels dialstream_ingest_calls_evicted_total.
type evictReason string

const (
	evictAge   evictReason = "age"
	evictCount evictReason = "count"
)

// store is the projection. Every method is safe for concurrent use.
type store struct {
	mu        sync.RWMutex
	retention time.Duration
	max       int
	now       func() time.Time
	calls     map[string]*callRec
	all       *btree.BTreeG[*callRec]            // every call, for eviction
	byWS      map[string]*btree.BTreeG[*callRec] // each workspace's calls, for the list
	// onEvict is told of every call dropped (metrics).
	onEvict func(evictReason)
}

func newStore(retention time.Duration, max int) *store {
	return &store{
		retention: retention, max: max, now: time.Now,
		calls: map[string]*callRec{}, all: btree.NewG(32, keyOrder),
		byWS: map[string]*btree.BTreeG[*callRec]{}, onEvict: func(evictReason) {},
	}
}

func (s *store) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.calls)
}

// tooOld reports whether a call requested (or first seen) at t is past the
// retention.
func (s *store) tooOld(t time.Time) bool { return s.now().Sub(t) > s.retention }

// upsertLocked returns the call, created when absent, placed at (at, rank).
// It returns nil when the record must not be taken in: the call id belongs
// to another workspace (the first record of a call fixes its workspace, as
// the dialer's first request does), the call is past the retention, or the
// store is full of newer calls.
func (s *store) upsertLocked(id, ws string, at time.Time, rank keyRank) *callRec {
	k := callKey{at: at.UnixNano(), id: id}
	if c := s.calls[id]; c != nil {
		if c.ws != ws {
			return nil
		}
		if k.at != c.key.at && (rank > c.rank || (rank == c.rank && rank == rankGuess && k.at < c.key.at)) {
			s.unindexLocked(c)
			c.key, c.rank = k, rank
			s.indexLocked(c)
		} else if rank > c.rank {
			c.rank = rank
		}
		return c
	}
	if s.tooOld(at) {
		return nil
	}
	if len(s.calls) >= s.max {
		oldest, _ := s.all.Min()
		if k.less(oldest.key) {
			return nil
		}
		s.removeLocked(oldest)
		s.onEvict(evictCount)
	}
	c := &callRec{id: id, ws: ws, key: k, rank: rank}
	s.calls[id] = c
	s.indexLocked(c)
	return c
}

func (s *store) indexLocked(c *callRec) {
	s.all.ReplaceOrInsert(c)
	t := s.byWS[c.ws]
	if t == nil {
		t = btree.NewG(32, keyOrder)
		s.byWS[c.ws] = t
	}
	t.ReplaceOrInsert(c)
}

func (s *store) unindexLocked(c *callRec) {
	s.all.Delete(c)
	if t := s.byWS[c.ws]; t != nil {
		t.Delete(c)
		if t.Len() == 0 {
			delete(s.byWS, c.ws)
		}
	}
}

func (s *store) removeLocked(c *callRec) {
	s.unindexLocked(c)
	delete(s.calls, c.id)
}

// evict drops the calls past the retention.
func (s *store) evict() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	bound := s.now().Add(-s.retention).UnixNano()
	n := 0
	for {
		c, ok := s.all.Min()
		if !ok || c.key.at >= bound {
			return n
		}
		s.removeLocked(c)
		s.onEvict(evictAge)
		n++
	}
}

// putRequest records a call.requested record read at partition/offset, or
// (local) acknowledged to this replica. The call's first record in the topic
// is the one the dialer acts on; a later duplicate (a retry that reached
// another replica) changes nothing.
func (s *store) putRequest(r *schemas.CallRequested, partition int32, offset int64, local bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rank := rankRequest
	if local {
		rank = rankLocal
	}
	c := s.calls[r.CallID]
	if c != nil && c.ws == r.WorkspaceID && c.req != nil {
		old := c.req
		replace := old.partition == partition &&
			(offset < old.offset || (offset == old.offset && old.local && !local))
		if !replace {
			return false
		}
	}
	if c = s.upsertLocked(r.CallID, r.WorkspaceID, r.RequestedAt, rank); c == nil {
		return false
	}
	c.req = &requestFacts{req: *r, partition: partition, offset: offset, local: local}
	if c.agent == "" {
		c.agent = r.CallAgentID
	}
	return true
}

// putCancel notes when a cancel of the call was first requested. A cancel
// naming another workspace is ignored, as the dialer ignores it.
func (s *store) putCancel(cc *schemas.CallCancel) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls[cc.CallID]
	if c == nil || c.ws != cc.WorkspaceID || !c.cancelAt.IsZero() {
		return false
	}
	c.cancelAt = cc.RequestedAt
	return true
}

// putEvent adds a lifecycle event. A replayed event (a sequence already
// held) changes nothing: the dialer re-emits the same event with the same
// sequence and id.
func (s *store) putEvent(ev *eventFacts, id string, rec storedRecord) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, rank := ev.OccurredAt, rankGuess
	if ev.RequestedAt != nil {
		at, rank = *ev.RequestedAt, rankDialer
	}
	c := s.upsertLocked(ev.CallID, ev.WorkspaceID, at, rank)
	if c == nil {
		return false
	}
	i := sort.Search(len(c.events), func(i int) bool { return c.events[i].seq >= ev.Sequence })
	if i < len(c.events) && c.events[i].seq == ev.Sequence {
		return false
	}
	c.events = append(c.events, storedEvent{})
	copy(c.events[i+1:], c.events[i:])
	c.events[i] = storedEvent{id: id, seq: ev.Sequence, status: ev.Status, at: ev.OccurredAt, rec: rec}
	if ev.Status == schemas.StatusEnded {
		c.outcome = ev.Outcome
	}
	if c.agent == "" {
		c.agent = ev.CallAgentID
	}
	return true
}

// putAttempt adds a webhook delivery attempt.
func (s *store) putAttempt(a *schemas.WebhookAttempt) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.upsertLocked(a.CallID, a.WorkspaceID, a.AttemptedAt, rankGuess)
	if c == nil {
		return false
	}
	if len(c.deliveries) >= maxDeliveriesPerCall {
		n := copy(c.deliveries, c.deliveries[1:])
		c.deliveries = c.deliveries[:n]
	}
	c.deliveries = append(c.deliveries, *a)
	return true
}

// withCall runs fn on workspace ws's call id under the read lock; false when
// there is no such call in that workspace (missing and foreign look alike).
func (s *store) withCall(ws, id string, fn func(c *callRec)) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.calls[id]
	if c == nil || c.ws != ws || !c.visible() {
		return false
	}
	fn(c)
	return true
}

// listFilter selects calls of one workspace. Zero fields select everything.
type listFilter struct {
	status  schemas.Status
	outcome schemas.Outcome
	agent   string
	from    time.Time // requested_at >= from
	to      time.Time // requested_at < to
	after   *callKey  // the cursor: calls strictly older than it
}

func (f *listFilter) match(c *callRec) bool {
	return c.visible() &&
		(f.status == "" || c.status() == f.status) &&
		(f.outcome == "" || c.outcome == f.outcome) &&
		(f.agent == "" || c.agent == f.agent)
}

// list returns up to limit of workspace ws's calls matching f, newest
// first by (requested_at, call id), built by view under the read lock, and
// the key of the last one when more follow. The order is total and a call's
// key does not change once its request is known, so paging by "strictly
// older than the last key" never repeats a call and never skips one that
// was there when the first page was read; calls that arrive meanwhile are
// newer than the cursor and show on a new first page.
func (s *store) list(ws string, f listFilter, limit int, view func(*callRec)) (next *callKey) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.byWS[ws]
	if t == nil {
		return nil
	}
	pivot := &callRec{key: callKey{at: 1<<63 - 1, id: "\xff"}}
	if !f.to.IsZero() {
		pivot.key = callKey{at: f.to.UnixNano() - 1, id: "\xff"}
	}
	if f.after != nil && f.after.less(pivot.key) {
		pivot.key = *f.after
	}
	from := int64(-1 << 63)
	if !f.from.IsZero() {
		from = f.from.UnixNano()
	}
	n := 0
	var last callKey
	t.DescendLessOrEqual(pivot, func(c *callRec) bool {
		if c.key.at < from {
			return false
		}
		if f.after != nil && !c.key.less(*f.after) {
			return true
		}
		if !f.match(c) {
			return true
		}
		if n == limit {
			next = &last
			return false
		}
		view(c)
		last = c.key
		n++
		return true
	})
	return next
}

// decodeEvent returns a stored event's data.
func (e *storedEvent) decode() (schemas.CallEvent, error) {
	var ev schemas.CallEvent
	err := json.Unmarshal(e.rec.value(), &ev)
	return ev, err
}
