// Package invariants records what the outside of a running Dialstream saw and
// checks design.md's invariants 1–3 against it, the way a release suite judges
// a pipeline it cannot look inside:
//
//   - the client side: every call request made and its final answer (Load);
//   - the events topic: every lifecycle event record, replays included
//     (Recorder, a plain franz-go consumer from the start of the topic), and
//     the two DLQ topics;
//   - the phone network: every dial the simulator received (GET /dials);
//   - the callback receiver: every webhook POST it got (GET /deliveries of
//     `dialstream receiver`).
//
// Check turns one run's Observed into a Report: figures (calls sent, dialed,
// ended, webhooks delivered, duplicates delivered) and the violations, each
// named with the call it concerns. Check is a pure function, unit-tested on
// hand-made runs; the container suite (tests/containers) feeds it real ones.
package invariants
