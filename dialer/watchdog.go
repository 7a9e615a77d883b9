package dialer

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// decisionRetry is how long a written decision may take to come back before
// the watchdog writes it again.
const decisionRetry = 30 * time.Second

// watchdog makes sure no call of the partition stays open forever. It never
// changes a call itself: it writes decisions (applied in log order like any
// command) or starts a LiveKit check whose result is a command.
//
//   - queued longer than MaxQueueWait: decide expire.
//   - dialing or ringing with no dial in this process, past the ringing
//     timeout + grace: the dialer that placed it died. Ask LiveKit: an
//     answered callee is adopted, anything else is hung up and ends failed.
//     Never redialed (recovery.go).
//   - answered past max_call_duration + grace: decide max_duration (hang up).
//   - answered: every RoomCheckInterval, check LiveKit still has the callee
//     (LiveKit drops old webhooks; a lost participant_left must not leave
//     the call open).
//   - ended past EndedRetention and committed: delete its state.
func (o *partitionOwner) watchdog(now time.Time) {
	cfg := o.d.cfg
	var answered []*callState
	committed := o.committed()
	for id, st := range o.calls {
		switch st.Phase {
		case schemas.StatusQueued:
			if now.Sub(st.QueuedAt) > cfg.MaxQueueWait {
				o.decide(st, decideExpire, "waited longer than "+cfg.MaxQueueWait.String()+" for admission", now)
			}
		case schemas.StatusDialing, schemas.StatusRinging:
			if o.inDoubt(st, now) {
				if st.Phase == schemas.StatusDialing && st.SIPSendingAt.IsZero() {
					o.d.redialUnsent(o.p, st.clone())
				} else {
					o.d.recoverDial(o.p, st.clone())
				}
			}
		case schemas.StatusAnswered:
			if st.Agent != nil && now.Sub(st.AnsweredAt) > st.Agent.maxCallDuration()+cfg.WatchdogGrace {
				o.decide(st, decideMaxDuration, "the call outlived the agent's max_call_duration of "+st.Agent.maxCallDuration().String(), now)
				continue
			}
			answered = append(answered, st.clone())
		case schemas.StatusEnded:
			// Only once the call's last command is committed: a replay
			// from an older offset must still find the call.
			if now.Sub(st.EndedAt) > cfg.EndedRetention && committed > st.AppliedOffset {
				delete(o.calls, id)
				ts := tombstoneRecord(id, o.p)
				ts.Context = callContext(st)
				ws := st.WorkspaceID
				o.d.prod.Produce(o.d.prodCtx, ts, func(r *kgo.Record, err error) {
					if err != nil {
						o.log.WarnContext(r.Context, "dialer: delete ended call state failed; retried after the next load", "call_id", id, "workspace_id", ws, "err", err)
					}
				})
			}
		}
	}
	if len(answered) > 0 && !now.Before(o.nextRoomCheck) {
		o.nextRoomCheck = now.Add(cfg.RoomCheckInterval)
		o.d.checkCallees(o.p, answered)
	}
	for k, t := range o.pending {
		if now.Sub(t) > decisionRetry {
			delete(o.pending, k)
		}
	}
	o.maybeEndOverflow()
	o.reportAges(now)
}

// committed is the partition's committed offset as this client knows it.
func (o *partitionOwner) committed() int64 {
	if o, ok := o.d.cons.CommittedOffsets()[schemas.TopicRequested][o.p]; ok {
		return o.Offset
	}
	return -1
}

// decide writes a timer's decision about a call, once per decisionRetry.
func (o *partitionOwner) decide(st *callState, kind decisionKind, reason string, now time.Time) {
	key := st.CallID + string(kind)
	if _, ok := o.pending[key]; ok {
		return
	}
	o.pending[key] = now
	rec, err := commandRecord(TypeDecision, st.CallID, o.p, now, decision{
		CallID: st.CallID, WorkspaceID: st.WorkspaceID, Decision: kind, Reason: schemas.Clip(reason, 512), DecidedAt: now.UTC(),
	})
	ctx := callContext(st)
	if err != nil {
		o.log.ErrorContext(ctx, "dialer: encode decision", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "err", err)
		return
	}
	rec.Context = ctx
	o.log.InfoContext(ctx, "dialer: watchdog decision", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "decision", kind)
	id, ws := st.CallID, st.WorkspaceID
	o.d.prod.Produce(o.d.prodCtx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			o.log.WarnContext(ctx, "dialer: write decision failed; the watchdog retries", "call_id", id, "workspace_id", ws, "err", err)
		}
	})
}

