package compliance

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Settle and InFlightTimeout shape this process's one attempt in flight per
// number (Reserve; doc.go says why). After a reservation, the next one for
// the same number waits until the first has come back on the events topic
// and Settle more has passed; or, if it never comes back (a dial that did not
// happen and was not released), until InFlightTimeout has passed. A dialing
// event is written before the dial starts, so it normally comes back within
// milliseconds.
const (
	Settle          = time.Second
	InFlightTimeout = 30 * time.Second
)

// Attempts counts the attempts to each number per workspace over the last 7
// days: the attempt history the caps are checked against. It is fed from the
// events topic (Record, for every dialing event, by whichever dialer placed
// it) and by this process's own reservations (Reserve), and is safe for
// concurrent use. Time always comes from the caller.
//
// Each attempt is one uint64 (its second, and a 32-bit hash of its call id
// to recognize the same call's event when it is read again after a
// restart), kept per (workspace, number) for 7 days and at most MaxCap of
// them: the latest MaxCap decide any cap up to MaxCap. A million numbers
// dialed once in the week take about 117 bytes each (map slot, slice header
// and its one-element array; BenchmarkAttemptsMemoryMillion).
type Attempts struct {
	mu       sync.Mutex
	wsIndex  map[string]uint32
	log      map[attemptKey][]uint64
	inflight map[attemptKey]inflight
	ready    atomic.Bool
	// now stamps when a reservation comes back; time.Now unless a test
	// sets it.
	now func() time.Time
}

type attemptKey struct {
	ws     uint32
	number uint64
}

type inflight struct {
	call     uint32
	reserved time.Time // the decision's time
	seen     time.Time // when its dialing event was read back; zero until then
}

// blocks reports whether the reservation still holds off another one at at.
func (f inflight) blocks(at time.Time) bool {
	if f.seen.IsZero() {
		return at.Sub(f.reserved) < InFlightTimeout
	}
	return at.Sub(f.seen) < Settle
}

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// NewAttempts returns an empty history, not ready: Check refuses to decide
// until SetReady (the events follower calls it once it has read the last
// week of events).
func NewAttempts() *Attempts {
	return &Attempts{wsIndex: map[string]uint32{}, log: map[attemptKey][]uint64{}, inflight: map[attemptKey]inflight{}, now: time.Now}
}

// SetReady marks the history complete: every attempt of the last 7 days that
// Kafka held at start has been recorded.
func (a *Attempts) SetReady() { a.ready.Store(true) }

// Ready reports whether SetReady was called.
func (a *Attempts) Ready() bool { return a.ready.Load() }

func pack(at time.Time, call uint32) uint64 { return uint64(uint32(at.Unix()))<<32 | uint64(call) }
func unpackTime(e uint64) int64             { return int64(e >> 32) }
func unpackCall(e uint64) uint32            { return uint32(e) }

func callHash(callID string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(callID))
	return h.Sum32()
}

// key returns the map key; ok is false for a string that is not E.164. With
// create unset, an unknown workspace is not added to the index.
func (a *Attempts) key(ws, number string, create bool) (attemptKey, bool) {
	n, ok := numberKey(number)
	if !ok {
		return attemptKey{}, false
	}
	i, ok := a.wsIndex[ws]
	if !ok {
		if !create {
			return attemptKey{}, false
		}
		i = uint32(len(a.wsIndex))
		a.wsIndex[ws] = i
	}
	return attemptKey{ws: i, number: n}, true
}

// Record counts an attempt read from the events topic (a dialing event). The
// same call recorded twice counts once. When the call is this process's
// reservation, it marks it come back (see Settle).
func (a *Attempts) Record(ws, number, callID string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k, ok := a.key(ws, number, true)
	if !ok {
		return
	}
	h := callHash(callID)
	if f, ok := a.inflight[k]; ok && f.call == h && f.seen.IsZero() {
		f.seen = a.now()
		a.inflight[k] = f
	}
	a.insert(k, h, at)
}

func (a *Attempts) insert(k attemptKey, h uint32, at time.Time) {
	l := a.log[k]
	for _, e := range l {
		if unpackCall(e) == h {
			return
		}
	}
	e := pack(at, h)
	i, _ := slices.BinarySearch(l, e) // sorted by time (the high bits)
	l = slices.Insert(l, i, e)
	// Older than a week, or beyond the latest MaxCap: neither can change
	// a decision again.
	from := at.Add(-week).Unix()
	drop := 0
	for drop < len(l) && unpackTime(l[drop]) <= from {
		drop++
	}
	drop = max(drop, len(l)-MaxCap)
	if drop > 0 {
		l = slices.Clone(l[drop:])
	}
	a.log[k] = l
}

