// Package containers is Dialstream's release suite: the whole pipeline in
// containers on one private network, under load and faults, judged from the
// outside by tests/invariants.
//
// Each test builds its own topology — broker (data on a Docker volume),
// Redis (`dialstream redis`), livekit-server, phonesim, the reference agent
// (`dialstream agent`), 1 ingest, 2 dialers, 2 notifiers and a webhook
// receiver (`dialstream receiver`) — sends 8 calls/s for 66 s through
// ingest (528 calls: answering, busy, declining, not-found and no-answer
// numbers, a person, a voicemail and a callee asking for a transfer, which
// the agent plays out, and calls the client cancels, at once or 3 s into
// their ringing), injects one fault, waits for the pipeline to heal and
// checks docs/architecture.md's invariants 1–3 with tests/invariants.Check:
//
//	TestDialerKilled            SIGKILL a dialer while one of its dials rings, restart it
//	TestBrokerRestarted         stop the broker, start it again on its volume
//	TestNotifierPartitioned     take a notifier off the network for 15 s
//	TestReceiverPaused          docker pause the callback receiver for 12 s
//	TestNotifierKilled          SIGKILL a notifier while deliveries wait on the retry topics
//	TestDialersScaled           dialers 1 -> 3 -> 1 under load
//	TestLiveKitRestarted        SIGKILL livekit-server while calls ring and talk, start it 10 s later
//	TestDialerCutFromLiveKit    both dialers off LiveKit's API network for 12 s while dials ring
//	TestPhoneNetworkGone        docker pause the phone simulator for 12 s
//	TestDialerBrokerPartitioned a dialer off the broker's network for 15 s, LiveKit's API still in reach
//	TestRecorderKilled          SIGKILL the recorder under the load, restart it 10 s later
//	TestSchedulerKilled         SIGKILL the scheduler while it releases a campaign, restart it
//	TestAgentKilled             SIGKILL the reference agent while it is in calls, restart it at 18 s
//
// Which fault ends each test allows (tests/invariants.FaultEnd; any other
// end that is not the callee's script fails it), and why:
//
//   - in doubt (failed, ended by the dialer, "not redialed"): only where a
//     dial may really have reached LiveKit and its answer was lost — the
//     dialer killed mid-dial, the broker restarted (a dial whose result could
//     not be written), livekit-server killed mid-ring, the dialers cut from
//     LiveKit's API mid-ring, a dialer cut from the broker mid-ring (the next
//     owner recovers its dials). Every such end is listed with its dial at
//     the phone network ("in doubt after a dial"); one without a dial would
//     be a claim that sent nothing ended in doubt, a note the checker counts.
//   - failed by the phone network (failed, no SIP status, the simulator's
//     own error): only TestPhoneNetworkGone, for a call the network was
//     setting up when it froze (its media join timed out); one dialed more
//     than 5 s after the thaw fails the test.
//   - stranded by LiveKit (max_duration, ended by the watchdog): allowed
//     nowhere any more. An answered call that died with livekit-server ends
//     completed once two room checks found its room hosted by no node
//     (docs/architecture.md, "LiveKit, as measured").
//   - without the agent (a person, voicemail or transfer callee answered
//     and ended as with no agent in the room: completed, or a transfer the
//     callee asked for at max_call_duration, with no contrary verdict of the
//     agent's): TestAgentKilled (the calls the agent was in, and those
//     answered before the restarted agent registered), TestLiveKitRestarted
//     (the agent's worker connection dies with livekit-server, and LiveKit
//     drops a dispatch no registered worker can take), TestPhoneNetworkGone
//     (a frozen callee is silent: the agent hears nobody and hangs up),
//     TestDialerCutFromLiveKit (the dialers cannot carry out a transfer the
//     agent asks for), TestBrokerRestarted for a call in progress while
//     the broker was down (ingest refuses the agent's reports, so a
//     transfer comes too late; Observed.ReportOutages). Each is listed
//     ("ended as without the agent").
//   - none: the recorder killed, the notifier and receiver faults, the
//     scale-up and scale-down. (With the phone network frozen, a dial no SIP
//     service took rang nothing and is dialed again once it is back.)
//
// The load (suite_test.go, mix): five calls of every 20 go through the
// registry agent the reference agent plays (agentID, AGENT_MAX_JOBS 300).
// The person (phonesim.NumberHuman) hears the greeting, replies and hangs
// up after the goodbye: completed, answered_by human. The voicemail
// (phonesim.NumberVoicemail) plays its greeting; the agent hears a machine
// and the dialer ends it voicemail (on_machine: hangup). The callee asking
// for a person (phonesim.NumberTransfer) is transferred to the agent's
// transfer_to: transferred. The answering callee says nothing and hangs up
// after 3 s: completed. The checker holds those calls to what the agent
// makes of them (invariants.Observed.AgentTakes). The other calls go
// through a registry agent whose worker runs outside the topology
// (plainAgentID): LiveKit drops their dispatches and no agent joins. With
// every call through the reference agent (~60 rooms at once, each with the
// agent from before the dial until it closes) this 2-core machine was
// saturated: the simulator's room joins timed out and the agent heard
// replies too late. The client cancels four calls of every 20
// (invariants.Call.Cancel): two answering calls at once after the 2xx and
// two no-answer calls 3 s into their ringing; of the 108 canceled calls of
// a run, 56–66 ended before any dial reached the phone network (the cancel
// met the call queued), the rest while ringing. The cancel rule the checker
// applies is in docs/architecture.md ("The fault suite"): a call whose
// cancel was accepted ends canceled, or with its callee's outcome if its
// end won the race (a counted note). Every test must show the whole mix: at
// least 500 calls sent, every outcome ended at least once (voicemail and
// transferred included), a person the agent recognised, and a cancel that
// took effect (mixMissing).
//
// The LiveKit-side faults use what Docker offers without tools inside the
// images (they are FROM scratch): SIGKILL and start for livekit-server,
// docker pause for the phone simulator (a stopped one would forget the dials
// GET /dials reports), and a second network for LiveKit's API
// (topoOptions.apiNetwork: livekit-server and the dialers join it, the
// dialers' LIVEKIT_URL names it), so that disconnecting a dialer from one
// network cuts exactly one path: from LiveKit's API (TestDialerCutFromLiveKit)
// or from the broker and LiveKit's webhooks (TestDialerBrokerPartitioned). On
// the one network the rest of the suite uses, a disconnect cuts everything,
// and pausing livekit-server would cut every dialer and the phone network at
// once.
//
// TestRecorderKilled adds the recorder (topoOptions.recorder: the scheduler
// test's recorder, without a scheduler; ingest reads the call records from
// its SQLite file on a shared volume). Besides the invariants, every
// accepted call's record read through ingest's GET /v1/api/call/:callId must
// hold exactly the call's distinct events on the topic, each once, in
// sequence order, with the status and outcome of the last
// (tests/invariants.CheckRecords; the RECORDS line).
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
// release, killed or cut-off LiveKit had dials in flight and calls live and
// made later calls wait, the frozen phone network had dials in flight and
// made later calls wait, the partitioned dialer had dials in flight on its
// partitions, the killed recorder had written records and missed those
// written while it was down.
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
// Run time, measured on the 2-core development machine (2026-12-07, a
// prebuilt DIALSTREAM_BIN): 19 min 6 s for the package's 13 tests at 528
// calls per test, each 1 min 21 s – 1 min 56 s (topology ~4 s, the load
// with its fault 66 s plus the tail of the last calls, the heal ~10 s),
// TestSchedulerKilled (no steady load) 58 s. TestDialerCutFromLiveKit is the
// longest: the calls claimed during the cut wait out their claim's window
// (ringing timeout + 30 s + 10 s of clock margin) before they are dialed
// again. Building the images takes 10–70 s (the `go build` dominates; a
// prebuilt DIALSTREAM_BIN is the short end).
//
// Without Docker (or without livekit-server) the suite prints one SKIP line
// and passes, except under CI=true, where it fails. scripts/test.sh runs it
// on its own, after the other packages, so its timing is not disturbed by
// them. DIALSTREAM_IT_LOGS=<dir> keeps every container's log (a failed test
// always keeps them, under the system temp dir); DIALSTREAM_IT_DOCKER_LOG=1
// shows testcontainers' own log.
package containers
