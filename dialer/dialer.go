// Package dialer turns call requests into outbound calls through LiveKit and
// the life of each call into lifecycle events, placing every accepted call at
// most once across crashes, restarts and rebalances.
//
// # How a call moves
//
// The dialer is a consumer group on schemas.TopicRequested. Every change to a
// call is a command on that topic, keyed by the call id and written to the
// call's partition: the clients' call.requested and call.cancel, and the
// dialer's own dial results, LiveKit webhooks and timer decisions (admit,
// max duration, queue expiry). The owner of a partition applies them one at a
// time, in log order, to the call's state (machine.go: a pure function of
// state and command). Each transition is written in this order:
//
//  1. its lifecycle events to schemas.TopicEvents (acks=all, idempotent),
//  2. the call's new state to the compacted schemas.TopicState,
//  3. the command's offset is marked for commit,
//  4. only then its side effects run (a dial, a hang-up).
//
// A crash anywhere in between makes the next owner load the states of the
// partition, resume from the committed offset and apply the same commands to
// the same states: the same events come out again, with the same sequence
// numbers and CloudEvent ids, for receivers to de-duplicate. A command at or
// below a call's applied_offset is recognized as a replay and skipped.
//
// # Exactly one dial
//
// A call is dialed only by the transition queued -> dialing, and only after
// that state (the durable claim) is in the state topic. Whoever owns the
// partition later sees "dialing" and never dials again: a dial whose dialer
// died is resolved by asking LiveKit (an answered callee is adopted, anything
// else is hung up and ends failed), never by redialing. Before a dial starts,
// the owner commits its offsets synchronously; the group coordinator refuses
// that commit from a member whose session expired, so a paused process that
// lost its partitions without noticing cannot dial a call its successor
// already loaded as queued.
package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// Config configures the dialer. LoadConfig fills it from the environment;
// Logger, Metrics and Registry are the caller's to set (Run loads the
// registry from RegistryPath when Registry is nil).
type Config struct {
	Kafka kafkax.Config

	// HTTPAddr serves POST /livekit/webhook, GET /healthz, /readyz, /metrics.
	HTTPAddr string
	// RegistryPath is the workspace/agent registry file.
	RegistryPath string

	LiveKitURL       string
	LiveKitAPIKey    string
	LiveKitAPISecret string

	// Group is the consumer group id.
	Group string
	// MaxQueuedPerPartition bounds the calls of one partition waiting in
	// memory for admission. Past it, the partition's later requests (of
	// every workspace) are deferred until the queue drains to half: this is
	// the head-of-line bound between workspaces that share a partition.
	MaxQueuedPerPartition int
	// WatchdogInterval is how often each partition looks for calls that
	// outlived their limits.
	WatchdogInterval time.Duration
	// WatchdogGrace is added to a call's ringing timeout before a dial
	// nobody waits on is checked in LiveKit, and to max_call_duration before
	// the dialer hangs up a call LiveKit did not end.
	WatchdogGrace time.Duration
	// RoomCheckInterval is how often answered calls are checked in LiveKit,
	// to end those whose end webhook was lost.
	RoomCheckInterval time.Duration
	// MaxQueueWait ends a call that waited longer for admission (expired).
	MaxQueueWait time.Duration
	// EndedRetention is how long an ended call is remembered (duplicate
	// requests for its id are ignored) before its state is deleted.
	EndedRetention time.Duration
	// DrainTimeout is how long shutdown waits for dials in progress.
	DrainTimeout time.Duration

	Logger   *slog.Logger
	Metrics  *prometheus.Registry
	Registry *registry.Registry
	// TracerProvider makes the dialer's spans (applying a command, a dial,
	// a hang-up, Kafka publish and receive) in each call's trace; see
	// trace.go. Nil: otel's global provider, which cmd/dialstream sets from
	// the OTEL_* variables.
	TracerProvider trace.TracerProvider

	// liveKit replaces the LiveKit API in component tests.
	liveKit liveKit
}

// Defaults.
const (
	DefaultHTTPAddr              = ":8081"
	DefaultGroup                 = "dialstream-dialer"
	DefaultMaxQueuedPerPartition = 10000
	DefaultWatchdogInterval      = 5 * time.Second
	DefaultWatchdogGrace         = 30 * time.Second
	DefaultRoomCheckInterval     = 30 * time.Second
	DefaultMaxQueueWait          = time.Hour
	DefaultEndedRetention        = 24 * time.Hour
	DefaultDrainTimeout          = 30 * time.Second
)

