package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
)

// Services that create their own topics (KAFKA_CREATE_TOPICS, the default)
// make them exactly as `dialstream topics apply` would: every topic of the
// spec, none else, with the spec's partitions, retention, compaction and
// min.insync.replicas, for a custom retry schedule too. So a cluster first
// touched by a service needs no apply afterwards.
func TestServiceTopicsMatchTheSpec(t *testing.T) {
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	reg := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(reg, []byte("workspaces:\n  - id: ws_a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"KAFKA_BROKERS": b.Addr(), "KAFKA_TOPIC_PARTITIONS": "3", "KAFKA_REPLICATION_FACTOR": "1",
		"NOTIFIER_RETRY_SCHEDULE": "0s,1s,1s,90s,2h30m", "DIALSTREAM_REGISTRY": reg, "LOG_LEVEL": "error",
		"INGEST_HTTP_ADDR": "127.0.0.1:0", "DIALER_HTTP_ADDR": "127.0.0.1:0", "NOTIFIER_HTTP_ADDR": "127.0.0.1:0",
		"RECORDER_HTTP_ADDR": "127.0.0.1:0", "SCHEDULER_HTTP_ADDR": "127.0.0.1:0", "DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "records.db"),
		"LIVEKIT_URL": "http://127.0.0.1:1", "LIVEKIT_API_KEY": "key", "LIVEKIT_API_SECRET": "secret",
		"AGENT_NAMES": "test-agent", "AGENT_HTTP_ADDR": "127.0.0.1:0",
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan error, len(services))
	var running sync.WaitGroup
	for _, s := range services {
		running.Go(func() { exited <- fmt.Errorf("%s: %w", s.name, runService(ctx, s, envconfig.FromMap(env))) })
	}
	defer func() {
		cancel()
		running.Wait()
	}()

	testutil.EventuallyWhy(t, 20*time.Second, "the services' topics to be the spec's", func() (bool, string) {
		select {
		case err := <-exited:
			t.Fatalf("a service exited: %v", err)
		default:
		}
		var plan bytes.Buffer
		if err := topicsMain(ctx, []string{"plan", "-timeout", "5s"}, envconfig.FromMap(env), &plan); err != nil {
			return false, err.Error()
		}
		// Nothing to alter, and only those to create.
		var create []string
		for _, line := range strings.Split(plan.String(), "\n") {
			if strings.HasPrefix(line, "alter ") {
				return false, plan.String()
			}
			if c, ok := strings.CutPrefix(line, "create "); ok {
				create = append(create, strings.Fields(c)[0])
			}
		}
		return len(create) == 0, plan.String()
	})
}

// specSize is the number of topics in the spec env configures.
func specSize(t *testing.T, env map[string]string) int {
	t.Helper()
	_, tcfg := loadTopicsConfig(envconfig.FromMap(env))
	spec, err := kafkax.Topics(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	return len(spec)
}

func TestTopicsCommand(t *testing.T) {
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	env := map[string]string{"KAFKA_BROKERS": b.Addr(), "KAFKA_TOPIC_PARTITIONS": "3", "KAFKA_REPLICATION_FACTOR": "1"}
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var out bytes.Buffer
		if err := topicsMain(ctx, args, envconfig.FromMap(env), &out); err != nil {
			t.Fatalf("topics %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	n := specSize(t, env)

	if out := run("plan"); !strings.Contains(out, fmt.Sprintf("would create %d and alter 0 of %d topics", n, n)) {
		t.Errorf("plan on an empty cluster:\n%s", out)
	}
	out := run("apply")
	if !strings.Contains(out, fmt.Sprintf("created %d and altered 0 of %d topics", n, n)) ||
		!strings.Contains(out, "create dialstream.calls.state cleanup.policy=compact min.insync.replicas=1") {
		t.Errorf("first apply:\n%s", out)
	}
	if out := run("apply"); out != fmt.Sprintf("topics: all %d topics match the spec; nothing to change\n", n) {
		t.Errorf("second apply:\n%s", out)
	}
	if out := run("wait", "-timeout", "5s"); !strings.Contains(out, fmt.Sprintf("all %d topics exist", n)) {
		t.Errorf("wait:\n%s", out)
	}
	// A longer retention is a config change, applied in place.
	env["KAFKA_TOPIC_RETENTION"] = "336h"
	if out := run("apply"); !strings.Contains(out, "alter  dialstream.calls.events retention.ms=1209600000 (was 691200000)") {
		t.Errorf("apply after a retention change:\n%s", out)
	}

	// More partitions: refused, with what to do.
	env["KAFKA_TOPIC_PARTITIONS"] = "6"
	var buf bytes.Buffer
	err = topicsMain(context.Background(), []string{"apply"}, envconfig.FromMap(env), &buf)
	if err == nil || !strings.Contains(err.Error(), "KAFKA_TOPIC_PARTITIONS=3") {
		t.Errorf("apply with more partitions: %v", err)
	}
}

func TestTopicsCommandConfigErrors(t *testing.T) {
	err := topicsMain(context.Background(), []string{"apply"}, envconfig.FromMap(map[string]string{
		"NOTIFIER_RETRY_SCHEDULE": "5s,1m", "KAFKA_MIN_INSYNC_REPLICAS": "-1",
	}), &bytes.Buffer{})
	for _, want := range []string{"KAFKA_BROKERS: required", "NOTIFIER_RETRY_SCHEDULE: the first step must be 0s", "KAFKA_MIN_INSYNC_REPLICAS"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
	// spec needs no broker.
	var out bytes.Buffer
	if err := topicsMain(context.Background(), []string{"spec"}, envconfig.FromMap(nil), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "dialstream.webhooks.retry.10h") {
		t.Errorf("spec:\n%s", out.String())
	}
}
