// Package kafkax holds what every Dialstream service needs from Kafka: client
// options from the environment (brokers, SASL, TLS for managed Kafka), topic
// creation, and the embedded broker used by dev mode and tests.
package kafkax

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/dialstream/dialstream/internal/envconfig"
)

// Config says how to reach Kafka.
type Config struct {
	Brokers       []string
	ClientID      string
	SASLMechanism string // "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	SASLUsername  string
	SASLPassword  string
	TLS           bool
	TLSCAFile     string
	// Partitions is used when this service creates its topics. The requested
	// and state topics must share one partition count; see schemas.TopicState.
	Partitions        int
	ReplicationFactor int // -1: the broker's default
	CreateTopics      bool
	// ProduceTimeout bounds how long a produce may wait for acks=all before
	// the caller gives up (ingest answers 503 then).
	ProduceTimeout time.Duration
	// SessionTimeout of consumer group members; short in tests.
	SessionTimeout time.Duration

	// MinInsyncReplicas, Retention and DLQRetention shape the topics a
	// service creates itself (KAFKA_MIN_INSYNC_REPLICAS, KAFKA_TOPIC_RETENTION,
	// KAFKA_DLQ_RETENTION), so they match what `dialstream topics apply`
	// creates: see TopicsConfig, whose fields they fill.
	MinInsyncReplicas int
	Retention         time.Duration
	DLQRetention      time.Duration
}

// Defaults of Config, owned here so no service restates them.
const (
	DefaultPartitions        = 6
	DefaultReplicationFactor = -1 // the broker's default
	DefaultProduceTimeout    = 5 * time.Second
	DefaultSessionTimeout    = 10 * time.Second
)

// WithDefaults fills the zero values of a Config built in code (tests, dev
// mode); service names the default client id.
func (c Config) WithDefaults(service string) Config {
	if c.ClientID == "" {
		c.ClientID = "dialstream-" + service
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = DefaultProduceTimeout
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.Retention == 0 {
		c.Retention = DefaultTopicRetention
	}
	if c.DLQRetention == 0 {
		c.DLQRetention = DefaultDLQRetention
	}
	return c
}

// TopicsConfig is the part of the topic spec this Config decides; the
// notifier adds its retry topics.
func (c Config) TopicsConfig() TopicsConfig {
	c = c.WithDefaults("")
	return TopicsConfig{
		Partitions:        c.Partitions,
		ReplicationFactor: c.ReplicationFactor,
		MinInsyncReplicas: c.MinInsyncReplicas,
		Retention:         c.Retention,
		DLQRetention:      c.DLQRetention,
	}
}

// LoadConfig reads KAFKA_* variables. Brokers may be empty here: dev mode
// starts the embedded broker and fills them in; services check with Validate.
func LoadConfig(l *envconfig.Loader, service string) Config {
	c := Config{
		Brokers:           l.List("KAFKA_BROKERS", nil),
		ClientID:          l.String("KAFKA_CLIENT_ID", "dialstream-"+service),
		SASLMechanism:     l.OneOf("KAFKA_SASL_MECHANISM", "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
		SASLUsername:      l.String("KAFKA_SASL_USERNAME", ""),
		SASLPassword:      l.String("KAFKA_SASL_PASSWORD", ""),
		TLS:               l.Bool("KAFKA_TLS", false),
		TLSCAFile:         l.String("KAFKA_TLS_CA_FILE", ""),
		Partitions:        l.Int("KAFKA_TOPIC_PARTITIONS", DefaultPartitions, 1, 10000),
		ReplicationFactor: l.Int("KAFKA_REPLICATION_FACTOR", DefaultReplicationFactor, -1, 32),
		CreateTopics:      l.Bool("KAFKA_CREATE_TOPICS", true),
		ProduceTimeout:    l.Duration("KAFKA_PRODUCE_TIMEOUT", DefaultProduceTimeout, 100*time.Millisecond, 5*time.Minute),
		SessionTimeout:    l.Duration("KAFKA_SESSION_TIMEOUT", DefaultSessionTimeout, time.Second, 5*time.Minute),
		MinInsyncReplicas: l.Int("KAFKA_MIN_INSYNC_REPLICAS", 0, 0, 32),
		Retention:         l.Duration("KAFKA_TOPIC_RETENTION", DefaultTopicRetention, time.Hour, maxTopicRetention),
		DLQRetention:      l.Duration("KAFKA_DLQ_RETENTION", DefaultDLQRetention, time.Hour, maxTopicRetention),
	}
	if c.SASLMechanism != "" && (c.SASLUsername == "" || c.SASLPassword == "") {
		l.Fail("KAFKA_SASL_USERNAME", "required (with KAFKA_SASL_PASSWORD) when KAFKA_SASL_MECHANISM is set")
	}
	if c.TLSCAFile != "" {
		if _, err := os.Stat(c.TLSCAFile); err != nil {
			l.Fail("KAFKA_TLS_CA_FILE", "%v", err)
		}
	}
	return c
}

const maxTopicRetention = 10 * 365 * 24 * time.Hour

// TopicPartition names one partition of one topic (a map key).
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Validate reports what a service needs that is missing.
func (c Config) Validate(l *envconfig.Loader) {
	if len(c.Brokers) == 0 {
		l.Fail("KAFKA_BROKERS", "required (comma-separated host:port list)")
	}
}

// ClientOpts builds the franz-go options shared by producers and consumers:
// idempotent producer with acks=all (the franz-go default, spelled out because
// docs/architecture.md, "Invariant 1: durable before 2xx", depends on it).
func (c Config) ClientOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}
	if c.TLS || c.TLSCAFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLSCAFile != "" {
			pem, err := os.ReadFile(c.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka: read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka: %s holds no PEM certificate", c.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch c.SASLMechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha512Mechanism()))
	}
	return opts, nil
}
