package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// pollTimeout bounds one poll, so a stop is noticed promptly.
const pollTimeout = 250 * time.Millisecond

// scheduler is one running scheduler process.
type scheduler struct {
	cfg       Config
	log       *slog.Logger
	m         *metrics
	reg       *registry.Registry
	kafkaOpts []kgo.Opt
	prod      *kgo.Client
	cons      *kgo.Client

	mu     sync.Mutex
	owners map[int32]*owner
	joined atomic.Bool
}

// campaignTopics are the scheduler's own topics: it creates them (with
// KAFKA_CREATE_TOPICS) and checks they are co-partitioned.
var campaignTopics = []string{schemas.TopicCampaignCommands, schemas.TopicCampaignState}

// Run runs the scheduler until ctx ends: the campaign owner (group Group on
// the commands topic) and the outcome relay (group OutcomesGroup on the
// events topic). It returns an error only when it cannot start.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("scheduler: invalid config: %w", err)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = obs.NewRegistry()
	}
	reg := cfg.Registry
	if reg == nil {
		var err error
		if reg, err = registry.Load(cfg.RegistryPath); err != nil {
			return fmt.Errorf("scheduler: %w", err)
		}
	}
	base, err := cfg.Kafka.ClientOpts()
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	s := &scheduler{cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Metrics), reg: reg, kafkaOpts: base, owners: map[int32]*owner{}}

	// State records name their partition (the command's); everything else
	// goes by the murmur2 hash of its key, as every other producer's does,
	// so a released call and a client's cancel of it meet in one partition.
	prodOpts := append(append([]kgo.Opt{}, base...),
		kgo.ClientID(cfg.Kafka.ClientID+"-producer"),
		kgo.RecordPartitioner(kgo.BasicConsistentPartitioner(func(topic string) func(*kgo.Record, int) int {
			if topic == schemas.TopicCampaignState {
				return func(r *kgo.Record, _ int) int { return int(r.Partition) }
			}
			hash := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
			return func(r *kgo.Record, n int) int { return hash.Partition(r, n) }
		})),
		kgo.WithHooks(kprom.NewMetrics("dialstream_scheduler", kprom.Subsystem("kafka"),
			kprom.Registerer(cfg.Metrics), kprom.Gatherer(cfg.Metrics), kprom.WithClientLabel())),
	)
	if s.prod, err = kgo.NewClient(prodOpts...); err != nil {
		return fmt.Errorf("scheduler: kafka producer: %w", err)
	}
	defer s.prod.Close()
	if err := s.checkTopics(ctx); err != nil {
		return err
	}

	consOpts := append(append([]kgo.Opt{}, base...),
		kgo.ClientID(cfg.Kafka.ClientID+"-consumer"),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(schemas.TopicCampaignCommands),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Each owner commits its partition itself, after its writes.
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.WithHooks(kprom.NewMetrics("dialstream_scheduler", kprom.Subsystem("kafka"),
			kprom.Registerer(cfg.Metrics), kprom.Gatherer(cfg.Metrics), kprom.WithClientLabel())),
	)
	if st := cfg.Kafka.SessionTimeout; st > 0 {
		consOpts = append(consOpts, kgo.SessionTimeout(st), kgo.HeartbeatInterval(min(3*time.Second, st/4)))
	}
	if s.cons, err = kgo.NewClient(consOpts...); err != nil {
		return fmt.Errorf("scheduler: kafka consumer: %w", err)
	}
	rl, err := newRelay(cfg, base, s.m)
	if err != nil {
		s.cons.Close()
		return err
	}

	srv := &ops.Server{Addr: cfg.HTTPAddr, Listener: cfg.Listener, Metrics: cfg.Metrics,
		Ready: []ops.Check{s.inGroup, s.statesLoaded, rl.ready}}
	served, err := srv.Start()
	if err != nil {
		s.cons.Close()
		rl.cl.Close()
		return fmt.Errorf("scheduler: %w", err)
	}
	s.log.Info("scheduler: started", "http", srv.ListenAddr(), "group", cfg.Group, "outcomes_group", cfg.OutcomesGroup)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { rl.run(runCtx) })
	wg.Go(func() {
		s.m.followLag(runCtx, kadm.NewClient(s.prod), map[string]string{
			cfg.Group: schemas.TopicCampaignCommands, cfg.OutcomesGroup: schemas.TopicEvents}, s.log)
	})
	wg.Go(func() {
		select {
		case err := <-served:
			s.log.Error("scheduler: ops server stopped", "err", err)
			stop()
		case <-runCtx.Done():
		}
	})
	s.poll(runCtx)
	stop()
	wg.Wait()

	// Each owner committed what it wrote; stopping them ends their rounds
	// while this process is still a member, then it leaves the group.
	s.stopOwners(s.ownedPartitions())
	s.cons.CloseAllowingRebalance()
	rl.close()
	err = srv.Shutdown(5 * time.Second)
	s.log.Info("scheduler: stopped")
	return err
}

