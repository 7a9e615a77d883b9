package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

const (
	// inboxHigh is how many fetched commands may wait for one partition's
	// owner before the partition is paused (resumed at half).
	inboxHigh = 5000
	// batchMax bounds the commands applied per write round; batchRecords
	// ends a round early once it has this many records to write (one
	// contacts command alone writes up to 501).
	batchMax     = 200
	batchRecords = 5000
	// stopGrace is how long a stopping owner may spend finishing the round
	// it is writing before its writes are abandoned.
	stopGrace = 10 * time.Second
)

// owner owns one partition of the commands topic: the campaigns and
// scheduled calls whose keys hash to it. One goroutine (run) applies the
// partition's commands in order and releases its due contacts, so a
// campaign's state is never touched by two at once; everything below
// "owned by run" is that goroutine's.
type owner struct {
	s   *scheduler
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
	st        *partitionState
	callsDue  dueQueue // scheduled calls by due time
	committed int64    // the next command whose effects are written and committed
	reported  gauges   // what this owner added to the gauges
}

// gauges is one owner's share of the scheduler's gauges.
type gauges struct {
	contacts  map[schemas.ContactStatus]int
	campaigns map[schemas.CampaignStatus]int
	pacing    float64
	scheduled int
}

func newOwner(s *scheduler, p int32) *owner {
	ctx, cancel := context.WithCancel(context.Background())
	return &owner{s: s, p: p, log: s.log.With("partition", p), notify: make(chan struct{}, 1),
		stopCh: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel, committed: -1}
}

func (o *owner) push(recs []*kgo.Record) {
	o.mu.Lock()
	o.inbox = append(o.inbox, recs...)
	if len(o.inbox) > inboxHigh && !o.paused {
		o.paused = true
		o.s.cons.PauseFetchPartitions(map[string][]int32{schemas.TopicCampaignCommands: {o.p}})
	}
	o.mu.Unlock()
	o.wake()
}

func (o *owner) wake() {
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

func (o *owner) take(n int) []*kgo.Record {
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
		o.s.cons.ResumeFetchPartitions(map[string][]int32{schemas.TopicCampaignCommands: {o.p}})
	}
	return batch
}

// stop makes the owner finish the round it is on and exit, abandoning the
// round's writes if they take longer than stopGrace (Kafka down): what was
// not committed is applied again by the next owner, idempotently.
func (o *owner) stop() {
	o.stopOnce.Do(func() { close(o.stopCh) })
	t := time.AfterFunc(stopGrace, o.cancel)
	<-o.done
	t.Stop()
	o.cancel()
	o.report(true)
	o.mu.Lock()
	if o.paused {
		o.paused = false
		o.s.cons.ResumeFetchPartitions(map[string][]int32{schemas.TopicCampaignCommands: {o.p}})
	}
	o.mu.Unlock()
}

func (o *owner) stopping() bool {
	select {
	case <-o.stopCh:
		return true
	default:
		return false
	}
}

func (o *owner) run() {
	defer close(o.done)
	if !o.load() {
		return
	}
	o.loaded.Store(true)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-o.stopCh:
			return
		case <-o.notify:
		case <-timer.C:
		}
		for !o.stopping() {
			batch := o.take(batchMax)
			if len(batch) == 0 {
				break
			}
			for len(batch) > 0 {
				n, ok := o.process(batch)
				if !ok {
					return
				}
				batch = batch[n:]
			}
		}
		if o.stopping() {
			return
		}
		wake, ok := o.releaseRound()
		if !ok {
			return
		}
		o.report(false)
		timer.Stop()
		timer.Reset(max(wake.Sub(o.s.cfg.clock()), time.Millisecond))
	}
}

// load reads the partition's state and the group's committed offset (the
// fence's offset), retrying until it succeeds or the owner is stopped.
func (o *owner) load() bool {
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
		st, err := o.s.loadState(ctx, o.p)
		if err == nil {
			o.committed, err = o.committedOffset(ctx)
		}
		if err == nil {
			o.st = st
			break
		}
		if ctx.Err() != nil {
			return false
		}
		o.log.Warn("scheduler: load partition state failed; retrying", "err", err)
		if !wait.Wait(ctx) {
			return false
		}
	}
	for id, sc := range o.st.scheduled {
		if sc.Status == schemas.ScheduledCallWaiting && sc.DueAt != nil {
			o.callsDue.schedule(id, *sc.DueAt)
		}
	}
	o.s.m.stateLoad.Observe(time.Since(start).Seconds())
	o.log.Info("scheduler: partition state loaded", "records", o.st.records, "campaigns", len(o.st.campaigns),
		"scheduled_calls", len(o.st.scheduled), "unreadable", o.st.unread, "took", time.Since(start).String())
	return true
}

