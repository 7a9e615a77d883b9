package dialer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/attribute"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
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
	// decisionRetry is how long a written decision may take to come back
	// before the watchdog writes it again.
	decisionRetry = 30 * time.Second
)

// partition owns one partition of the requested topic: it holds the
// partition's call states, applies the partition's commands in order and
// writes their results. Everything below "owned by run" is touched by the
// run goroutine only.
type partition struct {
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

func newPartition(d *dialer, p int32) *partition {
	ctx, cancel := context.WithCancel(context.Background())
	return &partition{
		d: d, p: p, log: d.log.With("partition", p),
		notify: make(chan struct{}, 1), stopCh: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, cancel: cancel,
		calls: map[string]*callState{}, lastSeen: -1, fenceOffset: -1, overflowAt: -1,
		pending: map[string]time.Time{},
	}
}

func (w *partition) push(recs []*kgo.Record) {
	w.mu.Lock()
	w.inbox = append(w.inbox, recs...)
	if len(w.inbox) > inboxHigh && !w.paused {
		w.paused = true
		w.d.pause(w.p)
	}
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *partition) take(n int) []*kgo.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	n = min(n, len(w.inbox))
	batch := w.inbox[:n:n]
	w.inbox = w.inbox[n:]
	if len(w.inbox) == 0 {
		w.inbox = nil
	}
	if w.paused && len(w.inbox) < inboxHigh/2 {
		w.paused = false
		w.d.resume(w.p)
	}
	return batch
}

// stop makes the owner finish the batch it is on and exit, abandoning the
// batch's writes if they take longer than stopGrace (Kafka down).
func (w *partition) stop() {
	w.stopOnce.Do(func() { close(w.stopCh) })
	t := time.AfterFunc(stopGrace, w.cancel)
	<-w.done
	t.Stop()
	w.cancel()
	w.d.m.ages.drop(w.p)
	w.mu.Lock()
	if w.paused {
		w.paused = false
		w.d.resume(w.p) // a pause would outlive the assignment
	}
	w.mu.Unlock()
}

func (w *partition) stopping() bool {
	select {
	case <-w.stopCh:
		return true
	default:
		return false
	}
}

func (w *partition) run() {
	defer close(w.done)
	if !w.load() {
		return
	}
	w.loaded.Store(true)
	tick := time.NewTicker(w.d.cfg.WatchdogInterval)
	defer tick.Stop()
	for {
		select {
		case <-w.stopCh:
			return
		case <-w.notify:
		case now := <-tick.C:
			w.watchdog(now)
		}
		for !w.stopping() {
			batch := w.take(batchMax)
			if len(batch) == 0 {
				break
			}
			if !w.process(batch) {
				return
			}
			w.maybeEndOverflow()
		}
	}
}

