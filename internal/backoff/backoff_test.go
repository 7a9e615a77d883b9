package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDoublingCapsAndStopsOnCancel(t *testing.T) {
	b := Doubling{Next: time.Millisecond, Max: 3 * time.Millisecond}
	ctx := context.Background()
	for _, want := range []time.Duration{2 * time.Millisecond, 3 * time.Millisecond, 3 * time.Millisecond} {
		if !b.Wait(ctx) || b.Next != want {
			t.Fatalf("next %s, want %s", b.Next, want)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	b.Next = time.Hour
	start := time.Now()
	if b.Wait(ctx) || time.Since(start) > time.Second {
		t.Fatal("a canceled context did not end the wait")
	}
}