// committedOffset is the group's committed offset of this partition, or the
// log's start when it never committed: the offset the fence commits again.
func (o *owner) committedOffset(ctx context.Context) (int64, error) {
	adm := kadm.NewClient(o.s.prod)
	offs, err := adm.FetchOffsets(ctx, o.s.cfg.Group)
	if err != nil && !errors.Is(err, kadm.ErrEmpty) {
		return 0, fmt.Errorf("fetch committed offsets: %w", err)
	}
	if c, ok := offs.Lookup(schemas.TopicCampaignCommands, o.p); ok && c.Err == nil && c.At >= 0 {
		return c.At, nil
	}
	starts, err := adm.ListStartOffsets(ctx, schemas.TopicCampaignCommands)
	if err != nil {
		return 0, fmt.Errorf("list start offsets: %w", err)
	}
	so, ok := starts.Lookup(schemas.TopicCampaignCommands, o.p)
	if !ok || so.Err != nil {
		return 0, fmt.Errorf("start offset of %s/%d: %v", schemas.TopicCampaignCommands, o.p, so.Err)
	}
	return so.Offset, nil
}

// process applies commands from the head of batch until batchRecords
// records are to be written, writes them and commits; it returns how many
// commands it took, and false when the owner is to stop.
func (o *owner) process(batch []*kgo.Record) (int, bool) {
	w := &writes{}
	n := 0
	for _, rec := range batch {
		n++
		if rec.Offset < o.committed {
			continue // fetched before the commit that covers it took effect
		}
		o.handle(rec, w)
		if w.len() >= batchRecords {
			break
		}
	}
	if !o.write(w) {
		return n, false
	}
	next := batch[n-1].Offset + 1
	if next <= o.committed {
		return n, true
	}
	if err := o.commit(next); err != nil {
		o.log.Warn("scheduler: partition fenced while committing; stopping its owner", "err", err)
		return n, false
	}
	o.committed = next
	return n, true
}

// handle applies one command to the partition's state and adds what it
// produced to w.
func (o *owner) handle(rec *kgo.Record, w *writes) {
	ev, err := schemas.Decode(rec)
	if err != nil {
		class := "decode"
		var de *schemas.DecodeError
		if errors.As(err, &de) {
			class = de.Class
		}
		o.s.m.commands.WithLabelValues("other", string(resultInvalid)).Inc()
		o.log.Warn("scheduler: invalid command dead-lettered", "offset", rec.Offset, "class", class, "err", err)
		w.first = append(w.first, kafkax.DLQRecord(rec, schemas.TopicRequestsDLQ, class, err.Error(), 1))
		return
	}
	switch ev.Type {
	case schemas.TypeCampaignCreated:
		var cmd schemas.Campaign
		o.campaignCommand("created", rec, ev, &cmd, func() string { return cmd.CampaignID }, func(c *campaign) (*campaign, transition) {
			return applyCreated(c, cmd)
		}, w)
	case schemas.TypeCampaignContacts:
		var cmd schemas.CampaignContacts
		o.campaignCommand("contacts", rec, ev, &cmd, func() string { return cmd.CampaignID }, func(c *campaign) (*campaign, transition) {
			tr := c.applyContacts(cmd)
			if len(tr.skipped) > 0 {
				o.log.Info("scheduler: contacts already in the campaign skipped", "campaign_id", cmd.CampaignID,
					"workspace_id", cmd.WorkspaceID, "upload_id", cmd.UploadID, "skipped", len(tr.skipped), "added", len(tr.contacts))
			}
			return c, tr
		}, w)
	case schemas.TypeCampaignControl:
		var cmd schemas.CampaignControl
		o.campaignCommand("control", rec, ev, &cmd, func() string { return cmd.CampaignID }, func(c *campaign) (*campaign, transition) {
			return c, c.applyControl(cmd)
		}, w)
	case schemas.TypeCampaignOutcome:
		var cmd schemas.CampaignOutcome
		o.campaignCommand("outcome", rec, ev, &cmd, func() string { return cmd.CampaignID }, func(c *campaign) (*campaign, transition) {
			tr := c.applyOutcome(cmd)
			if k := c.contacts[cmd.ContactID]; tr.ignored == "" && k != nil && k.Status == schemas.ContactWaiting {
				o.s.m.retries.WithLabelValues(string(cmd.Outcome)).Inc()
			}
			return c, tr
		}, w)
	case schemas.TypeCallScheduled:
		var cmd schemas.CallScheduled
		if !o.unmarshal(ev, &cmd, "scheduled") {
			return
		}
		id := cmd.Request.CallID
		st, ok := applyScheduled(o.st.scheduled[id], cmd)
		if !ok {
			o.s.m.commands.WithLabelValues("scheduled", string(ignoreDuplicate)).Inc()
			return
		}
		o.s.m.commands.WithLabelValues("scheduled", string(resultApplied)).Inc()
		o.st.scheduled[id] = st
		o.callsDue.schedule(id, *st.DueAt)
		w.addState(scheduledStateRecord(st, o.p))
	case schemas.TypeCallCancel:
		var cmd schemas.CallCancel
		if !o.unmarshal(ev, &cmd, "cancel") {
			return
		}
		out, ok := applyScheduledCancel(o.st.scheduled[cmd.CallID], cmd)
		if !ok {
			o.s.m.commands.WithLabelValues("cancel", string(ignoreNotApplicable)).Inc()
			return
		}
		o.s.m.commands.WithLabelValues("cancel", string(resultApplied)).Inc()
		if out.request != nil {
			w.addFirst(callRequestRecord(*out.request))
			w.addState(scheduledStateRecord(o.st.scheduled[cmd.CallID], o.p))
			o.s.m.releases.WithLabelValues(string(kindScheduled)).Inc()
		}
		if out.cancel != nil {
			w.addFirst(schemas.NewRecord(schemas.TopicRequested, cmd.CallID, schemas.Meta{
				ID: cmd.CallID + "-scheduled-cancel", Type: schemas.TypeCallCancel, Source: ceSource, Subject: cmd.CallID,
				Time: cmd.RequestedAt}, *out.cancel))
		}
	default:
		o.s.m.commands.WithLabelValues("other", string(resultOther)).Inc()
	}
}

