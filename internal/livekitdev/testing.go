package livekitdev

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// StartT starts a server for a test and closes it in t.Cleanup. A missing
// binary skips the test, as BinaryT says; any other start-up failure fails
// it.
func StartT(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Binary == "" {
		cfg.Binary = BinaryT(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("livekitdev: close: %v", err)
		}
	})
	return s
}

// BinaryT is FindBinary for a test that needs livekit-server. A missing
// binary skips the test on a developer machine but fails it when CI=true, so
// CI can never go green by silently skipping the integration tier.
func BinaryT(t testing.TB) string {
	t.Helper()
	bin, err := FindBinary()
	if errors.Is(err, ErrBinaryNotFound) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// RedisT starts an in-process Redis (miniredis, its clock running) for
// servers that must share one across a restart, closed in t.Cleanup.
func RedisT(t testing.TB) string {
	t.Helper()
	r, err := startDevRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r.addr()
}

// KillT SIGKILLs the server's process, as a crash does (nothing it holds in
// Redis is cleaned up), and waits for it to exit.
func (s *Server) KillT(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatalf("livekitdev: kill: %v", err)
	}
	<-s.done
}
