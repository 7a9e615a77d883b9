package recorder

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/ops"
	"github.com/dialstream/dialstream/internal/registry"
)

// lagInterval is how often dialstream_recorder_lag_records is measured.
const lagInterval = 15 * time.Second

// Run records calls until ctx ends. It returns an error only when it
// cannot start (configuration, database, Kafka client, ops listener).
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = obs.NewRegistry()
	}
	reg := cfg.Registry
	if reg == nil {
		var err error
		if reg, err = registry.Load(cfg.RegistryPath); err != nil {
			return fmt.Errorf("recorder: %w", err)
		}
	}
	st := cfg.Store
	if st == nil {
		var err error
		st, err = callrecords.Open(ctx, cfg.DatabaseURL, callrecords.Options{Retention: cfg.Retention, Logger: cfg.Logger})
		if err != nil {
			return fmt.Errorf("recorder: %w", err)
		}
		defer st.Close()
	}
	m := newMetrics(cfg.Metrics)
	c := &consumer{st: st, reg: reg, group: cfg.GroupID, log: cfg.Logger, m: m, maxBatch: cfg.MaxBatchRecords,
		tracer: cfg.TracerProvider.Tracer("github.com/dialstream/dialstream/recorder"),
		next:   map[kafkax.TopicPartition]int64{}}

	opts, err := cfg.Kafka.ClientOpts()
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	opts = append(opts, c.groupOpts()...)
	opts = append(opts,
		kgo.SessionTimeout(cfg.Kafka.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, cfg.Kafka.SessionTimeout/3)),
		kgo.WithHooks(kprom.NewMetrics("dialstream_recorder", kprom.Subsystem("kafka"),
			kprom.Registerer(cfg.Metrics), kprom.Gatherer(cfg.Metrics))),
	)
	if cfg.Kafka.CreateTopics {
		if err := createTopics(ctx, cfg.Kafka); err != nil {
			return err
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("recorder: kafka client: %w", err)
	}
	c.cl = cl

	srv := &ops.Server{Addr: cfg.HTTPAddr, Listener: cfg.Listener, Metrics: cfg.Metrics,
		Ready: []ops.Check{st.Ping, c.ready}}
	served, err := srv.Start()
	if err != nil {
		cl.Close()
		return fmt.Errorf("recorder: %w", err)
	}
	cfg.Logger.Info("recorder: started", "http", srv.ListenAddr(), "group", cfg.GroupID, "database", string(st.Engine()),
		"retention", cfg.Retention.String())

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	ret := &retention{st: st, keep: cfg.Retention, interval: cfg.RetentionInterval, batch: cfg.DeleteBatch,
		now: time.Now, log: cfg.Logger, m: m}
	wg.Go(func() { c.run(rctx) })
	wg.Go(func() { ret.run(rctx) })
	wg.Go(func() { lagLoop(rctx, c, kadm.NewClient(cl)) })

	select {
	case <-ctx.Done():
	case err := <-served:
		cfg.Logger.Error("recorder: ops server stopped", "err", err)
	}
	stop()
	wg.Wait()
	// Close leaves the group at once (the partitions move to the other
	// members without waiting for the session timeout); the database
	// already holds every written batch's offsets.
	cl.Close()
	_ = srv.Shutdown(5 * time.Second)
	cfg.Logger.Info("recorder: stopped")
	return nil
}

func createTopics(ctx context.Context, k kafkax.Config) error {
	opts, err := k.ClientOpts()
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("recorder: kafka client: %w", err)
	}
	defer cl.Close()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := kafkax.CreateTopics(tctx, cl, k.TopicsConfig(), recordedTopics...); err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	return nil
}

func lagLoop(ctx context.Context, c *consumer, adm *kadm.Client) {
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := c.measureLag(mctx, adm); err != nil && ctx.Err() == nil {
			c.log.Debug("recorder: lag not measured", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
