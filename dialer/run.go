package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/ops"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// dialer is one running dialer process.
type dialer struct {
	cfg    Config
	log    *slog.Logger
	tracer trace.Tracer
	m      *metrics
	reg    *registry.Registry
	lk     liveKit
	prod   *kgo.Client
	cons   *kgo.Client
	adm    *admission
	gate   *gate // the compliance check before each dial (compliance.go)
	trunks *trunkRates

	kafkaOpts  []kgo.Opt
	totalParts int

	// dialCtx is the parent of dials and hang-ups: it outlives partition
	// ownership (a dial keeps going when its partition moves; its result is
	// a command the new owner applies) and ends after the shutdown drain.
	dialCtx    context.Context
	cancelDial context.CancelFunc
	// prodCtx bounds writes that must survive the drain (dial results).
	prodCtx    context.Context
	cancelProd context.CancelFunc
	dials      dialSet
	busy       busySet
	gone       strikeSet // room checks in a row that found a callee gone or its room unhosted (watchdog.go)
	bg         sync.WaitGroup

	mu     sync.Mutex
	owners map[int32]*partitionOwner // by partition of schemas.TopicRequested
	seeks  map[int32]int64
	joined atomic.Bool
}

// Run runs the dialer until ctx ends, then leaves the group, waits up to
// DrainTimeout for dials in progress and returns.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("dialer: invalid config: %w", err)
	}
	reg := cfg.Registry
	if reg == nil {
		var err error
		if reg, err = registry.Load(cfg.RegistryPath); err != nil {
			return fmt.Errorf("dialer: %w", err)
		}
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return fmt.Errorf("dialer: metrics: %w", err)
	}
	lk := cfg.liveKit
	if lk == nil {
		lk = newSDKLiveKit(cfg.LiveKitURL, cfg.LiveKitAPIKey, cfg.LiveKitAPISecret)
	}
	base, err := cfg.Kafka.ClientOpts()
	if err != nil {
		return fmt.Errorf("dialer: %w", err)
	}
	d := &dialer{
		cfg: cfg, log: cfg.Logger, tracer: cfg.TracerProvider.Tracer(tracerName), m: m, reg: reg, lk: meteredLiveKit{lk: lk, m: m},
		kafkaOpts: base, owners: map[int32]*partitionOwner{}, dials: dialSet{m: map[string]*dialEntry{}, linger: max(cfg.WatchdogGrace, 5*time.Second)},
		busy: busySet{m: map[string]struct{}{}}, trunks: newTrunkRates(cfg.TrunkCallsPerSecond),
	}
	d.dialCtx, d.cancelDial = context.WithCancel(context.WithoutCancel(ctx))
	d.prodCtx, d.cancelProd = context.WithCancel(context.WithoutCancel(ctx))
	defer d.cancelDial()
	defer d.cancelProd()

	// Every record the dialer writes names its partition: the call's, i.e.
	// the one its request arrived in, whatever partitioner the client used.
	prodOpts := append(append([]kgo.Opt{}, base...),
		kgo.ClientID(cfg.Kafka.ClientID+"-producer"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.WithHooks(kprom.NewMetrics("dialstream_dialer", kprom.Subsystem("kafka"),
			kprom.Registerer(cfg.Metrics), kprom.WithClientLabel())),
		// Every record is produced with the span it belongs to as its
		// Context; kotel writes a publish span under it to traceparent.
		kgo.WithHooks(obs.KafkaProduceTracing(obs.KafkaTracer(cfg.TracerProvider, cfg.Kafka.ClientID+"-producer", ""))),
	)
	if d.prod, err = kgo.NewClient(prodOpts...); err != nil {
		return fmt.Errorf("dialer: kafka producer: %w", err)
	}
	defer d.prod.Close()
	if d.totalParts, err = d.checkTopics(ctx); err != nil {
		return err
	}

	if d.gate, err = d.newGate(); err != nil {
		return err
	}
	d.adm = newAdmission(reg, d.totalParts, time.Now, d.admitChecked)
	d.adm.onGauge = func(queued, live int) { m.queued.Set(float64(queued)); m.live.Set(float64(live)) }
	if err := registerWorkspaces(cfg.Metrics, reg, d.adm); err != nil {
		return fmt.Errorf("dialer: metrics: %w", err)
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	srv := &ops.Server{
		Addr: cfg.HTTPAddr, Metrics: cfg.Metrics,
		Ready:  []ops.Check{d.inGroup, d.statesLoaded, d.gate.loaded},
		Routes: map[string]http.Handler{"POST " + webhookPath: http.HandlerFunc(d.serveWebhook)},
	}
	served, err := srv.Start()
	if err != nil {
		return fmt.Errorf("dialer: %w", err)
	}
	httpErr := make(chan error, 1)
	go func() {
		select {
		case err := <-served:
			httpErr <- err
			stopRun()
		case <-runCtx.Done():
		}
	}()

	consOpts := append(append([]kgo.Opt{}, base...),
		kgo.ClientID(cfg.Kafka.ClientID+"-consumer"),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(schemas.TopicRequested),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(d.assigned),
		kgo.OnPartitionsRevoked(d.revoked),
		kgo.OnPartitionsLost(d.lost),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.WithHooks(kprom.NewMetrics("dialstream_dialer", kprom.Subsystem("kafka"),
			kprom.Registerer(cfg.Metrics), kprom.WithClientLabel())),
		// A receive span per command, continuing its traceparent, in the
		// record's Context for the partition owner's process span.
		kgo.WithHooks(obs.KafkaTracer(cfg.TracerProvider, cfg.Kafka.ClientID+"-consumer", cfg.Group)),
	)
	if st := cfg.Kafka.SessionTimeout; st > 0 {
		consOpts = append(consOpts, kgo.SessionTimeout(st), kgo.HeartbeatInterval(min(3*time.Second, st/4)))
	}
	if d.cons, err = kgo.NewClient(consOpts...); err != nil {
		_ = srv.Shutdown(0)
		return fmt.Errorf("dialer: kafka consumer: %w", err)
	}
	d.gate.run(runCtx, d)
	admDone := make(chan struct{})
	go d.adm.run(admDone)
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		m.followLag(runCtx, kadm.NewClient(d.prod), cfg.Group, []string{schemas.TopicRequested}, d.log)
	}()
	d.log.Info("dialer started", "http", srv.ListenAddr(), "group", cfg.Group, "partitions", d.totalParts)

	d.poll(runCtx)
	stopRun()
	<-lagDone
	var runErr error
	select {
	case err := <-httpErr:
		runErr = fmt.Errorf("dialer: http: %w", err)
	default:
	}
	return errors.Join(runErr, d.shutdown(srv, admDone))
}

