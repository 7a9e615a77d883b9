// Package compliance decides whether a call may be placed: the do-not-call
// list, destination permissions (toll fraud), attempt caps and calling hours
// in the callee's local time. The dialer asks right before each dial
// (Checker.Admit) and refuses with one of four outcomes, never ringing;
// ingest asks when it accepts a request (Checker.Check) and answers 422.
//
// # Guarantees
//
//   - Fail closed. Until this process has read the suppression list (and,
//     for the dialer, the last week of attempts) up to where Kafka stood when
//     it started, every check returns ErrNotReady: calls wait, they are never
//     dialed unchecked. A number whose time zone is unknown is treated as
//     being anywhere on Earth (zones.go), so the default hours never admit
//     it. A number the phone-number library does not recognize is never
//     dialed, except the fictional test range (IsTestNumber).
//   - One decision function, pure but for the tables it reads: time is an
//     argument, never the clock, so every rule is tested with a fixed clock.
//   - Bounded outcomes: Outcome is a closed set of words, the ended event's
//     outcome and a metric label; the Reason sentence beside it names the
//     number, the rule and the registry setting.
//
// # Attempt caps across dialers: at most one extra attempt
//
// Each partition of the requested topic has one dialer, but calls to one
// number land in any partition, so two dialers may hold calls to the same
// number. Neither owns the count; every dialer reads the events topic whole
// (FollowAttempts), where each dial is a dialing event written before the
// dial starts, and counts from that. Three rules keep a race to one extra
// attempt per number between two dialers:
//
//  1. A dialer counts its own attempt the moment it decides (Admit reserves
//     it under the same lock as the check), so its own partitions never race
//     each other.
//  2. Admit first waits for the events follower to apply everything written
//     before that moment (Follower.Barrier: one ListOffsets round trip plus
//     the fetch in flight), and gives up (releases, ErrNotReady, try again)
//     if barrier and decision took more than Settle/2. An attempt of another
//     dialer is therefore missed only if its dialing event was written less
//     than Settle/2 before the decision, or after it.
//  3. A dialer's next attempt to a number waits until its previous one has
//     come back on the events topic and Settle more has passed
//     (Attempts.Reserve answers ErrNotReady meanwhile, the call waits).
//
// Proof sketch. Take the last attempt that passed, by dialer A at time a,
// with its barrier at t0 > a - Settle/2. It saw every attempt of its own and
// every attempt of B written before t0. Two attempts of B it missed, b1 then
// b2, would both have to be written after t0 and decided before a; but b2 was
// decided at least Settle after b1 came back, hence after t0 + Settle > a.
// So A missed at most one: A saw at least total-2 attempts and passed, so
// total-2 < N, and at most N+1 attempts happen. With D dialers racing on one
// number the bound is D-1 extra. Without rule 2 the window would be the
// follower's lag; without rule 3 one dialer could push several attempts
// through it. Rule 3 costs a number called twice by one dialer a second's
// wait, and nothing when both caps are unlimited (nothing to race for).

// Dropping the extra attempt entirely would need one serialization point per
// number, a topic keyed by number that every dial claims through and reads
// back before dialing: a second produce and read on every dial, and the
// number-keyed topic's partition as a new place where dials wait. One extra
// attempt in a millisecond race was judged the better trade.
//
// A dialing event that ends with a compliance outcome (a refusal after the
// dialing event was written) is taken back out of the count (ApplyEvent):
// the call never rang. The history reads AttemptHistory (a week and an hour)
// of the events topic at start, so the topic's retention must be at least a
// week.
//
// # Where to start reading
//
//	check.go        Checker: Check (ingest) and Admit (dialer), the rule order
//	verdict.go      Outcome, Verdict, ErrNotReady
//	policy.go       Policy and PolicySpec (the registry's compliance: block), caps
//	hours.go        calling hours: Allowed, AllowedIn, the next allowed time
//	zones.go        number -> time zones; unknown means anywhere
//	destination.go  allowed countries, high-risk number types and why
//	number.go       Classify (region, type, zones), IsTestNumber
//	attempts.go     the attempt history: Record, Reserve, Release, Prune
//	suppression.go  Table: the do-not-call lists, 16 bytes a slot per number
//	records.go      suppression records and tombstones, event folding,
//	                FollowSuppressions, FollowAttempts
//	follower.go     Follower: a topic read whole, caught up, Barrier,
//	                WaitApplied
package compliance