// LoadConfig reads the dialer's variables (and KAFKA_*); problems are
// recorded in l, see l.Err.
func LoadConfig(l *envconfig.Loader) Config {
	c := Config{
		Kafka:                 kafkax.LoadConfig(l, "dialer"),
		HTTPAddr:              l.String("DIALER_HTTP_ADDR", DefaultHTTPAddr),
		RegistryPath:          l.String("DIALSTREAM_REGISTRY", ""),
		LiveKitURL:            l.String("LIVEKIT_URL", ""),
		LiveKitAPIKey:         l.String("LIVEKIT_API_KEY", ""),
		LiveKitAPISecret:      l.String("LIVEKIT_API_SECRET", ""),
		Group:                 l.String("DIALER_GROUP", DefaultGroup),
		MaxQueuedPerPartition: l.Int("DIALER_MAX_QUEUED_PER_PARTITION", DefaultMaxQueuedPerPartition, 1, 10_000_000),
		WatchdogInterval:      l.Duration("DIALER_WATCHDOG_INTERVAL", DefaultWatchdogInterval, 10*time.Millisecond, time.Hour),
		WatchdogGrace:         l.Duration("DIALER_WATCHDOG_GRACE", DefaultWatchdogGrace, 0, time.Hour),
		RoomCheckInterval:     l.Duration("DIALER_ROOM_CHECK_INTERVAL", DefaultRoomCheckInterval, 10*time.Millisecond, 24*time.Hour),
		MaxQueueWait:          l.Duration("DIALER_MAX_QUEUE_WAIT", DefaultMaxQueueWait, time.Second, 30*24*time.Hour),
		EndedRetention:        l.Duration("DIALER_ENDED_RETENTION", DefaultEndedRetention, time.Second, 30*24*time.Hour),
		DrainTimeout:          l.Duration("DIALER_DRAIN_TIMEOUT", DefaultDrainTimeout, 0, time.Hour),
	}
	return c
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	l := envconfig.FromMap(nil)
	c.Kafka.Validate(l)
	if c.Registry == nil && c.RegistryPath == "" {
		l.Fail("DIALSTREAM_REGISTRY", "required (path of the workspace/agent registry file)")
	}
	if c.liveKit == nil {
		if c.LiveKitURL == "" {
			l.Fail("LIVEKIT_URL", "required")
		}
		if c.LiveKitAPIKey == "" {
			l.Fail("LIVEKIT_API_KEY", "required")
		}
		if c.LiveKitAPISecret == "" {
			l.Fail("LIVEKIT_API_SECRET", "required")
		}
	}
	if c.HTTPAddr == "" {
		l.Fail("DIALER_HTTP_ADDR", "required")
	}
	if c.Group == "" {
		l.Fail("DIALER_GROUP", "required")
	}
	if c.MaxQueuedPerPartition < 1 {
		l.Fail("DIALER_MAX_QUEUED_PER_PARTITION", "must be >= 1, got %d", c.MaxQueuedPerPartition)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"DIALER_WATCHDOG_INTERVAL", c.WatchdogInterval}, {"DIALER_ROOM_CHECK_INTERVAL", c.RoomCheckInterval},
		{"DIALER_MAX_QUEUE_WAIT", c.MaxQueueWait}, {"DIALER_ENDED_RETENTION", c.EndedRetention}} {
		if d.v <= 0 {
			l.Fail(d.key, "must be > 0, got %s", d.v)
		}
	}
	if c.WatchdogGrace < 0 {
		l.Fail("DIALER_WATCHDOG_GRACE", "must be >= 0, got %s", c.WatchdogGrace)
	}
	if c.DrainTimeout < 0 {
		l.Fail("DIALER_DRAIN_TIMEOUT", "must be >= 0, got %s", c.DrainTimeout)
	}
	return l.Err()
}

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
	bg         sync.WaitGroup

	mu      sync.Mutex
	workers map[int32]*partition
	seeks   map[int32]int64
	joined  atomic.Bool
}

