package dialer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/schemas"
)

// The compliance check right before the dial (issue 14; the rules are
// internal/compliance's). Admission picks a call that may dial under the
// workspace's limits; before its admit command is written, the call is
// checked against the do-not-call list, the destination permissions, the
// attempt caps and the calling hours in the callee's local time, at that
// moment. The gap between this check and the SIP INVITE is the admit
// command's round trip through the partition (milliseconds), so a call
// checked at 20:59:58 cannot ring at 21:00:01 unless the broker stalls for
// seconds in between.
//
//   - Allowed: the admit command is written as before; if it cannot be, the
//     attempt reserved by Admit is released and the call stays queued.
//   - Refused: a refuse decision is written to the call's partition instead.
//     The owner applies it like any decision (queued -> ended with the rule's
//     outcome and reason, ended_by dialer), so a replay refuses the same way
//     and the call is never rung.
//   - Not ready (the suppression list or the week of attempts still loading,
//     or an attempt to the same number in flight): fail closed. The call
//     goes back to its queue and is checked again shortly; it is never
//     dialed unchecked. DIALER_MAX_QUEUE_WAIT still bounds the wait.

// complianceRetry is how soon a call put off by ErrNotReady is checked again.
const complianceRetry = 250 * time.Millisecond

// gate holds the dialer's copy of the suppression list and of the last
// week of attempts, and the checker over them.
type gate struct {
	checker      *compliance.Checker
	suppressions *compliance.Follower
	attempts     *compliance.Follower
	now          func() time.Time
}

// newGate builds the followers; start runs them.
func (d *dialer) newGate() (*gate, error) {
	tbl, att := compliance.NewTable(), compliance.NewAttempts()
	sf, err := compliance.FollowSuppressions(d.kafkaOpts, tbl, d.log)
	if err != nil {
		return nil, fmt.Errorf("dialer: suppression list: %w", err)
	}
	af, err := compliance.FollowAttempts(d.kafkaOpts, att, d.log)
	if err != nil {
		return nil, fmt.Errorf("dialer: attempt history: %w", err)
	}
	now := d.cfg.complianceClock
	if now == nil {
		now = time.Now
	}
	return &gate{
		checker:      &compliance.Checker{Policies: d.reg, Suppressions: tbl, Attempts: att, Barrier: af.Barrier},
		suppressions: sf, attempts: af, now: now,
	}, nil
}

// run reads both topics until ctx ends, pruning attempts older than a week
// once an hour.
func (g *gate) run(ctx context.Context, d *dialer) {
	for _, f := range []*compliance.Follower{g.suppressions, g.attempts} {
		d.bg.Go(func() {
			if hold := d.cfg.complianceHold; hold != nil {
				select {
				case <-hold:
				case <-ctx.Done():
					return
				}
			}
			if err := f.Run(ctx); err != nil && ctx.Err() == nil {
				d.log.Error("dialer: compliance follower stopped; no call is dialed until restart", "err", err)
			}
		})
	}
	d.bg.Go(func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				g.checker.Attempts.Prune(g.now())
			}
		}
	})
}

// loaded is a readiness check: the dialer places no call before both
// copies have caught up.
func (g *gate) loaded(context.Context) error {
	switch {
	case !g.suppressions.CaughtUp():
		return errors.New("loading the do-not-call list")
	case !g.attempts.CaughtUp():
		return errors.New("loading the last week of attempts")
	}
	return nil
}

// admitChecked is admission's callback: it checks the call and writes the
// admit or the refusal.
func (d *dialer) admitChecked(t admitTicket) {
	ctx, cancel := context.WithTimeout(d.prodCtx, compliance.Settle)
	v, err := d.gate.checker.Admit(ctx, t.WorkspaceID, t.CallAgentID, t.To, t.CallID, d.gate.now())
	cancel()
	switch {
	case err != nil:
		// Not ready, or a workspace the registry no longer has: the call
		// waits (and expires after DIALER_MAX_QUEUE_WAIT if this lasts).
		d.m.notReady.Inc()
		d.log.Debug("dialer: compliance check put off", "call_id", t.CallID, "workspace_id", t.WorkspaceID, "err", err)
		d.adm.failed(t)
		time.AfterFunc(complianceRetry, d.adm.poke)
	case v.Allowed():
		d.writeAdmit(t)
	default:
		d.writeRefusal(t, v)
	}
}

// writeRefusal writes the refuse decision for a call the check refused.
func (d *dialer) writeRefusal(t admitTicket, v compliance.Verdict) {
	d.writeDecision(t, decision{
		CallID: t.CallID, WorkspaceID: t.WorkspaceID, Decision: decideRefuse,
		Outcome: schemas.Outcome(v.Outcome), Reason: schemas.Clip(v.Reason, 512), DecidedAt: t.At.UTC(),
	}, func() { d.m.refusals.WithLabelValues(string(v.Outcome)).Inc() }, nil)
}
