package testbin

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/testutil"
)

// Process is a child process a test runs: dialstream dev, or a tool such
// as Prometheus.
type Process struct {
	name   string
	cmd    *exec.Cmd
	log    *os.File
	exited chan error
}

// StartProcess starts cmd with its output in <cmd.Dir>/<name>.log. The
// kernel kills it if the test binary dies first (Linux), so no orphan keeps
// the ports. When the test ends it is sent SIGTERM and must exit cleanly
// within 45 s; the end of its log is shown when the test failed.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	log, err := os.Create(filepath.Join(cmd.Dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{name: name, cmd: cmd, log: log, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = log, log
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { p.shutdown(t) })
	return p
}

// WaitReady waits up to d for every url to answer a GET with 200, and
// fails the test at once if the process exits meanwhile.
func (p *Process) WaitReady(t testing.TB, d time.Duration, urls ...string) {
	t.Helper()
	testutil.EventuallyWhy(t, d, p.name+" ready", func() (bool, string) {
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("%s exited: %v", p.name, err)
		default:
		}
		for _, u := range urls {
			code, err := get(t.Context(), u)
			if err != nil {
				return false, err.Error()
			}
			if code != http.StatusOK {
				return false, fmt.Sprintf("%s: %d", u, code)
			}
		}
		return true, ""
	})
}

func get(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (p *Process) shutdown(t testing.TB) {
	t.Helper()
	defer p.log.Close()
	select {
	case err := <-p.exited:
		if !t.Failed() {
			t.Errorf("%s exited before the test ended: %v", p.name, err)
		}
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.exited:
			if err != nil {
				t.Errorf("%s did not exit cleanly on SIGTERM: %v", p.name, err)
			}
		case <-time.After(45 * time.Second):
			_ = p.cmd.Process.Kill()
			t.Errorf("%s ignored SIGTERM for 45 s; killed: %v", p.name, <-p.exited)
		}
	}
	if t.Failed() {
		t.Logf("--- the end of %s's log (%s) ---\n%s", p.name, p.log.Name(), p.logTail())
	}
}

// logTail is the last 8 KiB of the process's log.
func (p *Process) logTail() string {
	b, _ := os.ReadFile(p.log.Name())
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}
