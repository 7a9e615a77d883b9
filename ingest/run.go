package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// topics are the topics ingest writes or follows: the call topics, the
// notifier's redelivery input (written by the redeliver route) and the
// do-not-call list (followed).
var topics = append(append([]string{}, kafkax.CallTopicNames...), schemas.TopicWebhookRedeliver, schemas.TopicSuppressions)

// Run serves the API until ctx is done, then stops taking connections, lets
// in-flight requests finish (bounded by cfg.ShutdownTimeout) and closes the
// Kafka client. It creates its topics first when cfg.Kafka.CreateTopics.
// The call-state routes read the call records database (cfg.Store, or
// cfg.DatabaseURL, opened and migrated here): nothing is loaded on start.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	log := cfg.Logger.With("component", "ingest")

	opts, err := kafkaOpts(cfg.Kafka, cfg.Metrics, cfg.TracerProvider)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("ingest: kafka client: %w", err)
	}
	defer cl.Close()
	if cfg.Kafka.CreateTopics {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := kafkax.CreateTopics(tctx, cl, cfg.Kafka.TopicsConfig(), topics...)
		cancel()
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
	}

	if cfg.Store == nil {
		st, err := openRecords(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		cfg.Store = st
	}
	h, err := newHandler(cfg, cl)
	if err != nil {
		return err
	}
	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	// The follower's own client goes without the kprom hooks: they would
	// register the producer's metric names a second time.
	fopts, err := kafkaOpts(cfg.Kafka, nil, cfg.TracerProvider)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	sf, err := compliance.FollowSuppressions(fopts, h.cfg.Suppressions, log)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	h.supWait = sf.WaitApplied
	sdone := make(chan struct{})
	go func() {
		defer close(sdone)
		if err := sf.Run(fctx); err != nil && fctx.Err() == nil {
			log.Error("suppression follower stopped; calls get 503 until restart", "error", err)
		}
	}()
	defer func() { stopFollow(); <-sdone }()

	// The event stream's reader: a client of its own, no kprom hooks (as
	// the follower's above), started by the first stream.
	h.events.feed = kafkaEvents(fopts)

	srv := &http.Server{
		Handler:           h.engine(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      cfg.Kafka.ProduceTimeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("ingest: listen: %w", err)
		}
	}
	log.Info("ingest listening", "addr", ln.Addr().String(), "brokers", cfg.Kafka.Brokers)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("ingest: serve: %w", err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	// Streams never finish by themselves: end them first, each with a
	// close message, or Shutdown would wait for them until its timeout.
	h.events.close()
	err = srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("ingest: requests still running after %s: %w", cfg.ShutdownTimeout, err)
	}
	// In-flight handlers have their answers; records whose client was told
	// 503 may still be pending and get their last chance here.
	if ferr := cl.Flush(sctx); ferr != nil && err == nil {
		err = fmt.Errorf("ingest: flush: %w", ferr)
	}
	log.Info("ingest stopped")
	return err
}
