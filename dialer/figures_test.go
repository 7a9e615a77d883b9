package dialer

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/phonesim"
	"github.com/dialstream/dialstream/schemas"
)

// TestFigures measures the dialer against livekit-server + phonesim on this
// machine. It is slow and prints numbers rather than asserting them, so it
// runs only when asked: DIALER_FIGURES=1 go test ./dialer -run TestFigures -v
//
//	DIALER_FIGURES_CALLS  calls in the throughput burst (default 300)
//	DIALER_FIGURES_LIVE   calls held live at once for the RSS figure (default 200)
//	DIALER_FIGURES_RATE   the steady pace of the latency figure, calls/s for
//	                      10 s (default 100, issue 17's; above what
//	                      livekit-server and phonesim place here, the
//	                      latency includes the queue that builds)
func TestFigures(t *testing.T) {
	if os.Getenv("DIALER_FIGURES") == "" {
		t.Skip("set DIALER_FIGURES=1 to measure")
	}
	burst := envInt("DIALER_FIGURES_CALLS", 300)
	live := envInt("DIALER_FIGURES_LIVE", 200)
	rate := envInt("DIALER_FIGURES_RATE", 100)
	e := startLiveEnv(t)
	child := e.startChild(t)
	pid := child.cmd.Process.Pid
	t.Logf("dialer RSS idle: %d MiB", rssKiB(pid)/1024)

	// Throughput: a burst of busy calls (each one a real room, a dispatch,
	// and a SIP participant that joins over WebRTC, then rejects).
	ids := make([]string, burst)
	lkPid := livekitPid()
	cpu0 := [3]float64{cpuSeconds(pid), cpuSeconds(lkPid), cpuSeconds(os.Getpid())}
	start := time.Now()
	for i := range ids {
		ids[i] = e.request(t, "ws_e2e", "agent_e2e", phonesim.NumberBusy)
	}
	produced := time.Since(start)
	e.waitEnded(t, 10*time.Minute, ids...)
	var lat []time.Duration
	var firstQ, lastDialing, lastEnded time.Time
	for _, id := range ids {
		evs := e.log.timedEvents(id)
		q, dl, en := evs[schemas.StatusQueued], evs[schemas.StatusDialing], evs[schemas.StatusEnded]
		lat = append(lat, dl.written.Sub(q.requestTS))
		if firstQ.IsZero() || q.requestTS.Before(firstQ) {
			firstQ = q.requestTS
		}
		if dl.written.After(lastDialing) {
			lastDialing = dl.written
		}
		if en.written.After(lastEnded) {
			lastEnded = en.written
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	t.Logf("burst of %d busy calls (produced in %s): admitted %.1f calls/s, placed (SIP final answer) %.1f calls/s",
		burst, produced.Round(time.Millisecond),
		float64(burst)/lastDialing.Sub(firstQ).Seconds(), float64(burst)/lastEnded.Sub(firstQ).Seconds())
	t.Logf("request -> dialing (request record timestamp to dialing event written): p50 %s p99 %s max %s",
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	t.Logf("CPU seconds during the burst (%.1fs wall, 2 cores): dialer %.1f, livekit-server %.1f, test process (phonesim, broker) %.1f",
		lastEnded.Sub(firstQ).Seconds(), cpuSeconds(pid)-cpu0[0], cpuSeconds(lkPid)-cpu0[1], cpuSeconds(os.Getpid())-cpu0[2])
	t.Logf("dialer RSS after the burst: %d MiB", rssKiB(pid)/1024)

	// Latency at a steady pace: rate calls/s for 10s.
	paced := make([]string, 10*rate)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range paced {
		<-tick.C
		paced[i] = e.request(t, "ws_e2e", "agent_e2e", phonesim.NumberBusy)
	}
	tick.Stop()
	e.waitEnded(t, 5*time.Minute, paced...)
	lat = lat[:0]
	for _, id := range paced {
		evs := e.log.timedEvents(id)
		lat = append(lat, evs[schemas.StatusDialing].written.Sub(evs[schemas.StatusQueued].requestTS))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("request -> dialing at a steady %d calls/s: p50 %s p99 %s max %s", rate,
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))

	// Live calls: callees that answer and never hang up.
	held := make([]string, live)
	start = time.Now()
	for i := range held {
		held[i] = e.request(t, "ws_e2e", "agent_e2e", phonesim.NumberHold)
	}
	answered := func() int {
		n := 0
		for _, id := range held {
			for _, ev := range e.log.callEvents(t, id) {
				if ev.Status == schemas.StatusAnswered {
					n++
					break
				}
			}
		}
		return n
	}
	deadline := time.Now().Add(5 * time.Minute)
	best, bestAt := 0, time.Now()
	for time.Now().Before(deadline) {
		n := answered()
		if n > best {
			best, bestAt = n, time.Now()
		}
		if n == live || time.Since(bestAt) > 30*time.Second {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	ended := 0
	for _, id := range held {
		if e.log.ended(t, id) != nil {
			ended++
		}
	}
	t.Logf("live calls: %d of %d answered at once after %s (%d ended early)", best, live, bestAt.Sub(start).Round(time.Millisecond), ended)
	t.Logf("RSS with %d calls live: dialer %d MiB, livekit-server %d MiB, test process (phonesim's %d WebRTC callees, broker) %d MiB",
		best, rssKiB(pid)/1024, rssKiB(lkPid)/1024, best, rssKiB(os.Getpid())/1024)
	for _, id := range held {
		produce(t, e.prod, cancelRecord(t, id, "ws_e2e"))
	}
	e.waitEnded(t, 5*time.Minute, held...)
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

// livekitPid finds this process's livekit-server child.
func livekitPid() int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmdline, _ := os.ReadFile(d + "/cmdline")
		if !strings.Contains(string(cmdline), "livekit-server") {
			continue
		}
		status, _ := os.ReadFile(d + "/status")
		if strings.Contains(string(status), fmt.Sprintf("PPid:\t%d\n", os.Getpid())) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	return -1
}

// cpuSeconds is a process's user+system CPU time.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ") ".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}
