package compliance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Policies resolves the policy that applies to a workspace's calls through
// one of its agents; *registry.Registry implements it. agentID may be empty
// (the workspace's own policy).
type Policies interface {
	Policy(workspaceID, agentID string) (Policy, bool)
}

// Checker applies every rule to one call. The dialer calls Admit right
// before each dial; ingest calls Check when it accepts a request.
type Checker struct {
	Policies     Policies
	Suppressions *Table
	// Attempts is the attempt history. Nil leaves the caps unchecked: for
	// ingest, which does not read a week of events; the dialer, which
	// does, enforces them.
	Attempts *Attempts
	// Barrier, when set, is the attempt follower's Barrier: Admit waits for
	// it, so the count includes every attempt written before the decision.
	Barrier func(context.Context) error
	// Now measures how long an Admit took; time.Now when nil.
	Now func() time.Time
}

// Check decides whether a call from workspace ws through agent to number may
// be placed at at. Rules apply in this order, and the verdict names the
// first that refuses: suppressed, destination_not_allowed, attempt_capped,
// outside_calling_hours (a listed number is refused as listed whatever else
// holds; a destination never becomes allowed with time; the two timed rules
// give a NextAllowedAt that satisfies both).
//
// It counts nothing: a call that passes is not yet an attempt (see Admit).
// It returns ErrNotReady while the suppression table or the attempt history
// has not caught up, and ErrUnknownWorkspace for a workspace or agent the
// policies do not know. It never blocks: the cost is a map lookup, the
// phone-number library's classification (a few microseconds) and, for a
// refusal on hours, a search of the next window.
func (c *Checker) Check(ws, agent, number string, at time.Time) (Verdict, error) {
	v, _, _, err := c.check(ws, agent, number, at, nil)
	return v, err
}

// CheckClassified is Check for a number the caller classified already
// (Classify or ClassifyParsed of number): the same verdict, without
// classifying it again.
func (c *Checker) CheckClassified(ws, agent string, number Number, at time.Time) (Verdict, error) {
	v, _, _, err := c.check(ws, agent, number.E164, at, &number)
	return v, err
}

// Admit is Check plus, when the call passes, counting it as an attempt at
// once (Attempts.Reserve), in one step, so that two calls to one number
// decided at the same moment in two partitions of this process cannot both
// take the last attempt. Call it right before the dial. If the dial then
// does not happen (the call is canceled, or writing its dialing event
// fails), call Attempts.Release.
//
// It first waits for Barrier, when set. Besides Check's errors it returns
// ErrNotReady while another call of this process to the same number is in
// flight (Attempts.Reserve), and when the barrier and the decision together
// took longer than Settle/2 (a reservation made on a count that old is
// released again): in both cases the caller keeps the call queued and asks
// again in a moment. doc.go says why these bound the race between dialers.
func (c *Checker) Admit(ctx context.Context, ws, agent, number, callID string, at time.Time) (Verdict, error) {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	// With both caps unlimited there is no count to race for (Reserve
	// allows without counting): skip the barrier's round trip.
	if p, ok := c.Policies.Policy(ws, agent); ok && p.Caps.PerDay == Unlimited && p.Caps.PerWeek == Unlimited {
		return c.Check(ws, agent, number, at)
	}
	if c.Barrier != nil && c.Attempts != nil {
		if err := c.Barrier(ctx); err != nil {
			return Verdict{}, fmt.Errorf("%w: %w", ErrNotReady, err)
		}
	}
	v, p, n, err := c.check(ws, agent, number, at, nil)
	if err != nil || !v.Allowed() || c.Attempts == nil {
		return v, err
	}
	ok, next, err := c.Attempts.Reserve(ws, number, callID, at, p.Caps)
	if err != nil {
		return Verdict{}, err
	}
	if !ok {
		return c.capped(p, n, next), nil
	}
	if took := now().Sub(start); took > Settle/2 {
		c.Attempts.Release(ws, number, callID)
		return Verdict{}, fmt.Errorf("%w: the attempt count took %s to settle, more than %s", ErrNotReady, took, Settle/2)
	}
	return v, nil
}

