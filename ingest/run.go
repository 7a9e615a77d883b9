package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// Run serves the API until ctx is done, then stops taking connections, lets
// in-flight requests finish (bounded by cfg.ShutdownTimeout) and closes the
// Kafka client. It creates the Kafka topics first when cfg.Kafka.CreateTopics.
// The call state loads from Kafka in the background while the API already
// serves; /readyz turns 200 once it has loaded.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(true); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = obs.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = obs.NewLogger(os.Stderr, "json", "info")
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
		err := kafkax.EnsureTopics(tctx, cl, cfg.Kafka.ReplicationFactor, topics(cfg.Kafka.Partitions)...)
		cancel()
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
	}

	h, err := newHandler(cfg, cl)
	if err != nil {
		return err
	}
	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	f := h.follow(cl)
	go f.run(fctx)
	defer func() { stopFollow(); <-f.done }()
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

// topics are the topics ingest writes or follows: the call topics, the
// notifier's delivery log (followed) and redelivery input (written by
// redeliver). EnsureTopics leaves existing topics as they are.
func topics(partitions int) []kafkax.TopicSpec {
	p := int32(partitions)
	return append(kafkax.CallTopics(partitions),
		kafkax.TopicSpec{Name: schemas.TopicWebhookDeliveries, Partitions: p},
		kafkax.TopicSpec{Name: schemas.TopicWebhookRedeliver, Partitions: p})
}

// kafkaOpts are the client options of ingest's producer: kafkax's (acks=all,
// idempotent, no linger), a delivery timeout, franz-go's client metrics
// (dialstream_ingest_kafka_*) on the process registry when reg is not nil,
// and, when tp is not nil, kotel's produce tracing: every record written
// gets the traceparent of a publish span under the request's span.
func kafkaOpts(k kafkax.Config, reg *prometheus.Registry, tp trace.TracerProvider) ([]kgo.Opt, error) {
	opts, err := k.ClientOpts()
	if err != nil {
		return nil, err
	}
	// A record that cannot be acknowledged in time fails rather than waiting
	// for ever: its client was answered 503 and may retry. franz-go enforces
	// this only where it is safe for the idempotent producer's sequence
	// numbers, i.e. never on a request the broker may still be applying.
	opts = append(opts, kgo.RecordDeliveryTimeout(k.ProduceTimeout))
	// A retriable produce error (leader moved, not enough replicas) waits for
	// a metadata refresh, which franz-go spaces 5s apart by default: longer
	// than a request may wait. Refreshing up to 4 times per produce timeout
	// lets a retry land inside it, at the cost of more metadata requests
	// while the cluster is unhealthy.
	opts = append(opts, kgo.MetadataMinAge(max(100*time.Millisecond, min(time.Second, k.ProduceTimeout/4))))
	if reg != nil {
		opts = append(opts, kgo.WithHooks(kprom.NewMetrics("dialstream_ingest", kprom.Subsystem("kafka"),
			kprom.Registerer(reg), kprom.Gatherer(reg))))
	}
	if tp != nil {
		opts = append(opts, kgo.WithHooks(obs.KafkaProduceTracing(obs.KafkaTracer(tp, k.ClientID, ""))))
	}
	return opts, nil
}