// checkTopics creates the scheduler's topics when configured to, and checks
// that the commands and state topics have the same partition count: an
// owner writes a campaign's state to the partition number of its commands.
func (s *scheduler) checkTopics(ctx context.Context) error {
	k := s.cfg.Kafka
	if k.CreateTopics {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		names := append([]string{schemas.TopicRequested, schemas.TopicEvents, schemas.TopicRequestsDLQ}, campaignTopics...)
		if err := kafkax.CreateTopics(tctx, s.prod, k.TopicsConfig(), names...); err != nil {
			return fmt.Errorf("scheduler: %w", err)
		}
	}
	details, err := kadm.NewClient(s.prod).ListTopics(ctx, campaignTopics...)
	if err != nil {
		return fmt.Errorf("scheduler: list topics: %w", err)
	}
	n := -1
	for _, t := range campaignTopics {
		td, ok := details[t]
		if !ok || td.Err != nil {
			return fmt.Errorf("scheduler: topic %s is not available: %v", t, td.Err)
		}
		if n == -1 {
			n = len(td.Partitions)
		} else if len(td.Partitions) != n {
			return fmt.Errorf("scheduler: topic %s has %d partitions, %s has %d: the campaign topics must be co-partitioned",
				t, len(td.Partitions), schemas.TopicCampaignCommands, n)
		}
	}
	return nil
}

// poll hands fetched commands to their partition's owner until ctx ends.
func (s *scheduler) poll(ctx context.Context) {
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, pollTimeout)
		fs := s.cons.PollRecords(pctx, 2000)
		cancel()
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			s.log.Warn("scheduler: fetch error", "topic", t, "partition", p, "err", err)
		})
		s.mu.Lock()
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if o := s.owners[ftp.Partition]; o != nil && len(ftp.Records) > 0 {
				o.push(ftp.Records)
			}
		})
		s.mu.Unlock()
		s.cons.AllowRebalance()
	}
}

func (s *scheduler) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	for _, p := range m[schemas.TopicCampaignCommands] {
		if _, ok := s.owners[p]; ok {
			continue
		}
		o := newOwner(s, p)
		s.owners[p] = o
		go o.run()
	}
	n := len(s.owners)
	s.mu.Unlock()
	s.joined.Store(true)
	s.m.partitions.Set(float64(n))
	if ps := m[schemas.TopicCampaignCommands]; len(ps) > 0 {
		s.log.Info("scheduler: partitions assigned", "partitions", ps)
	}
}

// revoked stops the owners of the partitions leaving this process; each
// finishes the round it is writing and has committed what it wrote, so the
// next owner loads their states and goes on from their offsets.
func (s *scheduler) revoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	ps := m[schemas.TopicCampaignCommands]
	s.stopOwners(ps)
	if len(ps) > 0 {
		s.log.Info("scheduler: partitions revoked", "partitions", ps)
	}
}

// lost is revoked when the group has moved on already: the owners' next
// fence fails, if they were writing at all.
func (s *scheduler) lost(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	s.revoked(ctx, cl, m)
}

func (s *scheduler) ownedPartitions() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := make([]int32, 0, len(s.owners))
	for p := range s.owners {
		ps = append(ps, p)
	}
	return ps
}

func (s *scheduler) stopOwners(ps []int32) {
	var stopping []*owner
	s.mu.Lock()
	for _, p := range ps {
		if o := s.owners[p]; o != nil {
			stopping = append(stopping, o)
			delete(s.owners, p)
		}
	}
	n := len(s.owners)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, o := range stopping {
		wg.Go(o.stop)
	}
	wg.Wait()
	s.m.partitions.Set(float64(n))
}

// inGroup is the readiness check that the group has assigned this process
// its partitions (none is an answer too).
func (s *scheduler) inGroup(context.Context) error {
	if !s.joined.Load() {
		return fmt.Errorf("joining consumer group %s", s.cfg.Group)
	}
	return nil
}

// statesLoaded is the readiness check that every owned partition's
// campaigns are loaded.
func (s *scheduler) statesLoaded(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, o := range s.owners {
		if !o.loaded.Load() {
			return fmt.Errorf("loading the campaigns of partition %d", p)
		}
	}
	return nil
}
