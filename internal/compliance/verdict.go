package compliance

import (
	"errors"
	"time"
)

// Outcome is why a call was refused: the four compliance outcomes of a call
// that is never rung. The values are the outcome words of the ended event
// (docs/architecture.md, "Lifecycle and outcomes") and a bounded metric
// label.
type Outcome string

const (
	// Allowed: no rule refuses the call.
	Allowed Outcome = ""
	// OutcomeSuppressed: the number is on the workspace's do-not-call list.
	OutcomeSuppressed Outcome = "suppressed"
	// OutcomeDestinationNotAllowed: the number is in a country the
	// workspace does not call, of a high-risk type it does not allow, or
	// in no valid range.
	OutcomeDestinationNotAllowed Outcome = "destination_not_allowed"
	// OutcomeAttemptCapped: the number had its attempts for the rolling
	// day or week.
	OutcomeAttemptCapped Outcome = "attempt_capped"
	// OutcomeOutsideCallingHours: it is not calling time in (every one of)
	// the callee's time zones.
	OutcomeOutsideCallingHours Outcome = "outside_calling_hours"
)

// Outcomes lists every refusal, in the order Check applies the rules (for
// metrics initialization).
var Outcomes = []Outcome{OutcomeSuppressed, OutcomeDestinationNotAllowed, OutcomeAttemptCapped, OutcomeOutsideCallingHours}

// Verdict is the decision on one call.
type Verdict struct {
	// Outcome is Allowed, or the first rule that refuses the call.
	Outcome Outcome
	// Reason says in a sentence what refused the call and which setting
	// governs it; empty when allowed. It names the number: mask it before
	// it goes into a log line.
	Reason string
	// NextAllowedAt is, for attempt_capped and outside_calling_hours, the
	// earliest instant at which the call would pass both rules (zero if
	// none within a month): what ingest's 422 carries and where a scheduler
	// defers to. Zero for the other outcomes: they do not pass with time.
	NextAllowedAt time.Time
}

// Allowed reports whether no rule refuses the call.
func (v Verdict) Allowed() bool { return v.Outcome == Allowed }

// ErrNotReady means the checker cannot decide yet: its copy of the
// suppression list or of the attempt history has not caught up with Kafka,
// or this process has an attempt to the same number in flight. Fail closed:
// the caller does not dial, and asks again shortly (the dialer keeps the
// call queued, ingest answers 503 with Retry-After).
var ErrNotReady = errors.New("compliance: not ready to decide")

// ErrUnknownWorkspace is returned for a workspace (or agent) the registry
// does not define.
var ErrUnknownWorkspace = errors.New("compliance: unknown workspace")
