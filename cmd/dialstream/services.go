package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/dialstream/dialstream/agent"
	"github.com/dialstream/dialstream/dialer"
	"github.com/dialstream/dialstream/ingest"
	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/notifier"
	"github.com/dialstream/dialstream/recorder"
	"github.com/dialstream/dialstream/scheduler"
)

// services are Dialstream's long-running services, each a subcommand of its
// own (`dialstream ingest`) and all of them together in `dialstream dev`. A
// new service is one more entry: its package's LoadConfig and Run, and where
// the process's shared pieces go in its Config.
var services = []service{
	define("ingest", "serve the call API (INGEST_HTTP_ADDR, KAFKA_BROKERS, DIALSTREAM_REGISTRY)",
		ingest.LoadConfig, ingest.Run, func(c *ingest.Config, p shared) {
			c.Logger, c.Metrics, c.Registry, c.TracerProvider = p.log, p.metrics, p.registry, p.tracer
		}),
	define("dialer", "place calls through LiveKit (KAFKA_BROKERS, LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)",
		dialer.LoadConfig, dialer.Run, func(c *dialer.Config, p shared) {
			c.Logger, c.Metrics, c.Registry, c.TracerProvider = p.log, p.metrics, p.registry, p.tracer
		}),
	define("notifier", "deliver call events to callback_url (KAFKA_BROKERS, DIALSTREAM_REGISTRY)",
		notifier.LoadConfig, notifier.Run, func(c *notifier.Config, p shared) {
			c.Logger, c.Metrics, c.Registry, c.TracerProvider = p.log, p.metrics, p.registry, p.tracer
		}),
	define("recorder", "keep the call records the API reads (KAFKA_BROKERS, DATABASE_URL, DIALSTREAM_REGISTRY)",
		recorder.LoadConfig, recorder.Run, func(c *recorder.Config, p shared) {
			c.Logger, c.Metrics, c.Registry, c.TracerProvider = p.log, p.metrics, p.registry, p.tracer
		}),
	define("scheduler", "release campaign contacts and scheduled calls as call requests (KAFKA_BROKERS, DIALSTREAM_REGISTRY)",
		scheduler.LoadConfig, scheduler.Run, func(c *scheduler.Config, p shared) {
			c.Logger, c.Metrics, c.Registry, c.TracerProvider = p.log, p.metrics, p.registry, p.tracer
		}),
	define("agent", "the reference AI agent: a LiveKit agent worker that takes dispatched calls (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, AGENT_NAMES)",
		agent.LoadConfig, agent.Run, func(c *agent.Config, p shared) {
			c.Logger, c.Metrics, c.TracerProvider = p.log, p.metrics, p.tracer
		}),
}

func init() {
	for _, s := range services {
		commands[s.name] = command{s.summary, func(ctx context.Context, _ []string) error {
			return runService(ctx, s, envconfig.New())
		}, true}
	}
}

// A service is one entry of services.
type service struct {
	name    string
	summary string
	// load reads the service's configuration, its problems into l, and
	// returns what runs it once it is given the shared pieces.
	load func(l *envconfig.Loader) func(ctx context.Context, p shared) error
}

// shared is what the process gives each service it runs. Alone, a service
// gets no metrics registry and no workspace registry and makes its own (the
// latter from DIALSTREAM_REGISTRY); in dev mode every service shares one of
// each, so one /metrics shows the whole pipeline and a registry is parsed
// once.
type shared struct {
	log      *slog.Logger
	metrics  *prometheus.Registry
	registry *registry.Registry
	tracer   trace.TracerProvider
}

// define makes a service of a package's LoadConfig and Run; set puts the
// shared pieces in its Config.
func define[C any](name, summary string, load func(*envconfig.Loader) C, run func(context.Context, C) error, set func(*C, shared)) service {
	return service{name: name, summary: summary, load: func(l *envconfig.Loader) func(context.Context, shared) error {
		cfg := load(l)
		return func(ctx context.Context, p shared) error {
			set(&cfg, p)
			return run(ctx, cfg)
		}
	}}
}

