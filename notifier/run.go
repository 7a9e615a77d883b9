package notifier

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// Topics returns the topics the notifier creates: the events topic it reads
// (with the call topics' partition count), one retry topic per distinct delay
// of the schedule, the redelivery input, the DLQ, the delivery log and the
// compacted endpoint state.
func Topics(partitions int, retrySchedule []time.Duration) []kafkax.TopicSpec {
	p := int32(partitions)
	var specs []kafkax.TopicSpec
	for _, s := range kafkax.CallTopics(partitions) {
		if s.Name == schemas.TopicEvents {
			specs = append(specs, s)
		}
	}
	for _, t := range newSchedule(retrySchedule, 0).topics() {
		specs = append(specs, kafkax.TopicSpec{Name: t, Partitions: p})
	}
	compact := "compact"
	return append(specs,
		kafkax.TopicSpec{Name: schemas.TopicWebhookRedeliver, Partitions: p},
		kafkax.TopicSpec{Name: schemas.TopicWebhookDLQ, Partitions: p},
		kafkax.TopicSpec{Name: schemas.TopicWebhookDeliveries, Partitions: p},
		kafkax.TopicSpec{Name: schemas.TopicWebhookEndpoints, Partitions: p,
			Configs: map[string]*string{"cleanup.policy": &compact}},
	)
}

// consumeRegexes are the group's topics. Every retry topic is consumed, also
// those of an older schedule, so records left there when the schedule
// changes are still delivered.
var consumeRegexes = []string{
	"^" + regexp.QuoteMeta(schemas.TopicEvents) + "$",
	"^" + regexp.QuoteMeta(schemas.TopicWebhookRedeliver) + "$",
	"^" + regexp.QuoteMeta(schemas.TopicWebhookRetryPrefix) + `[0-9a-z.]+$`,
}

