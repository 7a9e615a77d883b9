package notifier

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/ops"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// topics are the topics the notifier creates, besides its retry topics
// (RetryTopics): the events topic it reads, the redelivery input, the DLQ,
// the delivery log and the compacted endpoint state.
var topics = []string{schemas.TopicEvents, schemas.TopicWebhookRedeliver, schemas.TopicWebhookDLQ,
	schemas.TopicWebhookDeliveries, schemas.TopicWebhookEndpoints}

// deliveryLinger is how long the notifier's producer waits to fill a
// produce request (Kafka's own clients have defaulted to 5 ms since 4.0).
const deliveryLinger = 5 * time.Millisecond

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
	if err := cfg.Validate(); err != nil {
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
	sched := newSchedule(cfg.RetrySchedule, cfg.RetryJitter)
	m := newMetrics(cfg.Metrics, sched.attempts())

	base, err := cfg.Kafka.ClientOpts()
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	base = append(base, kgo.RecordDeliveryTimeout(cfg.Kafka.ProduceTimeout))
	if cfg.Kafka.CreateTopics {
		admin, err := kgo.NewClient(base...)
		if err != nil {
			return fmt.Errorf("notifier: kafka client: %w", err)
		}
		err = createTopics(ctx, admin, cfg.Kafka, cfg.RetrySchedule)
		admin.Close()
		if err != nil {
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
		// Every webhook writes a delivery log record, and with kafkax's
		// linger of 0 (right for ingest, whose client waits on each ack)
		// they left in produce requests of about 4 records: one request to
		// the broker per 4 webhooks. A short linger gathers them into
		// requests of about 60 at 10,000 webhooks/s, which cuts the
		// client's and the broker's CPU per webhook. What it costs is up to
		// deliveryLinger more before a finished record is marked, never a
		// later webhook: the record's delivery slots are free before its
		// writes start (consume.go).
		kgo.ProducerLinger(deliveryLinger),
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
	srv := &ops.Server{Addr: cfg.HTTPAddr, Listener: cfg.Listener, Metrics: cfg.Metrics, Routes: cfg.Routes,
		Ready: []ops.Check{func(context.Context) error {
			if !ready.Load() {
				return errNotConsuming
			}
			return nil
		}}}
	served, err := srv.Start()
	if err != nil {
		cl.Close()
		epl.Close()
		return fmt.Errorf("notifier: %w", err)
	}
	log.Info("notifier running", "group", cfg.GroupID, "brokers", cfg.Kafka.Brokers,
		"retry_topics", slices.Sorted(maps.Keys(RetryTopics(cfg.RetrySchedule))), "http_addr", srv.ListenAddr())

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
	_ = srv.Shutdown(5 * time.Second)
	log.Info("notifier stopped")
	return runErr
}

// errNotConsuming is /readyz's reason while the notifier starts or stops.
var errNotConsuming = errors.New("notifier: not consuming (starting or stopping)")

// createTopics creates, through cl, the notifier's topics and the retry
// topics of schedule, from the one spec (kafkax.Topics) with k's partitions,
// replication and retention.
func createTopics(ctx context.Context, cl *kgo.Client, k kafkax.Config, schedule []time.Duration) error {
	tc := k.TopicsConfig()
	tc.WebhookRetryTopics = RetryTopics(schedule)
	names := append(slices.Sorted(maps.Keys(tc.WebhookRetryTopics)), topics...)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := kafkax.CreateTopics(ctx, cl, tc, names...); err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	return nil
}
