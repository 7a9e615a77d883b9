package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/dialstream/dialstream/internal/envconfig"
)

func init() {
	commands["redis"] = command{"serve an in-memory Redis (miniredis) for a local livekit-server and phonesim (REDIS_LISTEN)", runRedis, true}
}

// runRedis serves miniredis on REDIS_LISTEN, for the container tests: the
// Redis livekit-server and the phone simulator share, from the one image the
// suite builds. Nothing is persisted; a restart is an empty Redis. Not for
// production, where livekit-server needs a real Redis (miniredis implements
// only what livekit-server and psrpc are known to use: docs/architecture.md,
// LiveKit, as measured).
//
// miniredis's clock stands still unless advanced: REDIS_CLOCK_TICK sets how
// often it is moved forward by the real elapsed time, so the TTL keys
// livekit-server and psrpc rely on (room locks, RPC claims) expire.
func runRedis(ctx context.Context, _ []string) error {
	l := envconfig.New()
	addr := l.String("REDIS_LISTEN", "127.0.0.1:6379")
	tick := l.Duration("REDIS_CLOCK_TICK", 100*time.Millisecond, time.Millisecond, time.Minute)
	log := loadLogger(l, "json")
	if err := l.Err(); err != nil {
		return err
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr(addr); err != nil {
		return fmt.Errorf("redis: listen %s: %w", addr, err)
	}
	defer mr.Close()
	log.Info("redis (miniredis) listening", slog.String("addr", mr.Addr()), slog.Duration("clock_tick", tick))

	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			log.Info("redis stopping")
			return nil
		case now := <-t.C:
			// By the real elapsed time, so a late tick does not slow the clock.
			mr.FastForward(now.Sub(last))
			last = now
		}
	}
}
