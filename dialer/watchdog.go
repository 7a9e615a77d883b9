package dialer

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// watchdog makes sure no call of the partition stays open forever. It never
// changes a call itself: it writes decisions (applied in log order like any
// command) or starts a LiveKit check whose result is a command.
//
//   - queued longer than MaxQueueWait: decide expire.
//   - dialing or ringing with no dial in this process, past the ringing
//     timeout + grace: the dialer that placed it died. Ask LiveKit: an
//     answered callee is adopted, anything else is hung up and ends failed.
//     Never redialed.
//   - answered past max_call_duration + grace: decide max_duration (hang up).
//   - answered: every RoomCheckInterval, check LiveKit still has the callee
//     (LiveKit drops old webhooks; a lost participant_left must not leave
//     the call open).
//   - ended past EndedRetention and committed: delete its state.
func (w *partition) watchdog(now time.Time) {
	cfg := w.d.cfg
	var answered []*callState
	committed := w.committed()
	for id, st := range w.calls {
		switch st.Phase {
		case schemas.StatusQueued:
			if now.Sub(st.QueuedAt) > cfg.MaxQueueWait {
				w.decide(st, decideExpire, "waited longer than "+cfg.MaxQueueWait.String()+" for admission", now)
			}
		case schemas.StatusDialing, schemas.StatusRinging:
			if st.Agent == nil || w.d.dials.has(id) {
				continue
			}
			if now.Sub(st.DialingAt) > st.Agent.ringingTimeout()+cfg.WatchdogGrace {
				w.d.recoverDial(w.p, st.clone())
			}
		case schemas.StatusAnswered:
			if st.Agent != nil && now.Sub(st.AnsweredAt) > st.Agent.maxCallDuration()+cfg.WatchdogGrace {
				w.decide(st, decideMaxDuration, "the call outlived the agent's max_call_duration of "+st.Agent.maxCallDuration().String(), now)
				continue
			}
			answered = append(answered, st.clone())
		case schemas.StatusEnded:
			// Only once the call's last command is committed: a replay
			// from an older offset must still find the call.
			if now.Sub(st.EndedAt) > cfg.EndedRetention && committed > st.AppliedOffset {
				delete(w.calls, id)
				ts := tombstoneRecord(id, w.p)
				ts.Context = callContext(st)
				ws := st.WorkspaceID
				w.d.prod.Produce(w.d.prodCtx, ts, func(r *kgo.Record, err error) {
					if err != nil {
						w.log.WarnContext(r.Context, "dialer: delete ended call state failed; retried after the next load", "call_id", id, "workspace_id", ws, "err", err)
					}
				})
			}
		}
	}
	if len(answered) > 0 && !now.Before(w.nextRoomCheck) {
		w.nextRoomCheck = now.Add(cfg.RoomCheckInterval)
		w.d.checkCallees(w.p, answered)
	}
	for k, t := range w.pending {
		if now.Sub(t) > decisionRetry {
			delete(w.pending, k)
		}
	}
	w.maybeEndOverflow()
	w.reportAges(now)
}

// committed is the partition's committed offset as this client knows it.
func (w *partition) committed() int64 {
	if o, ok := w.d.cons.CommittedOffsets()[schemas.TopicRequested][w.p]; ok {
		return o.Offset
	}
	return -1
}

// decide writes a timer's decision about a call, once per decisionRetry.
func (w *partition) decide(st *callState, kind decisionKind, reason string, now time.Time) {
	key := st.CallID + string(kind)
	if _, ok := w.pending[key]; ok {
		return
	}
	w.pending[key] = now
	rec, err := commandRecord(TypeDecision, st.CallID, w.p, now, decision{
		CallID: st.CallID, WorkspaceID: st.WorkspaceID, Decision: kind, Reason: schemas.Clip(reason, 512), DecidedAt: now.UTC(),
	})
	ctx := callContext(st)
	if err != nil {
		w.log.ErrorContext(ctx, "dialer: encode decision", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "err", err)
		return
	}
	rec.Context = ctx
	w.log.InfoContext(ctx, "dialer: watchdog decision", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "decision", kind)
	id, ws := st.CallID, st.WorkspaceID
	w.d.prod.Produce(w.d.prodCtx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			w.log.WarnContext(ctx, "dialer: write decision failed; the watchdog retries", "call_id", id, "workspace_id", ws, "err", err)
		}
	})
}
