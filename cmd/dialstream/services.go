package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
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
	tcfg := obs.LoadTracingConfig(l)
	if err := l.Err(); err != nil {
		return err
	}
	tp, err := startTracing(ctx, tcfg, "dialstream-dialer", cfg.Logger)
	if err != nil {
		return err
	}
	defer stopTracing(tp, cfg.Logger)
	cfg.TracerProvider = tp
	return dialer.Run(ctx, cfg)
}

func init() {
	commands["notifier"] = command{"deliver call events to callback_url (KAFKA_BROKERS, DIALSTREAM_REGISTRY)", runNotifier}
}

func runNotifier(ctx context.Context, _ []string) error {
	l := envconfig.New()
	cfg := notifier.LoadConfig(l)
	cfg.Logger = serviceLogger(l)
	tcfg := obs.LoadTracingConfig(l)
	if err := l.Err(); err != nil {
		return err
	}
	tp, err := startTracing(ctx, tcfg, "dialstream-notifier", cfg.Logger)
	if err != nil {
		return err
	}
	defer stopTracing(tp, cfg.Logger)
	cfg.TracerProvider = tp
	return notifier.Run(ctx, cfg)
}

func serviceLogger(l *envconfig.Loader) *slog.Logger {
	return obs.NewLogger(os.Stderr, l.OneOf("LOG_FORMAT", "json", "json", "text"), l.String("LOG_LEVEL", "info"))
}

func runIngest(ctx context.Context, _ []string) error {
	l := envconfig.New()
	cfg := ingest.LoadConfig(l)
	cfg.Logger = serviceLogger(l)
	tcfg := obs.LoadTracingConfig(l)
	if err := l.Err(); err != nil {
		return err
	}
	tp, err := startTracing(ctx, tcfg, "dialstream-ingest", cfg.Logger)
	if err != nil {
		return err
	}
	defer stopTracing(tp, cfg.Logger)
	cfg.TracerProvider = tp
	return ingest.Run(ctx, cfg)
}

// startTracing builds a service's tracer provider from the OTEL_* variables
// and makes it, with the W3C propagator, otel's global one (for libraries
// that trace through the globals). Spans are exported over OTLP only when an
// endpoint is set; trace context is propagated either way.
func startTracing(ctx context.Context, c obs.TracingConfig, service string, log *slog.Logger) (*sdktrace.TracerProvider, error) {
	tp, err := obs.NewTracerProvider(ctx, c, service)
	if err != nil {
		return nil, err
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(obs.Propagator())
	setTracingErrorLog(log)
	if c.Exporting() {
		log.Info("exporting traces over OTLP", "service", service, "endpoint", c.Endpoint, "protocol", c.Protocol)
	}
	return tp, nil
}

// setTracingErrorLog sends the SDK's errors (a collector that cannot be
// reached, spans dropped) to the service's log instead of the standard
// library's logger.
func setTracingErrorLog(log *slog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: OpenTelemetry SDK error", "err", err)
	}))
}

// stopTracing flushes the spans still buffered, for at most 5 s.
func stopTracing(tp *sdktrace.TracerProvider, log *slog.Logger) {
	if err := obs.ShutdownTracing(tp, 5*time.Second); err != nil {
		log.Warn("tracing: flush at exit failed; the last spans are lost", "err", err)
	}
}

// startServices starts ingest, dialer and notifier in this process, on one
// metrics registry and one workspace registry, each reading its configuration
// from the environment that dev mode prepared, each with its own tracer
// provider (so a trace shows which service did what).
func startServices(ctx context.Context, g *errgroup.Group, log *slog.Logger) (*registry.Registry, error) {
	l := envconfig.New()
	icfg := ingest.LoadConfig(l)
	dcfg := dialer.LoadConfig(l)
	ncfg := notifier.LoadConfig(l)
	tcfg := obs.LoadTracingConfig(l)
	if err := l.Err(); err != nil {
		return nil, err
	}
	reg, err := registry.Load(icfg.RegistryPath)
	if err != nil {
		return nil, err
	}
	tps := map[string]*sdktrace.TracerProvider{}
	for _, svc := range []string{"ingest", "dialer", "notifier"} {
		tp, err := obs.NewTracerProvider(ctx, tcfg, "dialstream-"+svc)
		if err != nil {
			for _, tp := range tps {
				stopTracing(tp, log)
			}
			return nil, err
		}
		tps[svc] = tp
	}
	otel.SetTextMapPropagator(obs.Propagator())
	setTracingErrorLog(log)
	if tcfg.Exporting() {
		log.Info("exporting traces over OTLP", "endpoint", tcfg.Endpoint, "protocol", tcfg.Protocol)
	}
	metrics := obs.NewRegistry()
	icfg.Logger, icfg.Metrics, icfg.Registry, icfg.TracerProvider = log.With("service", "ingest"), metrics, reg, tps["ingest"]
	dcfg.Logger, dcfg.Metrics, dcfg.Registry, dcfg.TracerProvider = log.With("service", "dialer"), metrics, reg, tps["dialer"]
	ncfg.Logger, ncfg.Metrics, ncfg.Registry, ncfg.TracerProvider = log.With("service", "notifier"), metrics, reg, tps["notifier"]
	g.Go(func() error { defer stopTracing(tps["ingest"], log); return ingest.Run(ctx, icfg) })
	g.Go(func() error { defer stopTracing(tps["dialer"], log); return dialer.Run(ctx, dcfg) })
	g.Go(func() error { defer stopTracing(tps["notifier"], log); return notifier.Run(ctx, ncfg) })
	return reg, nil
}
