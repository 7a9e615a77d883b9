package notifier

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/obs"
)

// TestMain lets the test binary double as a notifier process, so a test can
// start a real notifier and SIGKILL it: with NOTIFIER_TEST_CHILD=1 it runs
// what cmd/dialstream's notifier command runs (env config, Run until
// SIGTERM) instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("NOTIFIER_TEST_CHILD") == "1" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

func childMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l := envconfig.New()
	cfg := LoadConfig(l)
	if err := l.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "config:", err)
		return 2
	}
	cfg.Logger = obs.NewLogger(os.Stderr, "text", "info")
	if err := Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "notifier:", err)
		return 1
	}
	return 0
}