// load reads the partition's call states up to the state topic's high
// watermark and hands the waiting and live calls to admission.
func (w *partition) load() bool {
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	go func() {
		select {
		case <-w.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	wait := backoff.Doubling{Next: 200 * time.Millisecond, Max: 5 * time.Second}
	for {
		calls, n, err := w.d.loadState(ctx, w.p)
		if err == nil {
			w.calls = calls
			w.log.Info("dialer: partition state loaded", "records", n, "calls", len(calls), "took", time.Since(start).String())
			break
		}
		if ctx.Err() != nil {
			return false
		}
		w.log.Warn("dialer: load partition state failed; retrying", "err", err)
		if !wait.Wait(ctx) {
			return false
		}
	}
	for _, st := range w.calls {
		if st.Phase != schemas.StatusEnded {
			w.d.adm.sync(w.p, st)
		}
	}
	w.d.m.stateLoad.Observe(time.Since(start).Seconds())
	return true
}

// batchOut collects what one batch of commands must write, mark and do.
type batchOut struct {
	dlq       []*kgo.Record
	events    []*kgo.Record
	states    map[string]*callState
	traces    map[string]context.Context // call id -> span of its last command, for its state record
	order     []string
	changes   []change
	effects   []pendingEffect
	mark      *kgo.Record
	newQueued int
}

type change struct {
	prev, next *callState
	events     []schemas.CallEvent
	ctx        context.Context // the command's span
}

type pendingEffect struct {
	eff effect
	st  *callState
	ctx context.Context // the command's span: the parent of the effect's
}

func (w *partition) process(batch []*kgo.Record) bool {
	b := &batchOut{states: map[string]*callState{}, traces: map[string]context.Context{}}
	for _, rec := range batch {
		if w.fenceOffset < 0 {
			// The first record after assignment is at the committed
			// offset: committing it changes nothing, so it can fence.
			w.fenceOffset = rec.Offset
		}
		if w.seeking {
			if rec.Offset > w.seekAbove {
				continue // fetched before the rewind took effect
			}
			w.seeking = false
		}
		w.lastSeen = max(w.lastSeen, rec.Offset)
		w.handle(rec, b)
		if w.overflowAt < 0 || rec.Offset < w.overflowAt {
			b.mark = rec
		}
	}
	return w.flush(b)
}

var commandTypes = map[string]bool{
	schemas.TypeCallRequested: true, schemas.TypeCallCancel: true,
	TypeDialResult: true, TypeLiveKitEvent: true, TypeDecision: true,
}

func (w *partition) handle(rec *kgo.Record, b *batchOut) {
	if w.overflowAt >= 0 && rec.Offset >= w.overflowAt {
		// Deferred region: only commands for calls already known go
		// through now; requests (and anything that may be one) wait for
		// the rewind.
		typ := kafkax.Header(rec, schemas.HeaderType)
		if typ == schemas.TypeCallRequested || !commandTypes[typ] || w.calls[string(rec.Key)] == nil {
			return
		}
	}
	in, dlq := w.decode(rec)
	ctx, span := w.startProcess(rec, in)
	defer span.End()
	if dlq != nil {
		dlq.Context = ctx
		b.dlq = append(b.dlq, dlq)
	}
	if in == nil {
		return
	}
	st := w.calls[in.callID]
	ws := in.workspaceID()
	if st != nil {
		ws = st.WorkspaceID
	}
	if in.kind == inRequested && st == nil && w.d.adm.queuedIn(w.p)+b.newQueued >= w.d.cfg.MaxQueuedPerPartition {
		w.overflowAt = rec.Offset
		w.d.m.overflows.Inc()
		w.log.WarnContext(ctx, "dialer: admission queue full; deferring this partition's later requests, this call's among them",
			"call_id", in.callID, "workspace_id", ws, "offset", rec.Offset, "max_queued", w.d.cfg.MaxQueuedPerPartition)
		return
	}
	tr := apply(st, *in)
	if tr.ignored != "" {
		w.d.m.ignored.WithLabelValues(string(tr.ignored)).Inc()
		span.SetAttributes(attribute.String("dialstream.ignored", string(tr.ignored)))
		if tr.ignored == ignoreDuplicate && in.kind == inRequested {
			w.d.m.duplicates.Inc()
			w.log.InfoContext(ctx, "dialer: duplicate call request ignored", "call_id", in.callID, "workspace_id", ws, "offset", rec.Offset)
		}
	}
	if in.kind == inDecision {
		delete(w.pending, in.callID+string(in.dec.Decision))
	}
	if tr.next != nil {
		rememberTrace(tr.next, ctx)
		w.calls[in.callID] = tr.next
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
				w.log.ErrorContext(ctx, "dialer: lifecycle event does not match its schema; not written", "call_id", ev.CallID, "workspace_id", ev.WorkspaceID, "status", ev.Status, "err", err)
				continue
			}
			r.Partition = w.p
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

var callIDRE = regexp.MustCompile(`^[0-9a-f]{24}$`)

// decode turns a record into a command for one call. A record that cannot be
// a command comes back as a DLQ record; if it may have been a call request,
// also as a rejection, so the client hears about it.
func (w *partition) decode(rec *kgo.Record) (*input, *kgo.Record) {
	typ := kafkax.Header(rec, schemas.HeaderType)
	internal := typ == TypeDialResult || typ == TypeLiveKitEvent || typ == TypeDecision
	ev, err := schemas.Decode(rec)
	if err != nil {
		class := classSchema
		var de *schemas.DecodeError
		var fields []schemas.FieldError
		if errors.As(err, &de) {
			class, fields = de.Class, de.Fields
		}
		if typ == schemas.TypeCallCancel || internal {
			return nil, w.dlq(rec, class, err.Error())
		}
		return w.reject(rec, class, err.Error(), fields)
	}
	in := &input{offset: rec.Offset, at: rec.Timestamp, maxAge: w.d.cfg.EndedRetention}
	var data any
	switch ev.Type {
	case schemas.TypeCallRequested:
		r := &schemas.CallRequested{}
		in.kind, in.req, data = inRequested, r, r
	case schemas.TypeCallCancel:
		c := &schemas.CallCancel{}
		in.kind, in.cancel, data = inCancel, c, c
	case TypeDialResult:
		x := &dialResult{}
		in.kind, in.dial, data = inDialResult, x, x
	case TypeLiveKitEvent:
		x := &livekitEvent{}
		in.kind, in.lk, data = inLiveKit, x, x
	case TypeDecision:
		x := &decision{}
		in.kind, in.dec, data = inDecision, x, x
	default:
		return w.reject(rec, classUnexpectedType, fmt.Sprintf("%s is not a command type of %s", ev.Type, schemas.TopicRequested),
			[]schemas.FieldError{{Field: "header:" + schemas.HeaderType, Message: "not a command type"}})
	}
	if err := json.Unmarshal(ev.Data, data); err != nil {
		if in.kind == inRequested {
			return w.reject(rec, classSchema, err.Error(), nil)
		}
		return nil, w.dlq(rec, classBadCommand, err.Error())
	}
	switch in.kind {
	case inRequested:
		in.callID = in.req.CallID
	case inCancel:
		in.callID = in.cancel.CallID
	case inDialResult:
		in.callID = in.dial.CallID
	case inLiveKit:
		in.callID = in.lk.CallID
	case inDecision:
		in.callID = in.dec.CallID
	}
	if string(rec.Key) != in.callID {
		reason := fmt.Sprintf("record key %q must equal data.call_id %q, so the call's cancel and follow-up commands reach the same partition", schemas.Clip(string(rec.Key), 64), in.callID)
		if in.kind != inRequested {
			return nil, w.dlq(rec, classKey, reason)
		}
		return w.reject(rec, classKey, reason, []schemas.FieldError{{Field: "key", Message: "must equal /call_id"}})
	}
	if in.kind == inRequested {
		r := in.req
		if _, ok := w.d.reg.Workspace(r.WorkspaceID); !ok {
			return w.reject(rec, classUnknownWorkspace, "unknown workspace "+r.WorkspaceID,
				[]schemas.FieldError{{Field: "/workspace_id", Message: "unknown workspace"}})
		}
		a, ok := w.d.reg.Agent(r.WorkspaceID, r.CallAgentID)
		if !ok {
			return w.reject(rec, classUnknownAgent, fmt.Sprintf("workspace %s has no agent %s", r.WorkspaceID, r.CallAgentID),
				[]schemas.FieldError{{Field: "/call_agent_id", Message: "no such agent in this workspace"}})
		}
		in.agent = a
	}
	return in, nil
}

func (w *partition) dlq(rec *kgo.Record, class, reason string) *kgo.Record {
	id, ws := w.recordCall(rec)
	return w.deadLetter(rec, class, reason, id, ws)
}

// deadLetter builds the DLQ record of rec, which is about call id of
// workspace ws (as far as can be told: "unknown" otherwise).
func (w *partition) deadLetter(rec *kgo.Record, class, reason, id, ws string) *kgo.Record {
	r := kafkax.DLQRecord(rec, schemas.TopicRequestsDLQ, class, schemas.Clip(reason, 2048), 1)
	r.Partition = rec.Partition
	w.d.m.dlq.WithLabelValues(class).Inc()
	w.d.m.rejected.WithLabelValues(class).Inc()
	w.log.WarnContext(obs.SpanContextOnly(ctxOf(rec)), "dialer: record dead-lettered", "call_id", id, "workspace_id", ws,
		"offset", rec.Offset, "class", class, "reason", schemas.Clip(reason, 512))
	return r
}

// ctxOf is a record's Context, never nil.
func ctxOf(rec *kgo.Record) context.Context {
	if rec.Context == nil {
		return context.Background()
	}
	return rec.Context
}

// reject builds the rejection of a record that may have been a call request:
// a DLQ record, and a rejected call under the call id the record names (its
// data, else its key, else one derived from where it sits in the log, so a
// replay derives the same).
func (w *partition) reject(rec *kgo.Record, class, reason string, fields []schemas.FieldError) (*input, *kgo.Record) {
	var body map[string]json.RawMessage
	_ = json.Unmarshal(rec.Value, &body)
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(body[k], &s)
		return s
	}
	id := str("call_id")
	if !callIDRE.MatchString(id) {
		id = string(rec.Key)
	}
	if !callIDRE.MatchString(id) {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%d", rec.Topic, rec.Partition, rec.Offset))
		id = hex.EncodeToString(sum[:12])
	}
	rj := &rejection{class: class, reason: reason, fields: fields, workspaceID: "unknown"}
	if ws := str("workspace_id"); ws != "" {
		if _, ok := w.d.reg.Workspace(ws); ok {
			rj.workspaceID = ws
			if cb := str("callback_url"); len(cb) <= 2048 && callbackRE.MatchString(cb) {
				rj.callbackURL = cb
			}
			if md := body["metadata"]; len(md) > 0 && md[0] == '{' && json.Valid(md) {
				rj.metadata = md
			}
		}
	}
	return &input{kind: inRejected, offset: rec.Offset, at: rec.Timestamp, callID: id, rej: rj}, w.deadLetter(rec, class, reason, id, rj.workspaceID)
}

var callbackRE = regexp.MustCompile(`^https?://[^\s]+$`)

// flush writes a batch's DLQ records, then its events, then its states;
// marks the batch; fences and runs its effects. It returns false if the
// owner was stopped before the writes were acknowledged: nothing is marked
// and no effect runs, and the next owner applies the batch again.
func (w *partition) flush(b *batchOut) bool {
	if !w.write(b.dlq) || !w.write(b.events) {
		return false
	}
	now := time.Now()
	states := make([]*kgo.Record, 0, len(b.order))
	for _, id := range b.order {
		r, err := stateRecord(b.states[id], w.p, now)
		if err != nil {
			w.log.ErrorContext(b.traces[id], "dialer: call state does not match its schema; not written", "call_id", id, "workspace_id", b.states[id].WorkspaceID, "err", err)
			continue
		}
		r.Context = b.traces[id]
		states = append(states, r)
	}
	if !w.write(states) {
		return false
	}
	if b.mark != nil {
		w.d.cons.MarkCommitRecords(b.mark)
		w.fenceOffset = b.mark.Offset + 1
	}

	dialOK := true
	for _, e := range b.effects {
		if e.eff&effDial != 0 {
			if err := w.fence(); err != nil {
				dialOK = false
				w.d.m.fenceFailures.Inc()
				w.log.Error("dialer: not dialing: the group no longer confirms this process owns the partition; the next owner resolves these calls", "err", err)
				for _, x := range b.effects {
					if x.eff&effDial != 0 {
						w.log.WarnContext(x.ctx, "dialer: call not dialed by this process; the partition's next owner resolves it",
							"call_id", x.st.CallID, "workspace_id", x.st.WorkspaceID)
					}
				}
			}
			break
		}
	}
	for _, c := range b.changes {
		w.logChange(c)
		w.d.m.transitionApplied(c.prev, c.next, c.events)
	}
	for _, id := range b.order {
		w.d.adm.sync(w.p, b.states[id])
	}
	for _, e := range b.effects {
		if e.eff&effDial != 0 && dialOK {
			w.d.startDial(e.ctx, w.p, e.st)
		}
		if e.eff&effHangup != 0 {
			w.d.hangup(e.ctx, e.st)
		}
	}
	return true
}

// write produces recs and waits for every one to be acknowledged, retrying
// failures until the owner is stopped.
func (w *partition) write(recs []*kgo.Record) bool {
	wait := backoff.Doubling{Next: 100 * time.Millisecond, Max: 5 * time.Second}
	for len(recs) > 0 {
		res := w.d.prod.ProduceSync(w.ctx, recs...)
		var failed []*kgo.Record
		var firstErr error
		for _, r := range res {
			if r.Err != nil {
				failed = append(failed, r.Record)
				if firstErr == nil {
					firstErr = r.Err
				}
			}
		}
		if len(failed) == 0 {
			return true
		}
		if w.ctx.Err() != nil || errors.Is(firstErr, kgo.ErrClientClosed) {
			return false
		}
		w.d.m.flushRetries.Inc()
		w.log.Warn("dialer: write to kafka failed; retrying", "records", len(failed), "err", firstErr)
		if !wait.Wait(w.ctx) {
			return false
		}
		recs = failed
	}
	return true
}

// fence commits this partition's offset synchronously. The coordinator
// accepts a commit only from a current member of the current generation, so
// success means no other process has been given this partition: its next
// owner will load the dialing claims just written. A refusal that says this
// member is gone is final. Any other error (the broker or coordinator is
// unreachable) is retried for as long as this process owns the partition:
// giving up would leave claimed calls undialed, to be ended "in doubt" by the
// watchdog although nobody ever rang them.
func (w *partition) fence() error {
	wait := backoff.Doubling{Next: 200 * time.Millisecond, Max: 5 * time.Second}
	for {
		err := w.commitFence()
		if err == nil || fenced(err) {
			return err
		}
		w.log.Warn("dialer: fence commit failed; retrying before dialing", "err", err)
		if !wait.Wait(w.ctx) {
			return err
		}
	}
}

func fenced(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.FencedInstanceID) || errors.Is(err, context.Canceled)
}

func (w *partition) commitFence() error {
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	var ferr error
	w.d.cons.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{
		schemas.TopicRequested: {w.p: {Epoch: -1, Offset: w.fenceOffset}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			ferr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
					ferr = e
				}
			}
		}
	})
	return ferr
}