// check is Check; classified, when not nil, is number already classified.
func (c *Checker) check(ws, agent, number string, at time.Time, classified *Number) (Verdict, Policy, Number, error) {
	p, ok := c.Policies.Policy(ws, agent)
	if !ok {
		return Verdict{}, p, Number{}, fmt.Errorf("%w: %q (agent %q)", ErrUnknownWorkspace, ws, agent)
	}
	if c.Attempts != nil && !c.Attempts.Ready() {
		return Verdict{}, p, Number{}, fmt.Errorf("%w: the attempt history is still loading", ErrNotReady)
	}
	e, listed, err := c.Suppressions.Lookup(ws, number)
	switch {
	case errors.Is(err, ErrNotReady):
		return Verdict{}, p, Number{}, fmt.Errorf("%w: the suppression list is still loading", ErrNotReady)
	case err != nil:
		return Verdict{Outcome: OutcomeDestinationNotAllowed, Reason: err.Error()}, p, Number{}, nil
	case listed:
		return Verdict{Outcome: OutcomeSuppressed, Reason: fmt.Sprintf("%s is on the workspace's do-not-call list (%s, since %s)",
			number, e.Reason, e.AddedAt.Format(time.RFC3339))}, p, Number{}, nil
	}
	var n Number
	if classified != nil {
		n = *classified
	} else if n, err = Classify(number); err != nil {
		return Verdict{Outcome: OutcomeDestinationNotAllowed, Reason: err.Error()}, p, n, nil
	}
	if ok, why := p.Destinations.Allowed(n); !ok {
		return Verdict{Outcome: OutcomeDestinationNotAllowed, Reason: why}, p, n, nil
	}
	if c.Attempts != nil {
		if ok, next := c.Attempts.Allowed(ws, number, at, p.Caps); !ok {
			return c.capped(p, n, next), p, n, nil
		}
	}
	if ok, next := p.Hours.AllowedIn(n.zones, at); !ok {
		return Verdict{Outcome: OutcomeOutsideCallingHours, Reason: hoursReason(p.Hours, n, at, next), NextAllowedAt: next}, p, n, nil
	}
	return Verdict{}, p, n, nil
}

// capped is the attempt_capped verdict; its NextAllowedAt is the first time
// after the caps free up that is inside calling hours too.
func (c *Checker) capped(p Policy, n Number, free time.Time) Verdict {
	next := free
	if ok, hn := p.Hours.AllowedIn(n.zones, free); !ok {
		next = hn
	}
	return Verdict{
		Outcome: OutcomeAttemptCapped,
		Reason: fmt.Sprintf("%s has had the attempts the workspace allows (%s per 24 hours, %s per 7 days: compliance.max_attempts_per_day, max_attempts_per_week); the next is allowed from %s",
			n.E164, capString(p.Caps.PerDay), capString(p.Caps.PerWeek), free.UTC().Format(time.RFC3339)),
		NextAllowedAt: next,
	}
}

func hoursReason(h Hours, n Number, at, next time.Time) string {
	var b strings.Builder
	if n.zones == nil {
		fmt.Fprintf(&b, "the time zone of %s is unknown, so a call must be inside calling hours (%s) everywhere on Earth, which only all-day hours are", n.E164, h)
	} else {
		for _, z := range n.zones {
			if !h.allowedIn(z, at) {
				fmt.Fprintf(&b, "it is %s in %s, outside calling hours (%s)", at.In(z).Format("Mon 2006-01-02 15:04"), z, h)
				if len(n.zones) > 1 {
					fmt.Fprintf(&b, "; %s may be in any of %d time zones and a call must be inside the hours in all of them", n.E164, len(n.zones))
				}
				break
			}
		}
	}
	if next.IsZero() {
		b.WriteString("; no time in the next month is")
	} else {
		fmt.Fprintf(&b, "; next allowed at %s", next.UTC().Format(time.RFC3339))
	}
	return b.String()
}
