package dialer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/phonesim"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// childEnv switches the test binary into running a dialer from the
// environment (TestMain), so the crash test can SIGKILL a real process
// without a separate build.
const childEnv = "DIALER_TEST_CHILD"

func runChild() int {
	l := envconfig.New()
	cfg := LoadConfig(l)
	if err := l.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var w io.Writer = io.Discard
	if os.Getenv("DIALER_TEST_LOG") != "" {
		w = os.Stderr
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(w, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childDialer is the dialer running as a child process.
type childDialer struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func (e *liveEnv) startChild(t *testing.T, extraEnv ...string) *childDialer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1",
		"KAFKA_BROKERS="+e.b.Addr(), "KAFKA_TOPIC_PARTITIONS=3", "KAFKA_SESSION_TIMEOUT=1s",
		"DIALSTREAM_REGISTRY="+e.regPath, "DIALER_HTTP_ADDR="+e.httpAddr,
		"LIVEKIT_URL="+e.lk.URL(), "LIVEKIT_API_KEY="+testAPIKey, "LIVEKIT_API_SECRET="+testAPISecret,
		"DIALER_WATCHDOG_INTERVAL=200ms", "DIALER_WATCHDOG_GRACE=2s", "DIALER_ROOM_CHECK_INTERVAL=1s",
		"DIALER_DRAIN_TIMEOUT=5s",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &childDialer{cmd: cmd, addr: e.httpAddr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.kill() })
	testutil.Eventually(t, 30*time.Second, "child dialer ready", func() bool {
		select {
		case <-c.done:
			t.Fatalf("child dialer exited: %v", cmd.ProcessState)
		default:
		}
		return ready(t, c.addr)
	})
	return c
}

func (c *childDialer) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// rssKiB reads a process's resident set size.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var n int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%d", &n)
			return n
		}
	}
	return -1
}

// A dialer killed with SIGKILL during a burst of calls, then restarted:
// every call is dialed at most once at the phone network and ends exactly
// once; a call is left undialed only when it was claimed when the dialer
// died, and then its end says so.
func TestCrashDuringBurst(t *testing.T) {
	e := startLiveEnv(t)
	child := e.startChild(t)

	const n = 30
	ids := make([]string, n)
	for i := range ids {
		number := phonesim.NumberAnswer
		switch i % 6 {
		case 1:
			number = phonesim.NumberBusy
		case 4:
			number = phonesim.NumberDecline
		}
		ids[i] = e.request(t, "ws_crash", "agent_crash", number)
	}
	// ws_crash admits 8 at a time: kill while some calls talk, some ring,
	// some wait in the queue.
	testutil.Eventually(t, 30*time.Second, "a third of the calls dialed", func() bool { return len(e.sim.Dials()) >= n/3 })
	child.kill()
	killedAt := time.Now()
	t.Logf("SIGKILL after %d dials", len(e.sim.Dials()))

	child = e.startChild(t)
	e.waitEnded(t, 90*time.Second, ids...)
	t.Logf("all %d calls ended %s after the restart", n, time.Since(killedAt).Round(time.Millisecond))

	dials := e.sim.Dials()
	outcomes := map[schemas.Outcome]int{}
	reasons := map[string]int{}
	undialed := 0
	for _, id := range ids {
		evs := e.log.callEvents(t, id)
		var ended []schemas.CallEvent
		for _, ev := range evs {
			if ev.Status == schemas.StatusEnded {
				ended = append(ended, ev)
			}
		}
		if len(ended) != 1 {
			t.Fatalf("call %s has %d distinct ended events: %+v", id, len(ended), ended)
		}
		outcomes[ended[0].Outcome]++
		if ended[0].Outcome == schemas.OutcomeFailed {
			reasons[ended[0].Reason]++
		}
		switch d := dials[roomNameFor("agent_crash", id)]; {
		case d > 1:
			t.Fatalf("call %s was dialed %d times", id, d)
		case d == 0:
			undialed++
			if ended[0].Outcome != schemas.OutcomeFailed || ended[0].Reason != inDoubtReason {
				t.Fatalf("call %s was never dialed and ended %s (%q)", id, ended[0].Outcome, ended[0].Reason)
			}
		}
	}
	t.Logf("outcomes %v; failure reasons %v; %d claimed but not dialed when the dialer died", outcomes, reasons, undialed)
	// Everything that must not be dialed twice was not, even with a third
	// dialer start.
	child.kill()
	e.startChild(t)
	testutil.Consistently(t, 3*time.Second, "no new dials after another restart", func() bool { return len(e.sim.DialLog()) == sumDials(dials) })
}

func sumDials(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
