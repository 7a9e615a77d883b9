package main

import (
	"context"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/dialstream/dialstream/dialer"
	"github.com/dialstream/dialstream/ingest"
	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/notifier"
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

func init() {
	commands["notifier"] = command{"deliver call events to callback_url (KAFKA_BROKERS, DIALSTREAM_REGISTRY)", runNotifier}
}

func runNotifier(ctx context.Context, _ []string) error {
	l := envconfig.New()
	cfg := notifier.LoadConfig(l)
	cfg.Logger = serviceLogger(l)
	if err := l.Err(); err != nil {
		return err
	}
	return notifier.Run(ctx, cfg)
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
// metrics registry and one workspace registry, each reading its configuration
// from the environment that dev mode prepared.
func startServices(ctx context.Context, g *errgroup.Group, log *slog.Logger) (*registry.Registry, error) {
	l := envconfig.New()
	icfg := ingest.LoadConfig(l)
	dcfg := dialer.LoadConfig(l)
	ncfg := notifier.LoadConfig(l)
	if err := l.Err(); err != nil {
		return nil, err
	}
	reg, err := registry.Load(icfg.RegistryPath)
	if err != nil {
		return nil, err
	}
	metrics := obs.NewRegistry()
	icfg.Logger, icfg.Metrics, icfg.Registry = log.With("service", "ingest"), metrics, reg
	dcfg.Logger, dcfg.Metrics, dcfg.Registry = log.With("service", "dialer"), metrics, reg
	ncfg.Logger, ncfg.Metrics, ncfg.Registry = log.With("service", "notifier"), metrics, reg
	g.Go(func() error { return ingest.Run(ctx, icfg) })
	g.Go(func() error { return dialer.Run(ctx, dcfg) })
	g.Go(func() error { return notifier.Run(ctx, ncfg) })
	return reg, nil
}
