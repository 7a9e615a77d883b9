package dialer

import (
	"container/heap"
	"math"
	"sync"
	"time"

	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// admission decides when a queued call may dial: per workspace, at most
// max_concurrent_calls between dialing and ended, and new dials paced by a
// token bucket (calls_per_second, burst). Each workspace has its own FIFO
// queue (ordered by the time the request entered Kafka), so a workspace at
// its limit never delays another's calls.
//
// It is shared by every partition this process owns: a workspace's calls are
// spread over all partitions, and one controller sees them all. With several
// dialer processes each enforces a share of the limits proportional to the
// partitions it owns (rounded up), which is exact for one process and
// approximate for more. A decision is not a transition: admission writes an
// admit command to the call's partition, and the partition's owner applies
// it (queued -> dialing) in log order.
type admission struct {
	reg   *registry.Registry
	now   func() time.Time
	admit func(e admitTicket) // writes the admit command; calls back failed() if it cannot

	mu          sync.Mutex
	workspaces  map[string]*wsAdmission
	calls       map[string]*admEntry
	perPart     map[int32]int // queued calls per partition
	ownedParts  int
	totalParts  int
	wake        chan struct{}
	queuedTotal int
	liveTotal   int
	onGauge     func(queued, live int)
}

// admitTicket is one admission decision to write.
type admitTicket struct {
	CallID, WorkspaceID string
	// To and CallAgentID are what the compliance check needs.
	To, CallAgentID string
	Partition       int32
	At              time.Time
	// TraceParent and TraceState are the call's, for the admit command.
	TraceParent, TraceState string
}

type admState uint8

const (
	admQueued admState = iota + 1
	admLive            // admitted (admit command written or applied) until ended
)

type admEntry struct {
	callID, ws string
	to, agent  string
	part       int32
	tp, ts     string // the call's trace context
	queuedAt   time.Time
	state      admState
	idx        int // heap index while queued
}

type wsAdmission struct {
	id     string
	queue  admHeap
	live   int
	tokens float64
	last   time.Time
}

func newAdmission(reg *registry.Registry, totalParts int, now func() time.Time, admit func(admitTicket)) *admission {
	return &admission{
		reg: reg, now: now, admit: admit, totalParts: max(1, totalParts),
		workspaces: map[string]*wsAdmission{}, calls: map[string]*admEntry{},
		perPart: map[int32]int{}, wake: make(chan struct{}, 1),
		onGauge: func(int, int) {},
	}
}

// limits returns the workspace's limits scaled to this process's share of
// the partitions.
func (a *admission) limits(ws string) (maxLive int, rate float64, burst float64) {
	l := registry.Limits{MaxConcurrentCalls: 1, CallsPerSecond: 1, Burst: 1}
	if w, ok := a.reg.Workspace(ws); ok {
		l = w.Limits
	}
	share := 1.0
	if a.ownedParts > 0 && a.ownedParts < a.totalParts {
		share = float64(a.ownedParts) / float64(a.totalParts)
	}
	maxLive = max(1, int(math.Ceil(float64(l.MaxConcurrentCalls)*share)))
	rate = l.CallsPerSecond * share
	burst = max(1, math.Ceil(float64(l.Burst)*share))
	return maxLive, rate, burst
}

func (a *admission) ws(id string) *wsAdmission {
	w := a.workspaces[id]
	if w == nil {
		_, _, burst := a.limits(id)
		w = &wsAdmission{id: id, tokens: burst, last: a.now()}
		a.workspaces[id] = w
	}
	return w
}

// setOwned records how many partitions this process owns.
func (a *admission) setOwned(n int) {
	a.mu.Lock()
	a.ownedParts = n
	a.mu.Unlock()
	a.poke()
}

// sync makes the controller agree with a call's durable phase. It is
// idempotent, so owners call it after every applied transition and for every
// call they load.
func (a *admission) sync(part int32, s *callState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.calls[s.CallID]
	switch {
	case s.Phase == schemas.StatusQueued:
		if e != nil {
			return // queued already, or admitted and the admit not applied yet
		}
		e = &admEntry{callID: s.CallID, ws: s.WorkspaceID, to: s.To, agent: s.CallAgentID, part: part, queuedAt: s.QueuedAt, tp: s.TraceParent, ts: s.TraceState}
		a.calls[s.CallID] = e
		a.enqueueLocked(e)
	case s.live():
		if e == nil {
			e = &admEntry{callID: s.CallID, ws: s.WorkspaceID, part: part}
			a.calls[s.CallID] = e
		} else if e.state == admLive {
			return
		} else {
			a.dequeueLocked(e)
		}
		e.state = admLive
		a.ws(e.ws).live++
		a.liveTotal++
	default: // ended
		if e == nil {
			return
		}
		a.removeLocked(e)
	}
	a.gaugeLocked()
	a.pokeLocked()
}

// failed puts back a call whose admit command could not be written.
func (a *admission) failed(t admitTicket) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.calls[t.CallID]
	if e == nil || e.state != admLive {
		return
	}
	w := a.ws(e.ws)
	w.live--
	a.liveTotal--
	a.enqueueLocked(e)
	a.gaugeLocked()
}