// checkTopics creates the call topics when configured to and checks that they
// are co-partitioned.
func (d *dialer) checkTopics(ctx context.Context) (int, error) {
	k := d.cfg.Kafka
	if k.CreateTopics {
		names := append([]string{schemas.TopicSuppressions}, kafkax.CallTopicNames...)
		if err := kafkax.CreateTopics(ctx, d.prod, k.TopicsConfig(), names...); err != nil {
			return 0, fmt.Errorf("dialer: %w", err)
		}
	}
	details, err := kadm.NewClient(d.prod).ListTopics(ctx, kafkax.CallTopicNames...)
	if err != nil {
		return 0, fmt.Errorf("dialer: list topics: %w", err)
	}
	n := -1
	for _, t := range kafkax.CallTopicNames {
		td, ok := details[t]
		if !ok || td.Err != nil {
			return 0, fmt.Errorf("dialer: topic %s is not available: %v", t, td.Err)
		}
		if n == -1 {
			n = len(td.Partitions)
		} else if len(td.Partitions) != n {
			return 0, fmt.Errorf("dialer: topic %s has %d partitions, %s has %d: the call topics must be co-partitioned", t, len(td.Partitions), schemas.TopicRequested, n)
		}
	}
	return n, nil
}

func (d *dialer) shutdown(srv *ops.Server, admDone chan struct{}) error {
	// Stop the partition owners and commit what they finished while this
	// process is still a member; then leave the group.
	d.mu.Lock()
	parts := make([]int32, 0, len(d.owners))
	for p := range d.owners {
		parts = append(parts, p)
	}
	d.mu.Unlock()
	d.stopOwners(parts)
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := d.cons.CommitMarkedOffsets(cctx); err != nil {
		d.log.Warn("dialer: final commit failed", "err", err)
	}
	cancel()
	d.cons.CloseAllowingRebalance()
	close(admDone)

	// Dials in progress finish and write their results, up to DrainTimeout;
	// then they are canceled and left for the next owner's recovery check.
	drained := make(chan struct{})
	go func() { d.bg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(d.cfg.DrainTimeout):
		d.log.Warn("dialer: drain timeout; canceling dials in progress", "dials", d.dials.len())
		d.cancelDial()
		<-drained
	}
	err := srv.Shutdown(5 * time.Second)
	d.cancelProd()
	d.log.Info("dialer stopped")
	return err
}
