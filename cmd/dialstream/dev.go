package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"golang.org/x/sync/errgroup"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/livekitdev"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/ops"
	"github.com/dialstream/dialstream/internal/phonesim"
)

func init() {
	commands["dev"] = command{"run the whole pipeline locally: embedded broker, livekit-server, phone simulator, the reference agent and every service", runDev, true}
}

// Dev mode's fixed local addresses; each can be overridden by its service's
// own variable (INGEST_HTTP_ADDR, ...).
const (
	devIngestAddr    = "127.0.0.1:8080"
	devDialerAddr    = "127.0.0.1:8081"
	devNotifierAddr  = "127.0.0.1:8082"
	devRecorderAddr  = "127.0.0.1:8084"
	devAgentAddr     = "127.0.0.1:8085"
	devSchedulerAddr = "127.0.0.1:8086"
	// devReportSecret keys the dev agents' report tokens. Dev only: a
	// deployment sets its own DIALSTREAM_AGENT_REPORT_SECRET.
	devReportSecret = "dialstream-dev-agent-report-secret-not-for-production"
	// devAgentNames are the LiveKit agent names of deploy/dev/registry.yaml,
	// which the reference agent plays in dev mode.
	devAgentNames    = "dialstream-demo-agent,dialstream-other-agent"
	devInspectorAddr = "127.0.0.1:8090"
	devPhonesimAddr  = "127.0.0.1:7890"
	devLiveKitPort   = 7880
	devTrunkName     = "dialstream-dev"
)

// setDefault sets an environment variable for the services this process runs,
// unless the user set it: every default of dev mode can be overridden.
func setDefault(k, v string) {
	if _, ok := os.LookupEnv(k); !ok {
		_ = os.Setenv(k, v)
	}
}

