package notifier

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// syncBuffer collects a child's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A notifier process SIGKILLed in the middle of the second attempt (its retry
// record read but not finished, nothing committed since) is restarted, and
// the event is still delivered: the receiver that fails twice then succeeds
// gets it at least three times, always with the same webhook-id.
func TestDeliversAfterSIGKILL(t *testing.T) {
	b := startBroker(t)
	dir := t.TempDir()
	regPath := filepath.Join(dir, "registry.yaml")
	if err := os.WriteFile(regPath, []byte(testRegistryYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	schedule := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond}
	cl := topicsClient(t, b, kafkax.Config{Partitions: 2}, schedule)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	secondAttempt, killed := make(chan struct{}), make(chan struct{})
	rc := newReceiver(t, func(n int, _ *http.Request, _ http.ResponseWriter) int {
		switch n {
		case 1:
			return http.StatusInternalServerError
		case 2:
			close(secondAttempt)
			<-killed // nobody is left to read this answer
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	unblock := sync.OnceFunc(func() { close(killed) })
	t.Cleanup(unblock) // before the receiver closes, should the test fail early

	var logs syncBuffer
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			"NOTIFIER_TEST_CHILD=1",
			"KAFKA_BROKERS="+b.Addr(),
			"KAFKA_TOPIC_PARTITIONS=2",
			"KAFKA_SESSION_TIMEOUT=1s",
			"DIALSTREAM_REGISTRY="+regPath,
			"NOTIFIER_RETRY_SCHEDULE=0s,100ms,200ms",
			"NOTIFIER_RETRY_JITTER=0",
			"NOTIFIER_ALLOW_CIDRS=127.0.0.0/8",
			"NOTIFIER_HTTP_ADDR=127.0.0.1:0",
		)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		return cmd
	}
	defer func() {
		if t.Failed() {
			t.Logf("notifier processes' output:\n%s", logs.String())
		}
	}()

	first := start()
	call := callID()
	ev := event(call, "ws_a", 1, schemas.StatusAnswered, rc.URL)
	rec, err := schemas.NewRecord(schemas.TopicEvents, call, schemas.Meta{ID: schemas.EventID(call, 1), Type: ev.Status.Type(), Source: "/test"}, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-secondAttempt:
	case <-time.After(30 * time.Second):
		t.Fatal("no second attempt")
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	unblock()
	t.Log("notifier SIGKILLed during attempt 2; restarting")

	second := start()
	testutil.Eventually(t, 30*time.Second, "a 2xx delivery after the restart", func() bool {
		for _, h := range rc.got() {
			if h.status == http.StatusOK {
				return true
			}
		}
		return false
	})
	hits := rc.got()
	if len(hits) < 3 {
		t.Fatalf("%d attempts, want at least 3", len(hits))
	}
	for _, h := range hits {
		if got := h.header.Get("webhook-id"); got != schemas.EventID(call, 1) {
			t.Fatalf("webhook-id %s, want %s", got, schemas.EventID(call, 1))
		}
	}
	t.Logf("receiver got %d attempts, same webhook-id; answers %v", len(hits), statuses(hits))

	// The restarted process shuts down cleanly on SIGTERM.
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("notifier exit after SIGTERM: %v", err)
	}
}

func statuses(hs []hit) []int {
	out := make([]int, len(hs))
	for i, h := range hs {
		out[i] = h.status
	}
	return out
}
