package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain makes the test binary the recorder child too, as main does.
func TestMain(m *testing.M) {
	if os.Getenv(recorderChildEnv) != "" {
		if err := recorderChild(); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen recorder:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A tiny run, so the load generator keeps working; the figures come from
// `go run ./ingest/loadgen`.
func TestLoadgenSmoke(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Requests: 50, Concurrency: 4, Warmup: 10, Timeout: 30 * time.Second,
		Partitions: 3, Rounds: 1, Recorder: true, Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	if len(res) != 3 || res[0].Requests != 50 || res[1].P99 <= 0 || res[1].CPU <= 0 || !strings.Contains(out.String(), "ingest + Idempotency-Key") {
		t.Fatalf("%+v\n%s", res, &out)
	}
	// 10 warm-up and 50 measured requests in each of the two ingest
	// scenarios: 120 calls,
	// every one in the call records (the recorder child runs).
	if !strings.Contains(out.String(), "read-your-writes: 120 calls accepted;") || !strings.Contains(out.String(), "pending 0\n") {
		t.Fatalf("not every accepted call reached the call records:\n%s", &out)
	}
	t.Log(out.String())
}