// goneChecks is how many room checks in a row must find an answered call's
// callee gone, or its room hosted by no LiveKit node, before the call is
// ended: the callee's participant_left webhook may simply not have arrived
// yet (it ends the call with the callee's own reason), and one answer "no
// response from servers" could be a node too busy to answer in time; two,
// RoomCheckInterval apart, are a callee that left unreported or a room
// nobody serves.
const goneChecks = 2

// roomEndUnhosted is the room_end_reason of a room_gone for a room no
// LiveKit node hosts any more.
const roomEndUnhosted = "unhosted"

// checkCallees ends answered calls whose callee LiveKit no longer has, for
// when the webhook that said so never arrived, and those whose room no
// LiveKit node hosts any more (its livekit-server died: no webhook comes,
// and LiveKit's store still lists the callee).
func (d *dialer) checkCallees(p int32, calls []*callState) {
	d.checkOnce("callees:"+strconv.Itoa(int(p)), func() {
		strikes := d.gone.take(p)
		next := map[string]int{}
		defer d.gone.put(p, next)
		for _, st := range calls {
			ctx, cancel := context.WithTimeout(d.dialCtx, 10*time.Second)
			parts, err := d.lk.ListParticipants(ctx, st.RoomName)
			present, hosted := false, true
			for _, pi := range parts {
				present = present || pi.GetIdentity() == calleeIdentity(st.CallID)
			}
			switch {
			case noServer(err):
				// LiveKit set to ask the room's node for its participants,
				// and no node answered: as good as an unhosted probe.
				present, hosted, err = true, false, nil
			case err == nil && present:
				hosted, err = d.lk.RoomHosted(ctx, st.RoomName)
			}
			cancel()
			if err != nil {
				if d.dialCtx.Err() != nil {
					return
				}
				next[st.CallID] = strikes[st.CallID]
				continue
			}
			if present && hosted {
				continue
			}
			if next[st.CallID] = strikes[st.CallID] + 1; next[st.CallID] < goneChecks {
				continue
			}
			var endReason string
			if present {
				endReason = roomEndUnhosted
				d.log.WarnContext(callContext(st), "dialer: no LiveKit node hosts the answered call's room; ending it",
					"call_id", st.CallID, "workspace_id", st.WorkspaceID, "room", st.RoomName, "checks", next[st.CallID])
			}
			now := time.Now().UTC()
			rec, err := commandRecord(TypeLiveKitEvent, st.CallID, p, now, livekitEvent{
				CallID: st.CallID, WorkspaceID: st.WorkspaceID, Event: lkRoomGone, RoomName: st.RoomName, RoomEndReason: endReason, OccurredAt: now,
			})
			if err == nil {
				rec.Context = callContext(st)
				err = d.writeCommand(d.prodCtx, rec, st)
			}
			if err != nil {
				d.log.WarnContext(callContext(st), "dialer: room_gone not written", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "err", err)
			}
		}
	})
}

// checkOnce runs a LiveKit check in the background unless the check under
// key is still running; shutdown waits for it.
func (d *dialer) checkOnce(key string, check func()) {
	if !d.busy.try(key) {
		return
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		defer d.busy.done(key)
		check()
	}()
}

// strikeSet holds, per partition, how many room checks in a row found each
// answered call's callee gone or its room unhosted. A round takes its
// partition's counts and puts back only those of the calls it checked, so
// ended calls drop out.
type strikeSet struct {
	mu sync.Mutex
	m  map[int32]map[string]int
}

func (s *strikeSet) take(p int32) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[p]
	delete(s.m, p)
	return c
}

func (s *strikeSet) put(p int32, c map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[int32]map[string]int{}
	}
	for id, n := range c {
		if n == 0 {
			delete(c, id)
		}
	}
	if len(c) > 0 {
		s.m[p] = c
	}
}

// busySet keeps one background check per key at a time.
type busySet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

func (s *busySet) try(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		return false
	}
	s.m[key] = struct{}{}
	return true
}

func (s *busySet) done(key string) {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}
