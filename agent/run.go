package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/ops"
	"github.com/dialstream/dialstream/internal/phonesim"
)

// service is what every worker connection and call of one process share.
type service struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	tracer   trace.Tracer
	rooms    *lksdk.RoomServiceClient
	reporter Reporter
	slots    *slots

	// callsCtx is the parent of every call. Shutdown cancels it only after
	// DrainTimeout, so calls in progress are not cut at the first signal.
	callsCtx context.Context
	calls    sync.WaitGroup
}

// Run registers a worker for each agent name and takes calls until ctx ends,
// then drains: no new job, calls in progress get DrainTimeout to finish.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("agent: invalid config: %w", err)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = obs.NewRegistry()
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return fmt.Errorf("agent: metrics: %w", err)
	}
	if cfg.Reporter == nil {
		cfg.Reporter = NewHTTPReporter()
	}
	callsCtx, stopCalls := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCalls()
	s := &service{
		cfg:      cfg,
		log:      cfg.Logger,
		m:        m,
		tracer:   cfg.TracerProvider.Tracer("github.com/dialstream/dialstream/agent"),
		rooms:    lksdk.NewRoomServiceClient(cfg.LiveKitURL, cfg.APIKey, cfg.APISecret),
		reporter: cfg.Reporter,
		slots:    &slots{max: cfg.MaxJobs, target: cfg.TargetLoad, active: m.callsActive},
		callsCtx: callsCtx,
	}

	workers := make([]*worker, len(cfg.AgentNames))
	for i, n := range cfg.AgentNames {
		workers[i] = newWorker(s, n)
	}
	srv := &ops.Server{Addr: cfg.HTTPAddr, Listener: cfg.Listener, Metrics: cfg.Metrics,
		Ready: []ops.Check{func(context.Context) error { return registeredCheck(workers) }}}
	served, err := srv.Start()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}

	// The connections outlive ctx: while calls drain, LiveKit must still hear
	// that this worker is full and how its jobs end.
	connCtx, stopConns := context.WithCancel(context.WithoutCancel(ctx))
	var conns sync.WaitGroup
	for _, w := range workers {
		conns.Go(func() { w.run(connCtx) })
	}
	s.log.Info("agent: started", "agent_names", cfg.AgentNames, "http", srv.ListenAddr(), "max_jobs", cfg.MaxJobs)

	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("agent: ops server: %w", err)
	}

	s.slots.drain()
	for _, w := range workers {
		w.sendStatus()
	}
	if !waitTimeout(&s.calls, cfg.DrainTimeout) {
		s.log.Warn("agent: drain timeout; leaving the calls still in progress", "drain_timeout", cfg.DrainTimeout)
	}
	stopCalls()
	s.calls.Wait()
	stopConns()
	conns.Wait()
	return errors.Join(err, srv.Shutdown(5*time.Second))
}

// registeredCheck is /readyz: ready when every agent name has a registered
// worker, that is when LiveKit can hand this process each of its jobs.
func registeredCheck(workers []*worker) error {
	for _, w := range workers {
		if !w.registered.Load() {
			return fmt.Errorf("livekit: worker %s not registered", w.name)
		}
	}
	return nil
}

// waitTimeout waits for wg, at most d; false means it timed out.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return within(done, d)
}

// within waits for done to close, at most d; false means d passed first.
func within(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// sdkLogger routes the LiveKit SDK's per-room logs into the call's logger.
var sdkLogger = phonesim.NewSDKLogger
