// Package dialer turns call requests into outbound calls through LiveKit and
// the life of each call into lifecycle events, placing every accepted call at
// most once across crashes, restarts and rebalances.
//
// # How a call moves
//
// The dialer is a consumer group on schemas.TopicRequested. Every change to a
// call is a command on that topic, keyed by the call id and written to the
// call's partition: the clients' call.requested and call.cancel, and the
// dialer's own dial results, LiveKit webhooks and timer decisions (admit,
// max duration, queue expiry). The owner of a partition applies them one at a
// time, in log order, to the call's state (machine.go: a pure function of
// state and command). Each transition is written in this order:
//
//  1. its lifecycle events to schemas.TopicEvents (acks=all, idempotent),
//  2. the call's new state to the compacted schemas.TopicState,
//  3. the command's offset is marked for commit,
//  4. only then its side effects run (a dial, a hang-up).
//
// A crash anywhere in between makes the next owner load the states of the
// partition, resume from the committed offset and apply the same commands to
// the same states: the same events come out again, with the same sequence
// numbers and CloudEvent ids, for receivers to de-duplicate. A command at or
// below a call's applied_offset is recognized as a replay and skipped. A
// record that cannot be a command goes to schemas.TopicRequestsDLQ; if it may
// have been a call request, its call also ends rejected, so the client hears
// about it. See docs/architecture.md, "The dialer's state machine".
//
// # Exactly one dial
//
// A call is dialed only by the transition queued -> dialing, and only after
// that state (the durable claim) is in the state topic. Whoever owns the
// partition later sees "dialing" and never dials again: a dial whose dialer
// died is resolved by asking LiveKit (an answered callee is adopted, anything
// else is hung up and ends failed), never by redialing. Before a dial starts,
// the owner commits its offsets synchronously; the group coordinator refuses
// that commit from a member whose session expired, so a paused process that
// lost its partitions without noticing cannot dial a call its successor
// already loaded as queued. See docs/architecture.md, "Invariant 2: exactly
// one dial" and "In-doubt recovery".
//
// # Where to start reading
//
//   - config.go: every setting, its variable and its default.
//   - run.go: the wiring: Kafka clients, topics, admission, the ops server
//     (/healthz, /readyz, /metrics, POST /livekit/webhook), shutdown.
//   - consumer.go: the poll loop, which hands records to partition owners,
//     and the group's assign/revoke/lost callbacks; readiness.
//   - owner.go: one partition's owner: loads its call states, applies its
//     commands in order, defers requests past the admission queue's bound.
//   - machine.go: the call state machine, apply(state, command).
//   - commands.go, decode.go: the dialer's own commands and how they are
//     written; how a record becomes a command, or a dead letter and a
//     rejected call.
//   - write.go, fence.go: writing a batch's events and states before its
//     effects run; the offset commit that fences a dial.
//   - dial.go: placing a call (room, agent dispatch, SIP participant) and
//     hanging up.
//   - recovery.go: after a crash, the dials nobody waits on any more.
//   - watchdog.go: timers (queue expiry, max duration, lost webhooks,
//     forgetting ended calls), each written as a command.
//   - admission.go: per-workspace concurrency and rate limits.
//   - webhook.go: LiveKit webhooks in, as commands.
//   - state.go, stateload.go: the call state, its record, loading it.
//   - outcome.go: SIP and LiveKit reasons to outcomes and ended_by.
//   - livekit.go: the LiveKit API the dialer uses, metered.
//   - metrics.go, trace.go: metrics; how a call's trace crosses the steps.
package dialer
