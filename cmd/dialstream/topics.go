package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/notifier"
)

func init() {
	commands["topics"] = command{"manage the Kafka topics as code: apply|plan|wait|spec (KAFKA_*, NOTIFIER_RETRY_SCHEDULE)", runTopics, false}
}

const topicsUsage = `usage: dialstream topics <apply|plan|wait|spec>

  apply   create missing topics and set configs that differ from the spec;
          refuses (and changes nothing) when a partition count or
          replication factor differs
  plan    print what apply would change, change nothing
  wait    wait until every topic exists with its partition count
          (an init container's job: -timeout, default 5m)
  spec    print the spec

The spec is read from KAFKA_TOPIC_PARTITIONS, KAFKA_REPLICATION_FACTOR,
KAFKA_MIN_INSYNC_REPLICAS, KAFKA_TOPIC_RETENTION, KAFKA_DLQ_RETENTION and
NOTIFIER_RETRY_SCHEDULE; the connection from KAFKA_BROKERS, KAFKA_SASL_*,
KAFKA_TLS*.`

func runTopics(ctx context.Context, args []string) error {
	return topicsMain(ctx, args, envconfig.New(), os.Stdout)
}

func topicsMain(ctx context.Context, args []string, l *envconfig.Loader, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(topicsUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("topics "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	timeout := fs.Duration("timeout", 5*time.Minute, "how long wait waits; how long apply may take")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("topics %s: %w\n%s", sub, err, topicsUsage)
	}
	kcfg, tcfg := loadTopicsConfig(l)
	if sub != "spec" {
		kcfg.Validate(l)
	}
	if err := l.Err(); err != nil {
		return err
	}
	spec, err := kafkax.Topics(tcfg)
	if err != nil {
		return err
	}
	if sub == "spec" {
		return printTopicSpec(out, spec)
	}
	if sub != "apply" && sub != "plan" && sub != "wait" {
		return fmt.Errorf("topics: unknown subcommand %q\n%s", sub, topicsUsage)
	}

	opts, err := kcfg.ClientOpts()
	if err != nil {
		return err
	}
	// A short metadata cache: kadm's view of a topic this run just created
	// would otherwise stay "missing" for the default 5s.
	cl, err := kgo.NewClient(append(opts, kgo.MetadataMinAge(250*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("topics: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	if sub == "wait" {
		return waitTopics(ctx, adm, spec, out)
	}
	plan, err := kafkax.ApplyTopics(ctx, adm, spec, sub == "plan")
	if err != nil {
		return fmt.Errorf("topics %s: %w", sub, err)
	}
	printTopicPlan(out, plan)
	return nil
}

// loadTopicsConfig reads what the spec depends on. The retry topics come from
// the notifier's own parsing and validation of NOTIFIER_RETRY_SCHEDULE, read
// through a loader that sees nothing else: the rest of the notifier's config
// (its registry file, for one) is not the topics job's business.
func loadTopicsConfig(l *envconfig.Loader) (kafkax.Config, kafkax.TopicsConfig) {
	k := kafkax.LoadConfig(l, "topics")
	t := kafkax.LoadTopicsConfig(l, k)
	sched := envconfig.FromMap(map[string]string{"NOTIFIER_RETRY_SCHEDULE": l.Getenv("NOTIFIER_RETRY_SCHEDULE")})
	schedule := notifier.LoadConfig(sched).RetrySchedule
	if err := sched.Err(); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			if s, ok := strings.CutPrefix(e, "NOTIFIER_RETRY_SCHEDULE: "); ok {
				l.Fail("NOTIFIER_RETRY_SCHEDULE", "%s", s)
			}
		}
	}
	t.WebhookRetryTopics = webhookRetryTopics(schedule)
	return k, t
}

// webhookRetryTopics names the notifier's retry topic of each distinct delay
// of a retry schedule (the first step, 0s, is the first attempt, not a retry).
func webhookRetryTopics(schedule []time.Duration) map[string]time.Duration {
	m := map[string]time.Duration{}
	for i, d := range schedule {
		if i > 0 {
			m[notifier.RetryTopic(d)] = d
		}
	}
	return m
}

func printTopicPlan(out io.Writer, plan kafkax.TopicPlan) {
	if len(plan.Changes) == 0 {
		fmt.Fprintf(out, "topics: all %d topics match the spec; nothing to change\n", plan.Topics)
		return
	}
	for _, ch := range plan.Changes {
		fmt.Fprintln(out, ch.String())
	}
	created, altered := 0, 0
	for _, ch := range plan.Changes {
		if ch.Create {
			created++
		} else {
			altered++
		}
	}
	verb := "would create %d and alter %d of %d topics (plan only: nothing changed)\n"
	if plan.Applied {
		verb = "created %d and altered %d of %d topics\n"
	}
	fmt.Fprintf(out, "topics: "+verb, created, altered, plan.Topics)
}

func printTopicSpec(out io.Writer, spec []kafkax.Topic) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRF\tCLEANUP\tRETENTION\tMIN.ISR\tHOLDS")
	for _, t := range spec {
		rf := fmt.Sprint(t.ReplicationFactor)
		if t.ReplicationFactor < 0 {
			rf = "default"
		}
		retention := "-"
		if ms := t.Configs[kafkax.ConfigRetentionMs]; ms != "" {
			var n int64
			_, _ = fmt.Sscan(ms, &n)
			retention = (time.Duration(n) * time.Millisecond).String()
		}
		isr := t.Configs[kafkax.ConfigMinInsyncReplicas]
		if isr == "" {
			isr = "default"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Partitions, rf, t.Configs[kafkax.ConfigCleanupPolicy], retention, isr, t.Purpose)
	}
	return tw.Flush()
}

// waitTopics polls until every topic of the spec exists with its partition
// count. Config differences do not hold it: they are apply's to fix, and a
// service runs correctly while they are being fixed.
func waitTopics(ctx context.Context, adm *kadm.Client, spec []kafkax.Topic, out io.Writer) error {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	said := ""
	for {
		plan, err := kafkax.PlanTopics(ctx, adm, spec)
		if errors.Is(err, kafkax.ErrTopicsRefused) {
			return fmt.Errorf("topics wait: %w", err)
		}
		var missing []string
		for _, ch := range plan.Changes {
			if ch.Create {
				missing = append(missing, ch.Topic)
			}
		}
		if err == nil && len(missing) == 0 {
			fmt.Fprintf(out, "topics: all %d topics exist\n", plan.Topics)
			return nil
		}
		msg := fmt.Sprintf("topics: waiting for %s", strings.Join(missing, ", "))
		if err != nil {
			msg = fmt.Sprintf("topics: waiting for Kafka: %v", err)
		}
		if msg != said {
			fmt.Fprintln(out, msg)
			said = msg
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics wait: gave up: %s", strings.TrimPrefix(msg, "topics: "))
		case <-t.C:
		}
	}
}