func (o *owner) unmarshal(ev *schemas.Event, v any, kind string) bool {
	if err := json.Unmarshal(ev.Data, v); err != nil {
		// The schema accepted it, so this is a bug; say so loudly.
		o.s.m.commands.WithLabelValues(kind, string(ignoreInvalid)).Inc()
		o.log.Error("scheduler: command passed its schema but does not decode", "type", ev.Type, "id", ev.ID, "err", err)
		return false
	}
	return true
}

// campaignCommand applies one campaign command: decoded into cmd, skipped
// when its offset is at or below the campaign's applied offset (a replay
// after a crash between the state write and the commit), else applied by
// apply, whose transition is written with the new applied offset.
func (o *owner) campaignCommand(kind string, rec *kgo.Record, ev *schemas.Event, cmd any, id func() string,
	apply func(*campaign) (*campaign, transition), w *writes) {
	if !o.unmarshal(ev, cmd, kind) {
		return
	}
	cid := id()
	c := o.st.campaigns[cid]
	if c == nil && kind != "created" {
		o.s.m.commands.WithLabelValues(kind, string(ignoreUnknown)).Inc()
		o.log.Warn("scheduler: command for an unknown campaign ignored", "kind", kind, "campaign_id", cid, "offset", rec.Offset)
		return
	}
	if c != nil && rec.Offset <= c.state.CommandOffset {
		o.s.m.commands.WithLabelValues(kind, string(resultReplay)).Inc()
		return
	}
	next, tr := apply(c)
	if tr.ignored != ignoreNone {
		o.s.m.commands.WithLabelValues(kind, string(tr.ignored)).Inc()
		return
	}
	o.s.m.commands.WithLabelValues(kind, string(resultApplied)).Inc()
	if c == nil {
		o.st.campaigns[cid] = next
		pc := newPacer(next.state.Campaign.Pacing.CallsPerSecond, next.state.Campaign.Pacing.MaxConcurrent)
		o.st.pacers[cid] = &pc
	}
	next.state.CommandOffset = rec.Offset
	tr.campaign = true
	o.collect(next, tr, w)
}

// collect adds a transition's records: its campaign events, then the
// contacts' states, then the campaign's (which holds the applied offset,
// so it is written after everything it stands for).
func (o *owner) collect(c *campaign, tr transition, w *writes) {
	for _, e := range tr.events {
		w.addEvent(campaignEventRecord(e))
	}
	for _, k := range tr.contacts {
		w.addState(contactStateRecord(k, o.p))
	}
	if tr.campaign {
		w.addState(campaignStateRecord(c, o.p))
	}
}

