package main

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/notifier"
)

// The spec names exactly the topics the services create for themselves
// (EnsureTopics with KAFKA_CREATE_TOPICS), for the default schedule and a
// custom one: `topics apply` and the services can never disagree on names.
func TestTopicSpecCoversServiceTopics(t *testing.T) {
	for _, schedule := range []string{"", "0s,1s,1s,90s,2h30m"} {
		_, tcfg := loadTopicsConfig(envconfig.FromMap(map[string]string{"NOTIFIER_RETRY_SCHEDULE": schedule}))
		spec, err := kafkax.Topics(tcfg)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, s := range spec {
			got[s.Name] = true
		}
		steps := notifier.DefaultRetrySchedule()
		if schedule != "" {
			steps = envconfig.FromMap(map[string]string{"S": schedule}).Durations("S", nil)
		}
		want := map[string]bool{}
		for _, s := range append(kafkax.CallTopics(6), notifier.Topics(6, steps)...) {
			want[s.Name] = true
		}
		if !maps.Equal(got, want) {
			t.Errorf("schedule %q: spec %v, services %v", schedule, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
	}
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

	if out := run("plan"); !strings.Contains(out, "would create 14 and alter 0 of 14 topics") {
		t.Errorf("plan on an empty cluster:\n%s", out)
	}
	out := run("apply")
	if !strings.Contains(out, "created 14 and altered 0 of 14 topics") ||
		!strings.Contains(out, "create dialstream.calls.state cleanup.policy=compact min.insync.replicas=1") {
		t.Errorf("first apply:\n%s", out)
	}
	if out := run("apply"); out != "topics: all 14 topics match the spec; nothing to change\n" {
		t.Errorf("second apply:\n%s", out)
	}
	if out := run("wait", "-timeout", "5s"); !strings.Contains(out, "all 14 topics exist") {
		t.Errorf("wait:\n%s", out)
	}
	// A longer retention is a config change, applied in place.
	env["KAFKA_TOPIC_RETENTION"] = "336h"
	if out := run("apply"); !strings.Contains(out, "alter  dialstream.calls.events retention.ms=1209600000 (was 604800000)") {
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
