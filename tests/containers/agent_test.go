package containers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dialstream/dialstream/tests/invariants"
)

// SIGKILL the reference agent while it is in calls, and start it again 6 s
// later. The calls it was in lose their agent: the person hears no more and
// hangs up, the voicemail records until it hangs up, a callee who asked for
// a transfer the agent had not yet requested waits until the call's max
// duration; each such call must still end exactly once, as it does without
// an agent (invariants.AgentMissed, counted and listed). Calls answered
// while no agent was registered go the same way. The restarted agent must
// take the calls after it, as the agent makes them.
func TestAgentKilled(t *testing.T) {
	runScenario(t, scenario{opts: topoOptions{dialers: 2, notifiers: 2}, allowed: []invariants.FaultEnd{invariants.AgentMissed},
		fault: func(ctx context.Context, tp *topology, rec *invariants.Recorder) proof {
			active := func() float64 { return tp.metric(ctx, "agent", "dialstream_agent_calls_active") }
			tp.at(ctx, 10*time.Second)
			var inCalls float64
			tp.waitUntil(ctx, 20*time.Second, "the agent in 5 calls at once", func() (bool, string) {
				inCalls = active()
				return inCalls >= 5, fmt.Sprintf("%v calls", inCalls)
			})
			tp.kill(ctx, "agent")
			tp.logf("the agent was in %v calls when killed", inCalls)
			tp.at(ctx, 18*time.Second)
			tp.restart(ctx, "agent")
			return func(_ invariants.Observed, rep invariants.Report) []evidence {
				return []evidence{
					{what: "calls the agent was in just before the SIGKILL (dialstream_agent_calls_active)", n: int(inCalls)},
					{what: "calls the restarted agent took (its dialstream_agent_job_requests_total{decision=accepted})",
						n: int(tp.metric(ctx, "agent", "dialstream_agent_job_requests_total", "decision", "accepted"))},
					{what: "calls that ended as without the agent", n: rep.FaultEnds[invariants.AgentMissed], info: true},
				}
			}
		}})
}