// releaseRound releases what is due in this partition now: every running
// campaign's releasable contacts and the scheduled calls whose time has
// come; it expires campaigns past end_at. It returns when to look again.
func (o *owner) releaseRound() (time.Time, bool) {
	now := o.s.cfg.clock().UTC()
	wake := now.Add(o.s.cfg.MaxWake)
	w := &writes{}
	for id, c := range o.st.campaigns {
		if c.finished() {
			continue
		}
		if end := c.state.Campaign.Schedule.EndAt; end != nil {
			if now.Before(*end) {
				wake = earliest(wake, *end)
			} else if tr := c.expire(now); tr.campaign {
				o.collect(c, tr, w)
			}
		}
		camp := c.state.Campaign
		pol, ok := o.s.reg.Policy(camp.WorkspaceID, camp.CallAgentID)
		if !ok {
			continue // the workspace or agent left the registry: nothing of it is dialed
		}
		pc := o.st.pacers[id]
		ks, next := c.releasable(now, pol.Hours, pc)
		if n := c.windowWaits; n > 0 {
			o.s.m.windowWaits.Add(float64(n))
			c.windowWaits = 0
		}
		if !next.IsZero() {
			wake = earliest(wake, next)
		}
		for _, k := range ks {
			req := c.release(k, now)
			pc.released(now)
			w.addFirst(callRequestRecord(req))
			w.addState(contactStateRecord(k, o.p))
		}
		if len(ks) > 0 {
			w.addState(campaignStateRecord(c, o.p))
			o.s.m.releases.WithLabelValues(string(kindCampaign)).Add(float64(len(ks)))
		}
	}
	for {
		it, ok := o.callsDue.peek()
		if !ok {
			break
		}
		st := o.st.scheduled[it.id]
		if st == nil || st.Status != schemas.ScheduledCallWaiting {
			o.callsDue.pop()
			continue
		}
		if it.at.After(now) {
			wake = earliest(wake, it.at)
			break
		}
		req := st.Scheduled.Request
		hours := compliance.AllDay() // unknown workspace: released, and the dialer refuses it with its reason
		if pol, ok := o.s.reg.Policy(req.WorkspaceID, req.CallAgentID); ok {
			hours = pol.Hours
		}
		release, next, moved := scheduledDue(st, now, hours)
		switch {
		case moved:
			o.callsDue.schedule(it.id, next)
			w.addState(scheduledStateRecord(st, o.p))
			o.s.m.windowWaits.Inc()
		case release:
			o.callsDue.pop()
			w.addFirst(callRequestRecord(releaseScheduled(st, now)))
			w.addState(scheduledStateRecord(st, o.p))
			o.s.m.releases.WithLabelValues(string(kindScheduled)).Inc()
		default:
			o.callsDue.schedule(it.id, next)
		}
	}
	if w.len() == 0 {
		return wake, true
	}
	return wake, o.write(w)
}

// report brings the gauges up to date with this owner's share; gone
// removes the share (the partition left this process).
func (o *owner) report(gone bool) {
	var g gauges
	if !gone && o.st != nil {
		g = gauges{contacts: map[schemas.ContactStatus]int{}, campaigns: map[schemas.CampaignStatus]int{}}
		for _, c := range o.st.campaigns {
			g.campaigns[c.state.Status]++
			for s, n := range c.state.Counters.ByState {
				g.contacts[s] += n
			}
			if c.state.Status == schemas.CampaignRunning {
				g.pacing += c.state.Campaign.Pacing.CallsPerSecond
			}
		}
		for _, sc := range o.st.scheduled {
			if sc.Status == schemas.ScheduledCallWaiting {
				g.scheduled++
			}
		}
	}
	m, r := o.s.m, o.reported
	for _, s := range schemas.ContactStatuses {
		m.contacts.WithLabelValues(string(s)).Add(float64(g.contacts[s] - r.contacts[s]))
	}
	for _, s := range schemas.CampaignStatuses {
		m.campaigns.WithLabelValues(string(s)).Add(float64(g.campaigns[s] - r.campaigns[s]))
	}
	m.pacing.Add(g.pacing - r.pacing)
	m.scheduledCalls.Add(float64(g.scheduled - r.scheduled))
	o.reported = g
}