// Run runs the dialer until ctx ends, then leaves the group, waits up to
// DrainTimeout for dials in progress and returns.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("dialer: invalid config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = obs.NewRegistry()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
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
		kafkaOpts: base, workers: map[int32]*partition{}, dials: dialSet{m: map[string]*dialEntry{}, linger: max(cfg.WatchdogGrace, 5*time.Second)},
		busy: busySet{m: map[string]struct{}{}},
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

	d.adm = newAdmission(reg, d.totalParts, time.Now, d.writeAdmit)
	d.adm.onGauge = func(queued, live int) { m.queued.Set(float64(queued)); m.live.Set(float64(live)) }
	if err := registerWorkspaces(cfg.Metrics, reg, d.adm); err != nil {
		return fmt.Errorf("dialer: metrics: %w", err)
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("dialer: listen %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: d.handler(), ReadHeaderTimeout: 5 * time.Second}
	httpErr := make(chan error, 1)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			httpErr <- err
			stopRun()
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
		_ = srv.Close()
		return fmt.Errorf("dialer: kafka consumer: %w", err)
	}
	admDone := make(chan struct{})
	go d.adm.run(admDone)
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		m.followLag(runCtx, kadm.NewClient(d.prod), cfg.Group, []string{schemas.TopicRequested}, d.log)
	}()
	d.log.Info("dialer started", "http", ln.Addr().String(), "group", cfg.Group, "partitions", d.totalParts)

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

// checkTopics creates the call topics when configured to and checks that the
// requested and state topics are co-partitioned.
func (d *dialer) checkTopics(ctx context.Context) (int, error) {
	k := d.cfg.Kafka
	if k.CreateTopics {
		parts := k.Partitions
		if parts <= 0 {
			parts = 6
		}
		if err := kafkax.EnsureTopics(ctx, d.prod, k.ReplicationFactor, kafkax.CallTopics(parts)...); err != nil {
			return 0, fmt.Errorf("dialer: %w", err)
		}
	}
	details, err := kadm.NewClient(d.prod).ListTopics(ctx, schemas.TopicRequested, schemas.TopicState, schemas.TopicEvents, schemas.TopicRequestsDLQ)
	if err != nil {
		return 0, fmt.Errorf("dialer: list topics: %w", err)
	}
	n := -1
	for _, t := range []string{schemas.TopicRequested, schemas.TopicState, schemas.TopicEvents, schemas.TopicRequestsDLQ} {
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

func (d *dialer) shutdown(srv *http.Server, admDone chan struct{}) error {
	// Stop the partition owners and commit what they finished while this
	// process is still a member; then leave the group.
	d.mu.Lock()
	parts := make([]int32, 0, len(d.workers))
	for p := range d.workers {
		parts = append(parts, p)
	}
	d.mu.Unlock()
	d.stopWorkers(parts)
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
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	err := srv.Shutdown(sctx)
	d.cancelProd()
	d.log.Info("dialer stopped")
	return err
}

// dialSet tracks the dials of this process, so a cancel can stop one and
// the watchdog knows which dialing calls someone is waiting on. A finished
// dial lingers for a while: its result is on its way through Kafka.
type dialSet struct {
	mu     sync.Mutex
	m      map[string]*dialEntry
	linger time.Duration
}

type dialEntry struct {
	cancel   context.CancelFunc
	finished time.Time
}

func (s *dialSet) add(id string, cancel context.CancelFunc) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[id]; ok && (e.finished.IsZero() || time.Since(e.finished) < s.linger) {
		return false
	}
	s.m[id] = &dialEntry{cancel: cancel}
	return true
}

func (s *dialSet) finish(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[id]; e != nil {
		e.finished = time.Now()
	}
	for k, e := range s.m { // forget the long finished
		if !e.finished.IsZero() && time.Since(e.finished) > s.linger {
			delete(s.m, k)
		}
	}
}

// has reports a dial running here, or finished recently enough that its
// result may not have been applied yet.
func (s *dialSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	return ok && (e.finished.IsZero() || time.Since(e.finished) < s.linger)
}

func (s *dialSet) cancel(id string) {
	s.mu.Lock()
	var c context.CancelFunc
	if e := s.m[id]; e != nil && e.finished.IsZero() {
		c = e.cancel
	}
	s.mu.Unlock()
	if c != nil {
		c()
	}
}

func (s *dialSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.m {
		if e.finished.IsZero() {
			n++
		}
	}
	return n
}

// busySet keeps one background check per key at a time.
type busySet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

func (s *busySet) try(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		return false
	}
	s.m[key] = struct{}{}
	return true
}

func (s *busySet) done(key string) {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}
