// Package agent is Dialstream's reference agent (`dialstream agent`): a
// LiveKit agent worker that takes the calls the dialer dispatches, greets the
// callee by name, decides who answered, and reports back to Dialstream. It is
// the agent `make run` puts on every dev call, and the worked example of the
// dispatch contract (schemas/agent.dispatch.v1.schema.json) that any agent,
// LiveKit Agents in Python or Node or anything else, meets.
//
// What it guarantees:
//
//   - It takes only jobs whose metadata is a valid agent.dispatch.v1 for the
//     job's room; any other job is refused, so LiveKit offers it elsewhere.
//   - What it says is built from the greeting template and the dynamic
//     variables only. The request's metadata is never read into a call, so
//     nothing the callee hears or reads, no transcript and no log carries it.
//   - It reports answered_by once per answered call, then the result (with
//     the transcript), then hangup when it ends the call, in that order, each
//     with a stable id so a retried report is one event; the hangup report is
//     delivered before the room is deleted.
//   - It follows the agent's on_machine policy: hangup (default) ends the
//     call when a machine answers; continue waits for the tone, leaves the
//     message, then hangs up.
//   - At most AGENT_MAX_JOBS calls at once; beyond that LiveKit is told the
//     worker is full. Shutdown takes no new job and lets calls finish for
//     AGENT_DRAIN_TIMEOUT.
//
// How a call goes (call.go): join with the job's token and publish an Opus
// track; wait for the SIP participant's sip.callStatus to turn "active";
// send the rendered greeting as a final lk.transcription text segment and
// play the greeting clip; listen (text on lk.transcription or lk.chat, and
// how much audio arrives) until detect.go decides; act on the verdict.
//
// Where to start reading:
//
//	run.go       Run: workers per agent name, the ops endpoint, draining
//	worker.go    LiveKit's agent worker protocol (register, availability,
//	             assignment, job status, load), one connection per name
//	call.go      one call, from join to hang-up
//	detect.go    answering-machine detection, a pure function
//	greeting.go  the greeting template and the agent's fixed lines
//	audio.go     the pre-recorded clips (audio/, scripts/make-agent-audio.sh),
//	             played with internal/phonesim's Opus clip player
//	report.go    the report channel: HTTP client and the per-call queue
//	config.go    AGENT_* and LIVEKIT_* settings
//	metrics.go   dialstream_agent_* metrics
package agent