func (w *partition) logChange(c change) {
	for _, ev := range c.events {
		attrs := []any{"call_id", ev.CallID, "workspace_id", ev.WorkspaceID, "sequence", ev.Sequence}
		switch ev.Status {
		case schemas.StatusQueued:
			attrs = append(attrs, "to", obs.MaskPhone(ev.To), "call_agent_id", ev.CallAgentID, "room", ev.RoomName)
		case schemas.StatusEnded:
			attrs = append(attrs, "outcome", ev.Outcome, "ended_by", ev.EndedBy, "reason", ev.Reason)
			if ev.SIPStatusCode != 0 {
				attrs = append(attrs, "sip_status_code", ev.SIPStatusCode)
			}
		}
		w.log.InfoContext(c.ctx, "call "+string(ev.Status), attrs...)
	}
}

// maybeEndOverflow rewinds the partition to its first deferred request once
// the admission queue has drained to half its bound.
func (w *partition) maybeEndOverflow() {
	if w.overflowAt < 0 || w.d.adm.queuedIn(w.p) > w.d.cfg.MaxQueuedPerPartition/2 {
		return
	}
	w.log.Info("dialer: admission queue drained; replaying deferred requests", "from_offset", w.overflowAt, "to_offset", w.lastSeen)
	w.d.requestSeek(w.p, w.overflowAt)
	w.seeking, w.seekAbove, w.overflowAt = true, w.lastSeen, -1
}
