// Package scheduler releases campaign contacts and scheduled single calls as
// ordinary call requests (issue 15): `dialstream scheduler`, and inside
// `dialstream dev`. The design is in docs/architecture.md, "Campaigns and
// scheduled calls".
//
// The service:
//   - run.go, config.go: the process (producer, the commands group, the
//     outcome relay group, topics, the co-partition check, HTTP);
//   - owner.go, stateload.go, write.go: one owner per partition of the
//     commands topic: load the state partition, apply commands in batches,
//     fence with a commit, then write requests, events and states;
//   - relay.go: each ended event of a campaign call back as an outcome;
//   - metrics.go: the dialstream_scheduler_* metrics.
//
// The decisions, pure functions called with the command's time or a clock:
//   - machine.go: the campaign state machine (created, contacts added with
//     repeated ids and numbers skipped, start/pause/resume/cancel, outcomes,
//     end_at), the campaign events and counters it writes, and release, which
//     makes a contact's next attempt and the call request to write;
//   - scheduled.go: single calls with start_at: released at their time (later
//     under defer_to_calling_hours), and a cancel before the release that
//     releases them already canceled, after it forwarded behind the release;
//   - due.go: which open contacts of a running campaign may be released now,
//     in due order, inside their windows, within the pacing, and when to look
//     again (a heap per campaign, stale entries dropped as they surface);
//   - records.go: the records a transition writes (state to the command's
//     partition, released calls, campaign events with their stable ids) and
//     the outcome relay's rule (an ended campaign call → campaign.outcome);
//   - window.go: when a contact may be called, its campaign's weekly windows
//     intersected with the workspace's calling hours in the callee's zones;
//   - pacing.go: how soon a campaign may release again, releases spaced by
//     1/calls_per_second with no burst, and max_concurrent calls at once;
//   - retry.go: a call's outcome on its contact, and the retry policy's
//     decision (waiting until ended + delay, or done), idempotent so the
//     outcome relay may repeat itself.
package scheduler
