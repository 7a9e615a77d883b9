package compliance

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// Table is the do-not-call lists of every workspace, held whole in memory
// and fed from the compacted topic schemas.TopicSuppressions (see
// FollowSuppressions). Lookup fails closed: until the table has read the
// topic up to where it ended when the process started, it answers
// ErrNotReady, never "not listed".
//
// Memory: a number is a uint64 (numberKey) in a per-workspace map whose
// value is its reason and the second it was added, 16 bytes a slot; about
// 40 bytes per number with the map's own overhead (see the benchmark).
// Notes and call ids stay in Kafka: the dial-time check needs only yes/no
// and the reason.
type Table struct {
	mu    sync.RWMutex
	lists map[string]map[uint64]suppression
	n     int
	ready atomic.Bool
}

type suppression struct {
	added  uint32 // unix seconds
	reason uint8  // index into schemas.SuppressionReasons
}

// Entry is one listed number.
type Entry struct {
	Number  string
	Reason  schemas.SuppressionReason
	AddedAt time.Time
}

// NewTable returns an empty table, not ready.
func NewTable() *Table { return &Table{lists: map[string]map[uint64]suppression{}} }

// SetReady marks the table complete (the follower calls it once caught up).
func (t *Table) SetReady() { t.ready.Store(true) }

// Ready reports whether the table has caught up.
func (t *Table) Ready() bool { return t.ready.Load() }

// Add lists a number, replacing an earlier entry for it.
func (t *Table) Add(ws, number string, reason schemas.SuppressionReason, at time.Time) error {
	k, ok := numberKey(number)
	if !ok {
		return fmt.Errorf("suppression list: %w: %q", ErrBadNumber, number)
	}
	r := slices.Index(schemas.SuppressionReasons, reason)
	if r < 0 {
		return fmt.Errorf("suppression list: unknown reason %q", reason)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.lists[ws]
	if l == nil {
		l = map[uint64]suppression{}
		t.lists[ws] = l
	}
	if _, ok := l[k]; !ok {
		t.n++
	}
	l[k] = suppression{added: uint32(at.Unix()), reason: uint8(r)}
	return nil
}

// Remove unlists a number; it reports whether it was listed.
func (t *Table) Remove(ws, number string) bool {
	k, ok := numberKey(number)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.lists[ws]
	if _, ok := l[k]; !ok {
		return false
	}
	delete(l, k)
	t.n--
	if len(l) == 0 {
		delete(t.lists, ws)
	}
	return true
}

// Lookup returns a number's entry on a workspace's list. It returns
// ErrNotReady while the table has not caught up: a caller must then not
// dial.
func (t *Table) Lookup(ws, number string) (Entry, bool, error) {
	if !t.Ready() {
		return Entry{}, false, ErrNotReady
	}
	k, ok := numberKey(number)
	if !ok {
		return Entry{}, false, fmt.Errorf("suppression list: %w: %q", ErrBadNumber, number)
	}
	e, ok := t.lookup(ws, k)
	return e, ok, nil
}

func (t *Table) lookup(ws string, k uint64) (Entry, bool) {
	t.mu.RLock()
	s, ok := t.lists[ws][k]
	t.mu.RUnlock()
	if !ok {
		return Entry{}, false
	}
	return Entry{Number: numberString(k), Reason: schemas.SuppressionReasons[s.reason], AddedAt: time.Unix(int64(s.added), 0).UTC()}, true
}

// Len returns how many numbers are listed, over every workspace.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}

// Entries returns a workspace's listed numbers in ascending order of their
// digits, after the number after ("" for the first page), at most limit
// (all when limit <= 0): the cursor-paged list and the CSV export. It sorts
// the workspace's list, so it costs O(n log n) per call: fine for an
// operator's page, not for a hot path.
func (t *Table) Entries(ws, after string, limit int) []Entry {
	var from uint64
	if after != "" {
		from, _ = numberKey(after)
	}
	t.mu.RLock()
	keys := make([]uint64, 0, len(t.lists[ws]))
	for k := range t.lists[ws] {
		if k > from {
			keys = append(keys, k)
		}
	}
	t.mu.RUnlock()
	slices.Sort(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]Entry, 0, len(keys))
	for _, k := range keys {
		if e, ok := t.lookup(ws, k); ok {
			out = append(out, e)
		}
	}
	return out
}
