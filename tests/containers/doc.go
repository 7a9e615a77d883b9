// Package containers is Dialstream's release suite: the whole pipeline in
// containers on one private network, under load and faults, judged from the
// outside by tests/invariants.
//
// Each test builds its own topology — broker (data on a Docker volume),
// Redis (`dialstream redis`), livekit-server, phonesim, 1 ingest, 2 dialers,
// 2 notifiers and a webhook receiver (`dialstream receiver`) — sends 3
// calls/s for 30 s through ingest (answering, busy, declining, not-found and
// no-answer numbers), injects one fault, waits for the pipeline to heal and
// checks docs/architecture.md's invariants 1–3 with tests/invariants.Check:
//
//	TestDialerKilled         SIGKILL a dialer while one of its dials rings, restart it
//	TestBrokerRestarted      stop the broker, start it again on its volume
//	TestNotifierPartitioned  take a notifier off the network for 15 s
//	TestReceiverPaused       docker pause the callback receiver for 12 s
//	TestDialersScaled        dialers 1 -> 3 -> 1 under load
//	TestSchedulerKilled      SIGKILL the scheduler while it releases a campaign, restart it
//
// TestSchedulerKilled runs no steady load: its topology adds a scheduler and
// the recorder (ingest reads campaigns from the recorder's SQLite file, on a
// volume both mount), it creates a 120-contact campaign through ingest (80
// answering numbers, 40 busy ones retried once: 160 dials at 4 calls/s, 10
// at once), kills the scheduler after 40 releases and restarts it 3 s later.
// Its checker (scheduler_test.go) compares what a user sees: the campaign
// completed with every contact done on its outcome, each number dialed at
// the phone simulator exactly as the retry policy says and no room twice,
// every attempt's call (its id derived from campaign, contact and attempt)
// ended exactly once, every call and campaign event delivered; its evidence
// is the scheduler's own metrics: releases before the kill, contacts still
// queued at it, releases by the restarted process.
//
// Each test also proves that its fault hit live work, measured from the
// outside (evidence_test.go): metrics scraped from the containers, the
// consumer groups as the broker describes them (every service's
// KAFKA_CLIENT_ID is its container name), the phone network's dials and the
// receiver's deliveries. A fault that hit nothing fails the test: the killed
// dialer had dials in flight, the stopped broker left produces
// unacknowledged, the cut-off notifier held back deliveries, the paused
// receiver caused retries, the scaled group moved partitions with calls live,
// the killed scheduler had released attempts and held contacts still to
// release.
// Each test prints the checker's table (CHECKER), its notes and its
// EVIDENCE lines.
//
// The images are built once per run, FROM scratch, from static host
// binaries (the dialstream binary of tests/testbin: DIALSTREAM_BIN, or one
// `go build` of ./cmd/dialstream with CGO_ENABLED=0; livekit-server from
// .cache/bin or LIVEKIT_SERVER_BIN):
// nothing is pulled. Ryuk is disabled (TESTCONTAINERS_RYUK_DISABLED=true);
// every container, network and volume is removed by the test that made it.
// The test process reaches containers only through ports published on
// 127.0.0.1; WebRTC between livekit-server and phonesim stays on the
// suite's network, with no STUN server anywhere.
//
// Run time, measured on the 2-core development machine while other test runs
// shared it: about 5 minutes for the package. Building the images takes
// 10–70 s (the `go build` dominates; a prebuilt DIALSTREAM_BIN is the short
// end); each test then takes ~50 s: the topology is up in 6–12 s, the load
// with its fault runs 30 s, the pipeline has healed ~10 s after the last
// request (the no-answer number rings for 10 s), and teardown takes 1–3 s.
// TestSchedulerKilled took 61 s: topology 6 s, the campaign with its fault
// 51 s.
//
// Without Docker (or without livekit-server) the suite prints one SKIP line
// and passes, except under CI=true, where it fails. scripts/test.sh runs it
// on its own, after the other packages, so its timing is not disturbed by
// them. DIALSTREAM_IT_LOGS=<dir> keeps every container's log (a failed test
// always keeps them, under the system temp dir); DIALSTREAM_IT_DOCKER_LOG=1
// shows testcontainers' own log.
package containers
