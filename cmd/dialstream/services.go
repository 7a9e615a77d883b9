package main

import (
	"context"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/dialstream/dialstream/dialer"
	"github.com/dialstream/dialstream/ingest"
	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/obs"
)

func init() {
	commands["ingest"] = command{"serve the call API (INGEST_HTTP_ADDR, KAFKA_BROKERS, DIALSTREAM_REGISTRY)", runIngest}
}

func init() {
	commands["dialer"] = command{"place calls through LiveKit (KAFKA_BROKERS, LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)", runDialer}
}

func runDialer(ctx context.Context, _ []string) error {
	l := envconfig.New()
	cfg := dialer.LoadConfig(l)
	cfg.Logger = serviceLogger(l)
	if err := l.Err(); err != nil {
		return err
	}
	return dialer.Run(ctx, cfg)
}

func serviceLogger(l *envconfig.Loader) *slog.Logger {
	return obs.NewLogger(stderr, l.OneOf("LOG_FORMAT", "json", "json", "text"), l.String("LOG_LEVEL", "info"))
}

func runIngest(ctx context.Context, _ []string) error {
	l := envconfig.New()
	cfg := ingest.LoadConfig(l)
	cfg.Logger = serviceLogger(l)
	if err := l.Err(); err != nil {
		return err
	}
	return ingest.Run(ctx, cfg)
}

// startServices starts ingest, dialer and notifier in this process, on one
// metrics registry, each reading its configuration from the environment that
// dev mode prepared.
func startServices(ctx context.Context, g *errgroup.Group, log *slog.Logger) error {
	l := envconfig.New()
	icfg := ingest.LoadConfig(l)
	dcfg := dialer.LoadConfig(l)
	if err := l.Err(); err != nil {
		return err
	}
	metrics := obs.NewRegistry()
	icfg.Logger, icfg.Metrics = log.With("service", "ingest"), metrics
	dcfg.Logger, dcfg.Metrics = log.With("service", "dialer"), metrics
	g.Go(func() error { return ingest.Run(ctx, icfg) })
	g.Go(func() error { return dialer.Run(ctx, dcfg) })
	return nil
}