// runService runs one service alone, configured from l: its logger, its
// tracer provider (also otel's global one, for libraries that trace through
// the globals), then its Run.
func runService(ctx context.Context, s service, l *envconfig.Loader) error {
	start := s.load(l)
	log := loadLogger(l, "json")
	tcfg := obs.LoadTracingConfig(l)
	profAddr := l.String(profilerAddrEnv, "")
	if err := l.Err(); err != nil {
		return err
	}
	if err := startProfiler(ctx, profAddr, log); err != nil {
		return err
	}
	tps, err := startTracing(ctx, tcfg, log, s)
	if err != nil {
		return err
	}
	defer stopTracing(tps[0], log)
	otel.SetTracerProvider(tps[0])
	return start(ctx, shared{log: log, tracer: tps[0]})
}

// startServices starts every service in this process, each in g, configured
// from the environment dev mode prepared: one metrics registry and one
// workspace registry (which it returns) for all, and a tracer provider each,
// so a trace shows which service did what.
func startServices(ctx context.Context, g *errgroup.Group, log *slog.Logger) (*registry.Registry, error) {
	l := envconfig.New()
	starts := make([]func(context.Context, shared) error, len(services))
	for i, s := range services {
		starts[i] = s.load(l)
	}
	regPath := l.Required("DIALSTREAM_REGISTRY")
	tcfg := obs.LoadTracingConfig(l)
	profAddr := l.String(profilerAddrEnv, "")
	if err := l.Err(); err != nil {
		return nil, err
	}
	if err := startProfiler(ctx, profAddr, log); err != nil {
		return nil, err
	}
	reg, err := registry.Load(regPath)
	if err != nil {
		return nil, err
	}
	tps, err := startTracing(ctx, tcfg, log, services...)
	if err != nil {
		return nil, err
	}
	metrics := obs.NewRegistry()
	for i, s := range services {
		p := shared{log: log.With("service", s.name), metrics: metrics, registry: reg, tracer: tps[i]}
		g.Go(func() error {
			defer stopTracing(tps[i], log)
			return starts[i](ctx, p)
		})
	}
	return reg, nil
}

// loadLogger reads LOG_FORMAT (json or text, def when unset) and LOG_LEVEL.
func loadLogger(l *envconfig.Loader, def string) *slog.Logger {
	return obs.NewLogger(os.Stderr, l.OneOf("LOG_FORMAT", def, "json", "text"), l.String("LOG_LEVEL", "info"))
}

// startTracing builds a tracer provider for each service from the OTEL_*
// variables, sets the W3C propagator and sends the SDK's errors (a collector
// that cannot be reached, spans dropped) to log instead of the standard
// library's logger. Spans are exported over OTLP only when an endpoint is
// set; trace context is propagated either way.
func startTracing(ctx context.Context, c obs.TracingConfig, log *slog.Logger, svcs ...service) ([]*sdktrace.TracerProvider, error) {
	tps := make([]*sdktrace.TracerProvider, 0, len(svcs))
	for _, s := range svcs {
		tp, err := obs.NewTracerProvider(ctx, c, "dialstream-"+s.name)
		if err != nil {
			for _, tp := range tps {
				stopTracing(tp, log)
			}
			return nil, err
		}
		tps = append(tps, tp)
	}
	otel.SetTextMapPropagator(obs.Propagator())
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: OpenTelemetry SDK error", "err", err)
	}))
	if c.Exporting() {
		log.Info("exporting traces over OTLP", "endpoint", c.Endpoint, "protocol", c.Protocol)
	}
	return tps, nil
}

// stopTracing flushes the spans still buffered, for at most 5 s.
func stopTracing(tp *sdktrace.TracerProvider, log *slog.Logger) {
	if err := obs.ShutdownTracing(tp, 5*time.Second); err != nil {
		log.Warn("tracing: flush at exit failed; the last spans are lost", "err", err)
	}
}
