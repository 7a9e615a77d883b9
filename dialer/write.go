package dialer

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

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

// flush writes a batch's DLQ records, then its events, then its states;
// marks the batch; fences and runs its effects. It returns false if the
// owner was stopped before the writes were acknowledged: nothing is marked
// and no effect runs, and the next owner applies the batch again.
func (o *partitionOwner) flush(b *batchOut) bool {
	if !o.write(b.dlq) || !o.write(b.events) {
		return false
	}
	now := time.Now()
	states := make([]*kgo.Record, 0, len(b.order))
	for _, id := range b.order {
		r, err := stateRecord(b.states[id], o.p, now)
		if err != nil {
			o.log.ErrorContext(b.traces[id], "dialer: call state does not match its schema; not written", "call_id", id, "workspace_id", b.states[id].WorkspaceID, "err", err)
			continue
		}
		r.Context = b.traces[id]
		states = append(states, r)
	}
	if !o.write(states) {
		return false
	}
	if b.mark != nil {
		o.d.cons.MarkCommitRecords(b.mark)
		o.fenceOffset = b.mark.Offset + 1
	}

	dialOK := true
	for _, e := range b.effects {
		if e.eff&effDial != 0 {
			if err := o.fence(); err != nil {
				dialOK = false
				o.d.m.fenceFailures.Inc()
				o.log.Error("dialer: not dialing: the group no longer confirms this process owns the partition; the next owner resolves these calls", "err", err)
				for _, x := range b.effects {
					if x.eff&effDial != 0 {
						o.log.WarnContext(x.ctx, "dialer: call not dialed by this process; the partition's next owner resolves it",
							"call_id", x.st.CallID, "workspace_id", x.st.WorkspaceID)
					}
				}
			}
			break
		}
	}
	for _, c := range b.changes {
		o.logChange(c)
		o.d.m.transitionApplied(c.prev, c.next, c.events)
	}
	for _, id := range b.order {
		o.d.adm.sync(o.p, b.states[id])
	}
	for _, e := range b.effects {
		if e.eff&effDial != 0 && dialOK {
			o.d.startDial(e.ctx, o.p, e.st)
		}
		if e.eff&effHangup != 0 {
			o.d.hangup(e.ctx, e.st)
		}
		if e.eff&effTransfer != 0 {
			o.d.transfer(e.ctx, o.p, e.st)
		}
		if e.eff&effOptOut != 0 {
			o.d.optOut(e.ctx, e.st)
		}
	}
	return true
}

// write produces recs and waits for every one to be acknowledged, retrying
// failures until the owner is stopped.
func (o *partitionOwner) write(recs []*kgo.Record) bool {
	wait := backoff.Doubling{Next: 100 * time.Millisecond, Max: 5 * time.Second}
	for len(recs) > 0 {
		res := o.d.prod.ProduceSync(o.ctx, recs...)
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
		if o.ctx.Err() != nil || errors.Is(firstErr, kgo.ErrClientClosed) {
			return false
		}
		o.d.m.flushRetries.Inc()
		o.log.Warn("dialer: write to kafka failed; retrying", "records", len(failed), "err", firstErr)
		if !wait.Wait(o.ctx) {
			return false
		}
		recs = failed
	}
	return true
}

func (o *partitionOwner) logChange(c change) {
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
		o.log.InfoContext(c.ctx, "call "+string(ev.Status), attrs...)
	}
}