// Forget removes a call's attempt: a dialing that ended with a compliance
// outcome was never rung, and a reservation whose dial will not happen
// (Release) is not an attempt.
func (a *Attempts) Forget(ws, number, callID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k, ok := a.key(ws, number, false)
	if !ok {
		return
	}
	h := callHash(callID)
	if f, ok := a.inflight[k]; ok && f.call == h {
		delete(a.inflight, k)
	}
	l := a.log[k]
	for i, e := range l {
		if unpackCall(e) == h {
			l = slices.Delete(l, i, i+1)
			break
		}
	}
	if len(l) == 0 {
		delete(a.log, k)
	} else {
		a.log[k] = l
	}
}

// Allowed reports whether one more attempt to number at at stays within
// caps, and otherwise when it would. It does not count anything.
func (a *Attempts) Allowed(ws, number string, at time.Time, caps Caps) (bool, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k, ok := a.key(ws, number, false)
	if !ok {
		return within(nil, at, caps)
	}
	return within(a.log[k], at, caps)
}

// Reserve is Allowed and, when allowed, the attempt counted at once, in one
// step: this process's own attempts count from the moment it decides, before
// their dialing event has gone round through Kafka, so two of its partitions
// can never both take the last attempt. A call already counted (its event was
// read, or it was reserved before) is allowed again without counting twice.
//
// While this process's previous reservation for the number has not come
// back on the events topic, or came back less than Settle ago, Reserve
// returns ErrNotReady: one attempt in flight per number and process is what
// bounds the race between dialers to one extra attempt (see doc.go). The
// caller asks again shortly. With both caps unlimited there is nothing to
// race for: Reserve allows without counting, and the dialing event counts
// the attempt when it is read.
func (a *Attempts) Reserve(ws, number, callID string, at time.Time, caps Caps) (bool, time.Time, error) {
	if caps.PerDay == Unlimited && caps.PerWeek == Unlimited {
		return true, at, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k, ok := a.key(ws, number, true)
	if !ok {
		return false, time.Time{}, ErrBadNumber
	}
	h := callHash(callID)
	l := a.log[k]
	for _, e := range l {
		if unpackCall(e) == h {
			return true, at, nil
		}
	}
	if f, ok := a.inflight[k]; ok && f.call != h && f.blocks(at) {
		return false, time.Time{}, fmt.Errorf("%w: an attempt to the same number is in flight", ErrNotReady)
	}
	if ok, next := within(l, at, caps); !ok {
		return false, next, nil
	}
	a.insert(k, h, at)
	a.inflight[k] = inflight{call: h, reserved: at}
	return true, at, nil
}

// Release undoes a reservation whose dial will not happen (the call was
// canceled or ended before dialing, or writing its dialing event failed).
func (a *Attempts) Release(ws, number, callID string) { a.Forget(ws, number, callID) }

// within counts l's attempts in the rolling day and week before at.
func within(l []uint64, at time.Time, caps Caps) (bool, time.Time) {
	next := time.Time{}
	for _, w := range []struct {
		limit int
		span  time.Duration
	}{{caps.PerDay, day}, {caps.PerWeek, week}} {
		if w.limit == Unlimited {
			continue
		}
		// Attempts after at (another dialer's clock running ahead) count:
		// they happened.
		from := at.Add(-w.span).Unix()
		i := 0
		for i < len(l) && unpackTime(l[i]) <= from {
			i++
		}
		c := len(l) - i
		if c < w.limit {
			continue
		}
		// Enough of the oldest in the window must age out to leave room
		// for one more.
		free := time.Unix(unpackTime(l[i+c-w.limit]), 0).Add(w.span)
		if free.After(next) {
			next = free
		}
	}
	if next.IsZero() {
		return true, at
	}
	return false, next
}

// Prune drops attempts older than a week before now, numbers left with none,
// and reservations that no longer hold anything off; it returns how many numbers it
// dropped. Run it every few minutes: Record trims only the numbers it
// touches.
func (a *Attempts) Prune(now time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	from := now.Add(-week).Unix()
	dropped := 0
	for k, l := range a.log {
		i := 0
		for i < len(l) && unpackTime(l[i]) <= from {
			i++
		}
		switch {
		case i == len(l):
			delete(a.log, k)
			dropped++
		case i > 0:
			a.log[k] = slices.Clone(l[i:])
		}
	}
	for k, f := range a.inflight {
		if !f.blocks(now) {
			delete(a.inflight, k)
		}
	}
	return dropped
}

// Numbers returns how many numbers have attempts in the history.
func (a *Attempts) Numbers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.log)
}
