package agent_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/internal/phonesim"
	"github.com/dialstream/dialstream/internal/testutil"
)

// AGENT_MAX_JOBS is what one agent process takes at once, as LiveKit sees
// it too: livekit-server offers a worker no job once its reported load
// reaches agents.target_load (0.7 by default), so an agent that reported
// its bare share of MaxJobs got no job beyond 70% of it (with 4, the 4th
// call went without an agent). With MaxJobs 4, four held calls each get the
// agent; the fifth finds it full and gets none.
func TestAgentTakesCallsUpToMaxJobs(t *testing.T) {
	e := startEnv(t, 200*time.Millisecond)
	reg := prometheus.NewRegistry()
	ops := e.startAgentMax(t, reg, 4)

	// Four calls the callee holds until the room ends (the silent callee),
	// placed one after the other so that each offer sees the load the one
	// before reported.
	var rooms []string
	for i := range 5 {
		p := e.place(t, callSpec{to: phonesim.NumberSilent, settings: map[string]any{"greeting": "Hello."}})
		rooms = append(rooms, p.room)
		if i < 4 {
			testutil.EventuallyWhy(t, 15*time.Second, fmt.Sprintf("the agent in call %d", i+1), func() (bool, string) {
				n, err := agentsIn(e, p.room)
				return n == 1, fmt.Sprintf("%d agents (%v)", n, err)
			})
		}
	}
	// The fifth: give LiveKit time to offer it (it would have by now).
	time.Sleep(3 * time.Second)
	if n, err := agentsIn(e, rooms[4]); err != nil || n != 0 {
		t.Errorf("the fifth call, over AGENT_MAX_JOBS: %d agents in its room (%v), want none", n, err)
	}
	if got := metricFloat(t, ops, `dialstream_agent_job_requests_total{decision="accepted"}`); got != 4 {
		t.Errorf("jobs accepted %v, want 4", got)
	}
	var wg sync.WaitGroup
	for _, r := range rooms {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = e.rooms.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: r})
		})
	}
	wg.Wait()
}

// agentsIn counts the agent participants of a room.
func agentsIn(e *env, room string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := e.rooms.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: room})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range ps.Participants {
		if p.Kind == livekit.ParticipantInfo_AGENT || strings.HasPrefix(p.Identity, "agent-") {
			n++
		}
	}
	return n, nil
}