func runDev(ctx context.Context, _ []string) error {
	l := envconfig.New()
	dataDir := l.String("DEV_DATA_DIR", ".data")
	lkPort := l.Int("DEV_LIVEKIT_PORT", devLiveKitPort, 0, 65535)
	dialLog := l.Int("PHONESIM_DIAL_LOG", phonesim.DefaultDialLog, 1, 10_000_000)
	log := loadLogger(l, "text")
	brokerCfg := loadBrokerConfig(l)
	if err := l.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}

	// Kafka: the embedded broker unless KAFKA_BROKERS points at a cluster.
	if os.Getenv("KAFKA_BROKERS") == "" {
		brokerCfg.DataDir = envOr("BROKER_DATA_DIR", filepath.Join(dataDir, "kafka"))
		b, err := kafkax.StartBroker(brokerCfg)
		if err != nil {
			return fmt.Errorf("dev: %w (is another `make run` still running?)", err)
		}
		defer b.Close()
		_ = os.Setenv("KAFKA_BROKERS", b.Addr())
		log.Info("embedded Kafka broker", "addr", b.Addr(), "data_dir", brokerCfg.DataDir)
	} else {
		log.Info("using Kafka cluster", "brokers", os.Getenv("KAFKA_BROKERS"))
	}

	// The same topic spec as production (`dialstream topics apply`), so dev
	// runs on the partitions, compaction and retention the services expect.
	var plan strings.Builder
	if err := topicsMain(ctx, []string{"apply", "-timeout", "30s"}, envconfig.New(), &plan); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(plan.String()), "\n")
	log.Info("topics applied", "result", lines[len(lines)-1])
	// The topics exist now, with the spec's configs: the services need not
	// create them again at start.
	setDefault("KAFKA_CREATE_TOPICS", "false")

	setDefault("DIALSTREAM_REGISTRY", "deploy/dev/registry.yaml")
	setDefault("INGEST_HTTP_ADDR", devIngestAddr)
	setDefault("DIALER_HTTP_ADDR", devDialerAddr)
	setDefault("NOTIFIER_HTTP_ADDR", devNotifierAddr)
	// The call records: one SQLite file the recorder writes and ingest reads.
	setDefault("DATABASE_URL", "sqlite://"+filepath.Join(dataDir, "records.db"))
	setDefault("RECORDER_HTTP_ADDR", devRecorderAddr)
	setDefault("SCHEDULER_HTTP_ADDR", devSchedulerAddr)
	// The reference agent takes every dev call and reports to ingest.
	setDefault("AGENT_HTTP_ADDR", devAgentAddr)
	setDefault("AGENT_NAMES", devAgentNames)
	setDefault("DIALER_AGENT_REPORT_URL", "http://"+os.Getenv("INGEST_HTTP_ADDR"))
	// Every dev service stops at once, ingest with them, so a report the
	// agent still holds at a Ctrl-C has nowhere to go: the agent's drain
	// (and with it its reports' retries) is 5 s here, not 30.
	setDefault("AGENT_DRAIN_TIMEOUT", "5s")
	setDefault("DIALSTREAM_AGENT_REPORT_SECRET", devReportSecret)
	// Dev callbacks go to the local inspector, so loopback must be allowed.
	setDefault("NOTIFIER_ALLOW_CIDRS", "127.0.0.0/8,::1/128")

	g, ctx := errgroup.WithContext(ctx)

	// LiveKit: a local livekit-server with the phone simulator, unless
	// LIVEKIT_URL points at a real deployment.
	if os.Getenv("LIVEKIT_URL") == "" {
		lkLog, err := os.OpenFile(filepath.Join(dataDir, "livekit-server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer lkLog.Close()
		startCtx, cancel := context.WithTimeout(ctx, time.Minute)
		lk, err := livekitdev.Start(startCtx, livekitdev.Config{
			Port:        lkPort,
			WebhookURLs: []string{"http://" + os.Getenv("DIALER_HTTP_ADDR") + "/livekit/webhook"},
			LogWriter:   lkLog,
			// Unset: an in-process miniredis. It keeps the name of every
			// key ever written (its WATCH versions), a few hundred bytes a
			// call, so a long run (`make soak`) gives a real Redis here.
			RedisAddr: os.Getenv("DEV_REDIS_ADDR"),
		})
		cancel()
		if err != nil {
			if errors.Is(err, livekitdev.ErrBinaryNotFound) {
				return fmt.Errorf("dev: %w: run `make livekit` (or `make run`, which does it) first", err)
			}
			return fmt.Errorf("dev: start livekit-server: %w", err)
		}
		defer lk.Close()
		_ = os.Setenv("LIVEKIT_URL", lk.URL())
		_ = os.Setenv("LIVEKIT_API_KEY", lk.APIKey())
		_ = os.Setenv("LIVEKIT_API_SECRET", lk.APISecret())
		log.Info("local livekit-server", "url", lk.URL(), "log", lkLog.Name())

		// pion logs every ICE hiccup at warn; dev mode shows only its errors.
		lksdk.SetLogger(phonesim.NewSDKLogger(obs.NewLogger(os.Stderr, "text", "error").With("component", "livekit-sdk")))
		sim, err := phonesim.Start(ctx, phonesim.Config{
			RedisAddr: lk.RedisAddr(), LiveKitURL: lk.URL(), APIKey: lk.APIKey(), APISecret: lk.APISecret(),
			HTTPAddr: envOr("PHONESIM_HTTP_ADDR", devPhonesimAddr), DialLog: dialLog, Logger: log.With("component", "phonesim"),
		})
		if err != nil {
			return fmt.Errorf("dev: start phone simulator: %w", err)
		}
		defer sim.Close()
		trunkCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		trunk, err := livekitdev.EnsureOutboundTrunk(trunkCtx, lk.URL(), lk.APIKey(), lk.APISecret(), devTrunkName,
			[]string{"+15550109999", "+15550108888"})
		cancel()
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		_ = os.Setenv("DIALSTREAM_DEV_SIP_TRUNK_ID", trunk)
		log.Info("phone simulator on the SIP bus", "dials", "http://"+sim.HTTPAddr()+"/dials", "trunk", trunk)
	}

	reg, err := startServices(ctx, g, log)
	if err != nil {
		return err
	}
	// The webhook inspector: dev callbacks land here, signatures checked. On
	// a listener of its own, not a route of the notifier's: a callback_url
	// names it, and nothing of it belongs in a production service.
	insp := &ops.Server{Addr: envOr("DEV_INSPECTOR_ADDR", devInspectorAddr), Routes: map[string]http.Handler{"/": newInspector(reg)}}
	g.Go(func() error {
		if err := serve(ctx, insp); err != nil {
			return fmt.Errorf("dev: webhook inspector: %w", err)
		}
		return nil
	})
	printBanner()
	err = g.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func printBanner() {
	inspector := envOr("DEV_INSPECTOR_ADDR", devInspectorAddr)
	fmt.Fprintf(os.Stderr, `
Dialstream is running. Place a call (the phone simulator answers +15550100200 as
a person; the reference agent greets Ada by name):

  curl -sS -X POST http://%s/v1/api/call \
    -H 'Content-Type: application/json' \
    -H 'x-workspace-id: ws_demo' \
    -H 'Authorization: Bearer dsk_demo_local' \
    -d '{"to":"+15550100200","call_agent_id":"a1b2c3d4e5f6a7b8c9d0e1f2","callback_url":"http://%s/hooks/ws_demo","dynamic_variables":{"firstName":"Ada","lastName":"Lovelace"},"metadata":{"crm_id":"42"}}'

Webhooks it sends arrive at http://%s/ ; dials at http://%s/dials .
`, os.Getenv("INGEST_HTTP_ADDR"), inspector, inspector, envOr("PHONESIM_HTTP_ADDR", devPhonesimAddr))
}
