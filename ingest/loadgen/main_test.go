package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// A tiny run, so the load generator keeps working; the figures come from
// `go run ./ingest/loadgen`.
func TestLoadgenSmoke(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Requests: 50, Concurrency: 4, Warmup: 10, Timeout: 30 * time.Second,
		Partitions: 3, Rounds: 1, Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	if len(res) != 3 || res[0].Requests != 50 || res[1].P99 <= 0 || res[1].CPU <= 0 || !strings.Contains(out.String(), "ingest + Idempotency-Key") {
		t.Fatalf("%+v\n%s", res, &out)
	}
}
