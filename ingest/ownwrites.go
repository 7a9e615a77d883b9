package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/schemas"
)

// ownWrites gives read-your-writes for the requests this replica
// acknowledged, without writing them in the common case: the recorder
// writes every request into the call records anyway, and stores the
// offsets it has written up to with its rows (consumed_offsets, in the same
// transaction), so a request is in the records once the recorder's stored
// offset on its partition of calls.requested passes the request's offset.
//
// POST /v1/api/call only notes its acknowledged record (partition, offset,
// the request) here. The reads wait instead: a read of the call records
// (get, list, export, deliveries, and the reads of cancel, redeliver and
// the agent's reports) first waits until every request this replica
// acknowledged before it is settled, so a client that got its 202 and
// then asks this replica sees its call. A request is settled when
//   - the recorder's stored offsets have passed it and its request is in
//     the records (the loop below reads the offsets every ownPoll while
//     anything is pending, every ownPollReading while a read waits, and
//     asks for the rows of what they passed: the recorder passes over a
//     record it cannot take, say of a workspace its registry does not
//     have yet, and ingest then writes it at once), or
//   - ingest wrote it itself, the fallback, when a read has waited
//     ownReadBudget for it, when it has been pending ownFallback (the
//     recorder is down, lagging or absent), or when the queue is half full.
//     The fallback write is marked local: the recorder's read of the same
//     record replaces it (callrecords.PutRequest).
//
// Before this, ingest wrote every request itself by group commit: 28 µs of
// CPU a request (five B-trees per call row in pure-Go SQLite), the largest
// part of what POST cost above the bare produce, for a row the recorder
// writes again a few milliseconds later. Now a read right after a POST
// waits for the recorder (a few milliseconds when it keeps up, at most
// ownReadBudget before ingest writes), and POST does no database work.
//
// A fallback write that fails settles its requests anyway: they are in
// Kafka and the recorder writes them; a read waiting on them goes on and
// reads what the database has. The queue is bounded (maxOwnQueue): past it
// POST waits for room, which is the backpressure a database slower than
// Kafka needs.
type ownWrites struct {
	st *callrecords.Store
	// group is the recorder's consumer group, whose stored offsets say
	// what it has written.
	group string
	log   *slog.Logger
	// settled counts requests by who settled them (recorder, ingest,
	// failed); nil in benchmarks.
	settled *prometheus.CounterVec
	// readBudget and fallback are ownReadBudget and ownFallback (tests
	// set others).
	readBudget, fallback time.Duration

	mu sync.Mutex
	// pending holds the acknowledged requests not settled yet, in seq
	// order; only the loop removes from it.
	pending []*ownWrite
	busy    bool
	// enqueued is the sequence number of the last request noted; force the
	// highest a read has waited ownReadBudget for (ingest writes every
	// pending request up to it). changed is closed and replaced whenever
	// pending shrinks.
	enqueued, force uint64
	changed         chan struct{}
	// waiting counts the reads waiting; kick (buffered) wakes the loop.
	waiting int
	kick    chan struct{}
	// warned is when the loop last warned that the recorder is behind
	// (the loop's alone).
	warned time.Time
}

const (
	// maxOwnQueue bounds the requests pending; past half of it the oldest
	// are written by ingest.
	maxOwnQueue = 20_000
	// ownPoll is how often the recorder's offsets are read while requests
	// are pending and no read waits, ownPollReading while one does.
	ownPoll        = 25 * time.Millisecond
	ownPollReading = 2 * time.Millisecond
	// ownReadBudget is how long a read waits for the recorder before
	// ingest writes what the read needs; ownFallback how long a request
	// stays pending with no read asking before ingest writes it.
	ownReadBudget = 100 * time.Millisecond
	ownFallback   = 2 * time.Second
	// ownBatch is the most requests one fallback transaction writes.
	ownBatch = 1024
)

