package dialer

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

const (
	// inboxHigh is how many fetched records may wait for one partition's
	// owner before the partition is paused (resumed at half).
	inboxHigh = 20000
	// batchMax bounds the records applied per write round.
	batchMax = 1000
	// stopGrace is how long a stopping owner may spend finishing the batch
	// it is writing before its writes are abandoned.
	stopGrace = 10 * time.Second
)

// partitionOwner owns one partition of the requested topic: it holds the
// partition's call states, applies the partition's commands in order and
// writes their results (write.go). Everything below "owned by run" is touched by the
// run goroutine only.
type partitionOwner struct {
	d   *dialer
	p   int32
	log *slog.Logger

	mu     sync.Mutex
	inbox  []*kgo.Record
	paused bool
	notify chan struct{}

	stopCh   chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	loaded   atomic.Bool

	// owned by run
	calls         map[string]*callState
	lastSeen      int64
	fenceOffset   int64
	overflowAt    int64
	seeking       bool
	seekAbove     int64
	pending       map[string]time.Time
	nextRoomCheck time.Time
}

func newPartitionOwner(d *dialer, p int32) *partitionOwner {
	ctx, cancel := context.WithCancel(context.Background())
	return &partitionOwner{
		d: d, p: p, log: d.log.With("partition", p),
		notify: make(chan struct{}, 1), stopCh: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, cancel: cancel,
		calls: map[string]*callState{}, lastSeen: -1, fenceOffset: -1, overflowAt: -1,
		pending: map[string]time.Time{},
	}
}

func (o *partitionOwner) push(recs []*kgo.Record) {
	o.mu.Lock()
	o.inbox = append(o.inbox, recs...)
	if len(o.inbox) > inboxHigh && !o.paused {
		o.paused = true
		o.d.pause(o.p)
	}
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

func (o *partitionOwner) take(n int) []*kgo.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	n = min(n, len(o.inbox))
	batch := o.inbox[:n:n]
	o.inbox = o.inbox[n:]
	if len(o.inbox) == 0 {
		o.inbox = nil
	}
	if o.paused && len(o.inbox) < inboxHigh/2 {
		o.paused = false
		o.d.resume(o.p)
	}
	return batch
}

// stop makes the owner finish the batch it is on and exit, abandoning the
// batch's writes if they take longer than stopGrace (Kafka down).
func (o *partitionOwner) stop() {
	o.stopOnce.Do(func() { close(o.stopCh) })
	t := time.AfterFunc(stopGrace, o.cancel)
	<-o.done
	t.Stop()
	o.cancel()
	o.d.m.ages.drop(o.p)
	o.mu.Lock()
	if o.paused {
		o.paused = false
		o.d.resume(o.p) // a pause would outlive the assignment
	}
	o.mu.Unlock()
}

func (o *partitionOwner) stopping() bool {
	select {
	case <-o.stopCh:
		return true
	default:
		return false
	}
}

func (o *partitionOwner) run() {
	defer close(o.done)
	if !o.load() {
		return
	}
	o.loaded.Store(true)
	tick := time.NewTicker(o.d.cfg.WatchdogInterval)
	defer tick.Stop()
	for {
		select {
		case <-o.stopCh:
			return
		case <-o.notify:
		case now := <-tick.C:
			o.watchdog(now)
		}
		for !o.stopping() {
			batch := o.take(batchMax)
			if len(batch) == 0 {
				break
			}
			if !o.process(batch) {
				return
			}
			o.maybeEndOverflow()
		}
	}
}