// Run delivers call-lifecycle events to their callback_url until ctx is
// done, then lets running deliveries finish (bounded by the timeouts),
// commits what finished and leaves the group. It creates its topics first
// when cfg.Kafka.CreateTopics.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	log := cfg.Logger.With("component", "notifier")
	reg := cfg.Registry
	if reg == nil {
		var err error
		if reg, err = registry.Load(cfg.RegistryPath); err != nil {
			return fmt.Errorf("notifier: %w", err)
		}
	}
	keys, masked, err := workspaceKeys(reg)
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = obs.NewRegistry()
	}
	sched := newSchedule(cfg.RetrySchedule, cfg.RetryJitter)
	m := newMetrics(cfg.Metrics, sched.attempts())

	base, err := cfg.Kafka.ClientOpts()
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	base = append(base, kgo.RecordDeliveryTimeout(cfg.Kafka.ProduceTimeout))
	if cfg.Kafka.CreateTopics {
		if err := createTopics(ctx, cfg, base); err != nil {
			return err
		}
	}

	// Deliveries run on a context that outlives ctx by the drain bound, so
	// a shutdown lets them finish instead of cutting them mid-request.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	n := &notifier{
		log: log, tracer: cfg.TracerProvider.Tracer(tracerName), keys: keys, masked: masked, sched: sched, maxBody: cfg.MaxResponseBytes, m: m,
		gone: newEndpoints(m.goneEndpoints), rnd: defaultRand,
	}
	g := newGuard(cfg.AllowCIDRs, cfg.Resolver, cfg.Dial, cfg.ConnectTimeout, func(class string) {
		m.ssrf.WithLabelValues(class).Inc()
	})
	n.http = newHTTPClient(g, cfg)
	defer n.http.CloseIdleConnections()
	c := newConsumer(n, log, cfg, workCtx)

	hb := min(3*time.Second, cfg.Kafka.SessionTimeout/3)
	cl, err := kgo.NewClient(append(base,
		kgo.ConsumerGroup(cfg.GroupID),
		kgo.ConsumeRegex(),
		kgo.ConsumeTopics(consumeRegexes...),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.SessionTimeout(cfg.Kafka.SessionTimeout),
		kgo.HeartbeatInterval(hb),
		kgo.RebalanceTimeout(max(time.Minute, c.drain+15*time.Second)),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.FetchMaxBytes(16<<20),
		kgo.FetchMaxPartitionBytes(1<<20),
		kgo.WithHooks(kprom.NewMetrics("dialstream_notifier", kprom.Subsystem("kafka"),
			kprom.Registerer(cfg.Metrics), kprom.Gatherer(cfg.Metrics))),
		// A receive span per event, continuing its traceparent (the call's
		// trace), left in the record's Context for the delivery; a publish
		// span per record written (retry, DLQ, delivery log), under the
		// delivery's span.
		kgo.WithHooks(obs.KafkaTracer(cfg.TracerProvider, cfg.Kafka.ClientID, cfg.GroupID)),
	)...)
	if err != nil {
		return fmt.Errorf("notifier: kafka client: %w", err)
	}
	n.producer, c.cl = cl, cl

	epl, err := kgo.NewClient(append(base,
		kgo.ClientID(cfg.Kafka.ClientID+"-endpoints"),
		kgo.ConsumeTopics(schemas.TopicWebhookEndpoints),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(time.Second),
	)...)
	if err != nil {
		cl.Close()
		return fmt.Errorf("notifier: kafka client: %w", err)
	}

	var ready atomic.Bool
	srv, served, err := serveHTTP(cfg, &ready)
	if err != nil {
		cl.Close()
		epl.Close()
		return err
	}
	log.Info("notifier running", "group", cfg.GroupID, "brokers", cfg.Kafka.Brokers,
		"retry_topics", sched.topics(), "http_addr", srv.Addr)

	var bg sync.WaitGroup
	bgCtx, stopBg := context.WithCancel(ctx)
	bg.Add(3)
	go func() { defer bg.Done(); n.gone.follow(bgCtx, epl, log) }()
	go func() { defer bg.Done(); m.followLag(bgCtx, kadm.NewClient(epl), cfg.GroupID, log) }()
	go func() { defer bg.Done(); c.dispatch(bgCtx) }()
	ready.Store(true)

	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	pollDone := make(chan struct{})
	go func() { defer close(pollDone); c.poll(pollCtx) }()
	var runErr error
	select {
	case <-pollDone:
	case err := <-served:
		runErr = fmt.Errorf("notifier: http: %w", err)
		stopPoll()
	}
	ready.Store(false)
	stopBg()

	// Stop polling (ctx is done, or the HTTP server failed), let running
	// deliveries finish, commit them, flush the delivery log, leave.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.drain+10*time.Second)
	defer cancel()
	<-pollDone
	if err := c.shutdown(closeCtx); err != nil {
		log.Warn("notifier: final commit failed; uncommitted events will be delivered again", "err", err)
	}
	if err := cl.Flush(closeCtx); err != nil {
		log.Warn("notifier: flush of the delivery log failed", "err", err)
	}
	cl.CloseAllowingRebalance()
	epl.Close()
	bg.Wait()
	_ = srv.Shutdown(closeCtx)
	log.Info("notifier stopped")
	return runErr
}

// workspaceKeys decodes every workspace's webhook secrets once, so a broken
// secret stops startup instead of failing deliveries one by one.
func workspaceKeys(reg *registry.Registry) (map[string][][]byte, map[string]bool, error) {
	keys, masked := map[string][][]byte{}, map[string]bool{}
	var errs []error
	for _, w := range reg.Workspaces() {
		masked[w.ID] = w.MaskPhoneNumbers
		k, err := signingKeys(w.WebhookSecrets)
		if err != nil {
			errs = append(errs, fmt.Errorf("workspace %s: webhook_secrets: %w", w.ID, err))
			continue
		}
		keys[w.ID] = k
	}
	return keys, masked, errors.Join(errs...)
}

func createTopics(ctx context.Context, cfg Config, base []kgo.Opt) error {
	admin, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("notifier: kafka client: %w", err)
	}
	defer admin.Close()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := kafkax.EnsureTopics(tctx, admin, cfg.Kafka.ReplicationFactor, Topics(cfg.Kafka.Partitions, cfg.RetrySchedule)...); err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	return nil
}

// serveHTTP serves /healthz, /readyz and /metrics on cfg.HTTPAddr.
func serveHTTP(cfg Config, ready *atomic.Bool) (*http.Server, <-chan error, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", obs.MetricsHandler(cfg.Metrics))
	for pattern, h := range cfg.Routes {
		mux.Handle(pattern, h)
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, nil, fmt.Errorf("notifier: listen %s: %w", cfg.HTTPAddr, err)
		}
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			served <- err
		}
	}()
	return srv, served, nil
}