type ownWrite struct {
	req       *schemas.CallRequested
	data      []byte
	partition int32
	offset    int64
	seq       uint64
	at        time.Time
	// settled and skipped are the loop's alone: settled once it is in the
	// records; skipped when the recorder's offsets passed it and it is
	// not (ingest writes it at once).
	settled, skipped bool
}

func newOwnWrites(st *callrecords.Store, group string, settled *prometheus.CounterVec, log *slog.Logger) *ownWrites {
	return &ownWrites{st: st, group: group, settled: settled, log: log, readBudget: ownReadBudget, fallback: ownFallback,
		changed: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// put notes one acknowledged request. It waits only while the queue is
// full, or until ctx ends (then the request reaches the records through
// the recorder alone).
func (o *ownWrites) put(ctx context.Context, req *schemas.CallRequested, data []byte, partition int32, offset int64) error {
	o.mu.Lock()
	if err := o.until(ctx, func() bool { return len(o.pending) < maxOwnQueue }); err != nil {
		return err
	}
	o.enqueued++
	o.pending = append(o.pending, &ownWrite{req: req, data: data, partition: partition, offset: offset, seq: o.enqueued, at: time.Now()})
	start := !o.busy
	o.busy = true
	if len(o.pending) >= maxOwnQueue/2 {
		o.wake()
	}
	o.mu.Unlock()
	if start {
		go o.loop()
	}
	return nil
}

// wake cuts the loop's sleep short.
func (o *ownWrites) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// settledThrough is the highest sequence number up to which every request
// is settled. With o.mu held.
func (o *ownWrites) settledThrough() uint64 {
	if len(o.pending) == 0 {
		return o.enqueued
	}
	return o.pending[0].seq - 1
}

// wait returns once every request noted before the call is settled, or
// when ctx ends. After ownReadBudget it has ingest write them.
func (o *ownWrites) wait(ctx context.Context) error {
	o.mu.Lock()
	target := o.enqueued
	if o.settledThrough() >= target {
		o.mu.Unlock()
		return nil
	}
	o.waiting++
	o.wake()
	budget := time.AfterFunc(o.readBudget, func() {
		o.mu.Lock()
		o.force = max(o.force, target)
		o.mu.Unlock()
		o.wake()
	})
	err := o.until(ctx, func() bool { return o.settledThrough() >= target })
	budget.Stop()
	if err != nil {
		o.mu.Lock()
	}
	o.waiting--
	o.mu.Unlock()
	return err
}

// until waits, with o.mu held on entry, until cond holds (checked under
// o.mu each time pending shrinks), and returns with o.mu still held; if
// ctx ends first it returns ctx's error with o.mu released.
func (o *ownWrites) until(ctx context.Context, cond func() bool) error {
	for !cond() {
		ch := o.changed
		o.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		o.mu.Lock()
	}
	return nil
}

// loop settles what is pending, one round per poll, until nothing is.
func (o *ownWrites) loop() {
	for {
		o.mu.Lock()
		if len(o.pending) == 0 {
			o.busy = false
			o.mu.Unlock()
			return
		}
		sleep := ownPoll
		if o.waiting > 0 {
			sleep = ownPollReading
		}
		o.mu.Unlock()
		t := time.NewTimer(sleep)
		select {
		case <-t.C:
		case <-o.kick:
		}
		t.Stop()
		o.round()
	}
}

// check asks the records which of passed (requests the recorder's offsets
// have passed) they hold: one range of offsets per partition. Those they
// do not hold the recorder passed over (skipped: ingest writes them).
func (o *ownWrites) check(passed []*ownWrite) {
	type span struct{ from, to int64 }
	spans := map[int32]span{}
	for _, w := range passed {
		sp, ok := spans[w.partition]
		if !ok {
			sp = span{w.offset, w.offset}
		}
		spans[w.partition] = span{min(sp.from, w.offset), max(sp.to, w.offset)}
	}
	have := make(map[int32]map[int64]bool, len(spans))
	ctx, cancel := context.WithTimeout(context.Background(), recordsTimeout)
	defer cancel()
	for p, sp := range spans {
		offs, err := o.st.RequestsAt(ctx, p, sp.from, sp.to)
		if err != nil {
			o.log.Debug("cannot read which calls the recorder has written", "error", err.Error())
			return
		}
		have[p] = offs
	}
	for _, w := range passed {
		in := have[w.partition][w.offset]
		w.settled, w.skipped = in, !in
	}
}

// round settles the requests the recorder has written, then writes those
// that are due itself.
func (o *ownWrites) round() {
	ctx, cancel := context.WithTimeout(context.Background(), recordsTimeout)
	next, err := o.st.Offsets(ctx, o.group)
	cancel()
	if err != nil {
		// Nothing is known to be written: the fallback still settles
		// every request in time.
		o.log.Debug("cannot read the recorder's offsets", "group", o.group, "error", err.Error())
	}
	parts := next[schemas.TopicRequested]

	// What the offsets have passed, asked of the records.
	o.mu.Lock()
	var passed []*ownWrite
	for _, w := range o.pending {
		if n, ok := parts[w.partition]; ok && w.offset < n && !w.skipped {
			passed = append(passed, w)
		}
	}
	o.mu.Unlock()
	if len(passed) > 0 {
		o.check(passed)
	}

	now := time.Now()
	o.mu.Lock()
	byRecorder := o.dropSettled()
	// Due: what the recorder passed over, what a read waited its budget
	// for, what waited ownFallback, and the oldest while the queue is half
	// full.
	var batch []*ownWrite
	over := len(o.pending) - maxOwnQueue/2
	for i, w := range o.pending {
		if len(batch) == ownBatch {
			break
		}
		if w.skipped || w.seq <= o.force || now.Sub(w.at) >= o.fallback || i < over {
			batch = append(batch, w)
		}
	}
	if byRecorder > 0 {
		o.moved()
	}
	o.mu.Unlock()
	o.count("recorder", byRecorder)
	if len(batch) == 0 {
		return
	}
	if now.Sub(batch[0].at) >= o.fallback && now.Sub(o.warned) >= time.Minute {
		o.warned = now
		o.log.Warn("the recorder has not written calls this replica accepted seconds ago; ingest writes them itself (is the recorder running, and RECORDER_GROUP_ID the same as the recorder's?)",
			"group", o.group, "oldest_pending", now.Sub(batch[0].at).Round(time.Millisecond).String(), "calls", len(batch))
	}

	ctx, cancel = context.WithTimeout(context.Background(), recordsTimeout)
	err = o.st.Write(ctx, func(w *callrecords.Writer) error {
		for _, b := range batch {
			if _, err := w.PutRequest(ctx, b.req, b.data, b.partition, b.offset, true); err != nil {
				return err
			}
		}
		return nil
	})
	cancel()
	if err != nil {
		o.log.Warn("calls written to Kafka but not to the call records yet; the recorder adds them", "calls", len(batch), "error", err.Error())
		o.count("failed", len(batch))
	} else {
		o.count("ingest", len(batch))
	}
	for _, w := range batch {
		w.settled = true
	}
	o.mu.Lock()
	o.dropSettled()
	o.moved()
	o.mu.Unlock()
}

// dropSettled removes the settled requests from pending and says how many.
// With o.mu held.
func (o *ownWrites) dropSettled() int {
	kept := o.pending[:0]
	for _, w := range o.pending {
		if !w.settled {
			kept = append(kept, w)
		}
	}
	n := len(o.pending) - len(kept)
	clear(o.pending[len(kept):])
	o.pending = kept
	return n
}

// moved wakes every waiter: pending shrank. With o.mu held.
func (o *ownWrites) moved() {
	close(o.changed)
	o.changed = make(chan struct{})
}

func (o *ownWrites) count(by string, n int) {
	if o.settled != nil && n > 0 {
		o.settled.WithLabelValues(by).Add(float64(n))
	}
}
