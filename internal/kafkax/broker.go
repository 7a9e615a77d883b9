package kafkax

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Listen is the host:port to bind ("127.0.0.1:9092"; port 0 picks one).
	Listen string
	// Advertise is the host:port clients are told to connect to; defaults to
	// the bound address. In a container it is the network alias ("broker:9092").
	Advertise string
	// DataDir makes the broker durable: it reloads its topics, records and
	// group offsets from here on start. Empty means in memory only.
	DataDir string
	// SyncWrites fsyncs every produced batch before acking it. Without it an
	// acked record can be lost if the machine (not just the process) crashes.
	SyncWrites bool
	// Partitions is the default partition count for auto-created topics.
	Partitions int
	// MinSessionTimeout lets tests use short consumer-group session timeouts.
	MinSessionTimeout time.Duration
}

// Broker is franz-go's kfake cluster run as one real Kafka-protocol broker.
// It is the same protocol a production cluster speaks, so the services' client
// code is the same in dev, tests and production.
type Broker struct {
	*kfake.Cluster
	addr string
}

// StartBroker starts the embedded broker.
func StartBroker(cfg BrokerConfig) (*Broker, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:9092"
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen port %q: %w", portStr, err)
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	opts := []kfake.Opt{
		kfake.Ports(port),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.AllowAutoTopicCreation(),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			// kfake binds 127.0.0.1 and advertises what it bound; bind where we
			// were told and advertise the reachable name instead.
			ln, err := net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				return nil, err
			}
			adv := cfg.Advertise
			if adv == "" {
				adv = ln.Addr().String()
			} else if _, p, _ := net.SplitHostPort(adv); p == "0" {
				ah, _, _ := net.SplitHostPort(adv)
				_, bp, _ := net.SplitHostPort(ln.Addr().String())
				adv = net.JoinHostPort(ah, bp)
			}
			return advertisedListener{ln, advAddr(adv)}, nil
		}),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	if cfg.MinSessionTimeout > 0 {
		opts = append(opts, kfake.GroupMinSessionTimeout(cfg.MinSessionTimeout))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: start: %w", err)
	}
	return &Broker{Cluster: c, addr: c.ListenAddrs()[0]}, nil
}

// Addr is the advertised host:port of the broker.
func (b *Broker) Addr() string { return b.addr }

type advAddr string

func (a advAddr) Network() string { return "tcp" }
func (a advAddr) String() string  { return string(a) }

type advertisedListener struct {
	net.Listener
	adv net.Addr
}

func (l advertisedListener) Addr() net.Addr { return l.adv }

func splitPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }
