package scheduler

import (
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// applyOutcome records a call's outcome on its contact and decides what
// comes next: another attempt after the policy's delay, or done. It reports
// whether the contact changed; an outcome it already has, or one for an
// attempt it never released, changes nothing, so the outcome relay may
// deliver an outcome more than once.
//
// The rule of the outcome that just came decides, with every attempt counted:
// a contact that was busy once and then did not answer, under busy {max 3}
// and no_answer {max 2}, is done after the second call. Counting per outcome
// instead would let mixed outcomes call a number more often than any single
// rule says, and a callee does not care which rule rang them.
//
// A contact the campaign ended while its call was in progress (canceled,
// expired) keeps that status: the outcome is recorded, no retry is planned.
func applyOutcome(c *schemas.ContactState, o schemas.CampaignOutcome, policy schemas.RetryPolicy) bool {
	i := -1
	for j := range c.Attempts {
		if c.Attempts[j].Attempt == o.Attempt && c.Attempts[j].CallID == o.CallID {
			i = j
		}
	}
	if i < 0 || c.Attempts[i].Outcome != "" {
		return false
	}
	ended := o.EndedAt.UTC()
	a := &c.Attempts[i]
	a.Outcome, a.AnsweredBy, a.EndedAt = o.Outcome, o.AnsweredBy, &ended
	c.Outcome = o.Outcome
	c.UpdatedAt = ended
	if c.Status != schemas.ContactCalling || i != len(c.Attempts)-1 {
		return true
	}
	if rule := policy.For(o.Outcome); rule != nil && len(c.Attempts) < rule.MaxAttempts {
		due := ended.Add(time.Duration(rule.DelaySeconds) * time.Second)
		c.Status, c.NextDueAt = schemas.ContactWaiting, &due
		return true
	}
	c.Status, c.NextDueAt = schemas.ContactDone, nil
	return true
}