// dropPartition forgets the calls of a partition this process no longer owns.
func (a *admission) dropPartition(part int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.calls {
		if e.part == part {
			a.removeLocked(e)
		}
	}
	a.gaugeLocked()
	a.pokeLocked()
}

// queuedIn is the number of calls of a partition waiting for admission.
func (a *admission) queuedIn(part int32) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.perPart[part]
}

func (a *admission) enqueueLocked(e *admEntry) {
	e.state = admQueued
	heap.Push(&a.ws(e.ws).queue, e)
	a.perPart[e.part]++
	a.queuedTotal++
}

func (a *admission) dequeueLocked(e *admEntry) {
	heap.Remove(&a.ws(e.ws).queue, e.idx)
	a.perPart[e.part]--
	a.queuedTotal--
}

func (a *admission) removeLocked(e *admEntry) {
	switch e.state {
	case admQueued:
		a.dequeueLocked(e)
	case admLive:
		a.ws(e.ws).live--
		a.liveTotal--
	}
	delete(a.calls, e.callID)
}

func (a *admission) gaugeLocked() { a.onGauge(a.queuedTotal, a.liveTotal) }

func (a *admission) poke() {
	a.mu.Lock()
	a.pokeLocked()
	a.mu.Unlock()
}

func (a *admission) pokeLocked() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// step admits every call that may go now and returns how long until a token
// frees a call that is waiting only for its rate (0: nothing waits on time).
func (a *admission) step() (tickets []admitTicket, wait time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for _, w := range a.workspaces {
		maxLive, rate, burst := a.limits(w.id)
		w.tokens = math.Min(burst, w.tokens+now.Sub(w.last).Seconds()*rate)
		w.last = now
		for w.queue.Len() > 0 && w.live < maxLive {
			if w.tokens < 1 {
				if d := time.Duration((1 - w.tokens) / rate * float64(time.Second)); wait == 0 || d < wait {
					wait = max(d, time.Millisecond)
				}
				break
			}
			w.tokens--
			e := heap.Pop(&w.queue).(*admEntry)
			a.perPart[e.part]--
			a.queuedTotal--
			e.state = admLive
			w.live++
			a.liveTotal++
			tickets = append(tickets, admitTicket{CallID: e.callID, WorkspaceID: e.ws, To: e.to, CallAgentID: e.agent,
				Partition: e.part, At: now, TraceParent: e.tp, TraceState: e.ts})
		}
		if w.queue.Len() == 0 && w.live == 0 && w.tokens >= burst {
			delete(a.workspaces, w.id) // idle and full: nothing to remember
		}
	}
	a.gaugeLocked()
	return tickets, wait
}

// run admits calls until done is closed.
func (a *admission) run(done <-chan struct{}) {
	var timer *time.Timer
	var timerC <-chan time.Time
	for {
		tickets, wait := a.step()
		for _, t := range tickets {
			a.admit(t)
		}
		if timer != nil {
			timer.Stop()
			timerC = nil
		}
		if wait > 0 {
			timer = time.NewTimer(wait)
			timerC = timer.C
		}
		select {
		case <-done:
			return
		case <-a.wake:
		case <-timerC:
		}
	}
}

// admHeap orders a workspace's queued calls by arrival, then call id.
type admHeap []*admEntry

func (h admHeap) Len() int { return len(h) }
func (h admHeap) Less(i, j int) bool {
	if !h[i].queuedAt.Equal(h[j].queuedAt) {
		return h[i].queuedAt.Before(h[j].queuedAt)
	}
	return h[i].callID < h[j].callID
}
func (h admHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *admHeap) Push(x any) {
	e := x.(*admEntry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *admHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}
