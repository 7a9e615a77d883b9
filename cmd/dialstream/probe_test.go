package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/dialstream/dialstream/internal/ops"
)

// The probe passes on a ready service and fails on one that is not, saying
// the status and the service's reason.
func TestProbe(t *testing.T) {
	var down atomic.Bool
	ready := func(context.Context) error {
		if down.Load() {
			return errors.New("kafka: not reachable")
		}
		return nil
	}
	srv := httptest.NewServer((&ops.Server{Ready: []ops.Check{ready}}).Handler())
	defer srv.Close()
	if err := runProbe(context.Background(), []string{srv.URL + "/readyz"}); err != nil {
		t.Errorf("ready: %v", err)
	}
	down.Store(true)
	want := "probe: " + srv.URL + "/readyz answered 503 Service Unavailable: kafka: not reachable"
	if err := runProbe(context.Background(), []string{srv.URL + "/readyz"}); err == nil || err.Error() != want {
		t.Errorf("not ready: %v, want %q", err, want)
	}
	if err := runProbe(context.Background(), []string{srv.URL + "/nothing-here"}); err == nil {
		t.Error("404: no error")
	}
	if err := runProbe(context.Background(), nil); err == nil {
		t.Error("no URL: no error")
	}
}
