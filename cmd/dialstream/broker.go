package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
)

func init() {
	commands["broker"] = command{"run the embedded Kafka-protocol broker (BROKER_LISTEN, BROKER_DATA_DIR)", runBroker, true}
}

func loadBrokerConfig(l *envconfig.Loader) kafkax.BrokerConfig {
	return kafkax.BrokerConfig{
		Listen:     l.String("BROKER_LISTEN", "127.0.0.1:9092"),
		Advertise:  l.String("BROKER_ADVERTISE", ""),
		DataDir:    l.String("BROKER_DATA_DIR", ".data/kafka"),
		SyncWrites: l.Bool("BROKER_SYNC_WRITES", true),
		Partitions: l.Int("KAFKA_TOPIC_PARTITIONS", 6, 1, 10000),
		// Tests lower it so consumer groups notice a killed member in seconds.
		MinSessionTimeout: l.Duration("BROKER_MIN_SESSION_TIMEOUT", 6*time.Second, 100*time.Millisecond, time.Hour),
	}
}

func runBroker(ctx context.Context, _ []string) error {
	l := envconfig.New()
	cfg := loadBrokerConfig(l)
	log := loadLogger(l, "json")
	profAddr := l.String(profilerAddrEnv, "")
	if err := l.Err(); err != nil {
		return err
	}
	if err := startProfiler(ctx, profAddr, log); err != nil {
		return err
	}
	b, err := kafkax.StartBroker(cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	log.Info("embedded broker listening", slog.String("addr", b.Addr()), slog.String("data_dir", cfg.DataDir),
		slog.Bool("sync_writes", cfg.SyncWrites))
	<-ctx.Done()
	log.Info("embedded broker stopping")
	return nil
}