// load reads the partition's call states up to the state topic's high
// watermark and hands the waiting and live calls to admission.
func (o *partitionOwner) load() bool {
	ctx, cancel := context.WithCancel(o.ctx)
	defer cancel()
	go func() {
		select {
		case <-o.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	wait := backoff.Doubling{Next: 200 * time.Millisecond, Max: 5 * time.Second}
	for {
		calls, n, err := o.d.loadState(ctx, o.p)
		if err == nil {
			o.calls = calls
			o.log.Info("dialer: partition state loaded", "records", n, "calls", len(calls), "took", time.Since(start).String())
			break
		}
		if ctx.Err() != nil {
			return false
		}
		o.log.Warn("dialer: load partition state failed; retrying", "err", err)
		if !wait.Wait(ctx) {
			return false
		}
	}
	for _, st := range o.calls {
		if st.Phase != schemas.StatusEnded {
			o.d.adm.sync(o.p, st)
		}
	}
	o.d.m.stateLoad.Observe(time.Since(start).Seconds())
	return true
}

// process applies a batch of the partition's records in log order and
// writes what they produced (flush); false means the owner was stopped.
func (o *partitionOwner) process(batch []*kgo.Record) bool {
	b := &batchOut{states: map[string]*callState{}, traces: map[string]context.Context{}}
	for _, rec := range batch {
		if o.fenceOffset < 0 {
			// The first record after assignment is at the committed
			// offset: committing it changes nothing, so it can fence.
			o.fenceOffset = rec.Offset
		}
		if o.seeking {
			if rec.Offset > o.seekAbove {
				continue // fetched before the rewind took effect
			}
			o.seeking = false
		}
		o.lastSeen = max(o.lastSeen, rec.Offset)
		o.handle(rec, b)
		if o.overflowAt < 0 || rec.Offset < o.overflowAt {
			b.mark = rec
		}
	}
	return o.flush(b)
}

func (o *partitionOwner) handle(rec *kgo.Record, b *batchOut) {
	if o.overflowAt >= 0 && rec.Offset >= o.overflowAt {
		// Deferred region: only commands for calls already known go
		// through now; requests (and anything that may be one) wait for
		// the rewind.
		typ := kafkax.Header(rec, schemas.HeaderType)
		if typ == schemas.TypeCallRequested || !commandTypes[typ] || o.calls[string(rec.Key)] == nil {
			return
		}
	}
	in, dlq := o.decode(rec)
	ctx, span := o.startProcess(rec, in)
	defer span.End()
	if dlq != nil {
		dlq.Context = ctx
		b.dlq = append(b.dlq, dlq)
	}
	if in == nil {
		return
	}
	st := o.calls[in.callID]
	ws := in.workspaceID()
	if st != nil {
		ws = st.WorkspaceID
	}
	if in.kind == inRequested && st == nil && o.d.adm.queuedIn(o.p)+b.newQueued >= o.d.cfg.MaxQueuedPerPartition {
		o.overflowAt = rec.Offset
		o.d.m.overflows.Inc()
		o.log.WarnContext(ctx, "dialer: admission queue full; deferring this partition's later requests, this call's among them",
			"call_id", in.callID, "workspace_id", ws, "offset", rec.Offset, "max_queued", o.d.cfg.MaxQueuedPerPartition)
		return
	}
	tr := apply(st, *in)
	if tr.ignored != "" {
		o.d.m.ignored.WithLabelValues(string(tr.ignored)).Inc()
		span.SetAttributes(attribute.String("dialstream.ignored", string(tr.ignored)))
		if tr.ignored == ignoreDuplicate && in.kind == inRequested {
			o.d.m.duplicates.Inc()
			o.log.InfoContext(ctx, "dialer: duplicate call request ignored", "call_id", in.callID, "workspace_id", ws, "offset", rec.Offset)
		}
	}
	if in.kind == inDecision {
		delete(o.pending, in.callID+string(in.dec.Decision))
	}
	if tr.next != nil {
		rememberTrace(tr.next, ctx)
		o.calls[in.callID] = tr.next
		if _, ok := b.states[in.callID]; !ok {
			b.order = append(b.order, in.callID)
		}
		b.states[in.callID] = tr.next
		b.traces[in.callID] = ctx
		b.changes = append(b.changes, change{prev: st, next: tr.next, events: tr.events, ctx: ctx})
		if tr.next.Phase == schemas.StatusQueued && st == nil {
			b.newQueued++
		}
		for _, ev := range tr.events {
			r, err := schemas.NewRecord(schemas.TopicEvents, ev.CallID, schemas.Meta{
				ID: schemas.EventID(ev.CallID, ev.Sequence), Type: ev.Status.Type(), Source: ceSource,
				Subject: ev.CallID, Time: ev.OccurredAt,
			}, ev)
			if err != nil {
				// Events are built from validated input and clipped text;
				// this is a bug, and stalling the partition would not fix it.
				o.log.ErrorContext(ctx, "dialer: lifecycle event does not match its schema; not written", "call_id", ev.CallID, "workspace_id", ev.WorkspaceID, "status", ev.Status, "err", err)
				continue
			}
			r.Partition = o.p
			r.Context = ctx
			b.events = append(b.events, r)
		}
	}
	if tr.effects != 0 {
		target := tr.next
		if target == nil {
			target = st
		}
		if target != nil {
			b.effects = append(b.effects, pendingEffect{eff: tr.effects, st: target.clone(), ctx: ctx})
		}
	}
}

// maybeEndOverflow rewinds the partition to its first deferred request once
// the admission queue has drained to half its bound.
func (o *partitionOwner) maybeEndOverflow() {
	if o.overflowAt < 0 || o.d.adm.queuedIn(o.p) > o.d.cfg.MaxQueuedPerPartition/2 {
		return
	}
	o.log.Info("dialer: admission queue drained; replaying deferred requests", "from_offset", o.overflowAt, "to_offset", o.lastSeen)
	o.d.requestSeek(o.p, o.overflowAt)
	o.seeking, o.seekAbove, o.overflowAt = true, o.lastSeen, -1
}
