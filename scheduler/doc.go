// Package scheduler releases campaign contacts and scheduled single calls as
// ordinary call requests (issue 15). The design it is built to is in
// docs/architecture.md, "Campaigns and scheduled calls"; the service itself
// (the partition owner, the release loop, the outcome relay, `dialstream
// scheduler`) is not built yet.
//
// Built so far, as pure functions the release loop will call with its clock:
//   - window.go: when a contact may be called, its campaign's weekly windows
//     intersected with the workspace's calling hours in the callee's zones;
//   - pacing.go: how soon a campaign may release again, releases spaced by
//     1/calls_per_second with no burst, and max_concurrent calls at once;
//   - retry.go: a call's outcome on its contact, and the retry policy's
//     decision (waiting until ended + delay, or done), idempotent so the
//     outcome relay may repeat itself.
package scheduler
