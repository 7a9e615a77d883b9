// Package invariants records what the outside of a running Dialstream saw and
// checks the invariants of docs/architecture.md ("Invariant 1: durable before
// 2xx", "Invariant 2: exactly one dial", "Invariant 3: every event
// delivered") against it, the way a release suite judges a pipeline it cannot
// look inside. Its sides are independent of each other:
//
//   - the client: every call request made, by Idempotency-Key, with every
//     answer its attempts got (Load; Request);
//   - the events topic: every lifecycle event record, replays included, with
//     its partition and the time it was written (Recorder, a plain franz-go
//     consumer from the start of the topic), and the two DLQ topics;
//   - the phone network: every dial the simulator received (GET /dials), the
//     room and the number;
//   - the callback receiver: every webhook POST it got (GET /deliveries of
//     `dialstream receiver`).
//
// check.go: Check turns one run's Observed into a Report: figures (Table),
// the exceptions a fault explains (Notes: in-doubt ends, calls placed after
// only 503s) and the violations (Problems), each named with the call it
// concerns. A call's outcome is judged against what the phone simulator's
// script for its number produces (scripts), so a run in which nothing was
// dialed, or every call failed, cannot pass. evidence.go: the measurements a
// fault test uses to prove its fault met live work (dials in flight, calls
// live during a hand-over, deliveries held back). Both are pure functions,
// unit-tested on hand-made runs, broken ones included; the container suite
// (tests/containers) feeds them real ones. campaign.go reads a campaign and
// its contacts as the API shows them, for the tests that run one;
// records.go reads a call's record as the API shows it and CheckRecords
// compares every accepted call's record with the events topic (each event
// once, in sequence order), for the tests that fault the recorder.
package invariants
