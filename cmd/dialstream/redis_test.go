package main

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keys with a TTL expire: miniredis's clock only moves when advanced, and
// livekit-server's room locks and psrpc's claims depend on it.
func TestRedisExpiresKeys(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("REDIS_LISTEN", addr)
	t.Setenv("REDIS_CLOCK_TICK", "10ms")
	t.Setenv("LOG_LEVEL", "error")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runRedis(ctx, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runRedis: %v", err)
		}
	}()

	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(5 * time.Second)
	set := false
	for {
		if !set {
			// Until the server listens, SET fails; then the key gets a TTL.
			set = rc.Set(ctx, "lock", "x", 200*time.Millisecond).Err() == nil
		} else if _, err := rc.Get(ctx, "lock").Result(); errors.Is(err, redis.Nil) {
			return
		} else if err != nil {
			t.Fatalf("GET: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: set=%v; a key with a 200ms TTL must be gone by now (the clock does not advance?)", set)
		}
		select {
		case err := <-done:
			done <- err // for the deferred wait
			t.Fatalf("runRedis exited: %v", err)
		case <-tick.C:
		}
	}
}
