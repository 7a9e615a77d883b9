package kafkax

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/schemas"
)

// Topic configuration keys the spec manages. Keys not listed here are left
// as the cluster has them: the spec is not a full copy of every topic config.
const (
	ConfigCleanupPolicy     = "cleanup.policy"
	ConfigRetentionMs       = "retention.ms"
	ConfigMinInsyncReplicas = "min.insync.replicas"
)

// Defaults of TopicsConfig.
const (
	DefaultTopicRetention = 8 * 24 * time.Hour
	DefaultDLQRetention   = 30 * 24 * time.Hour
)

// TopicsConfig is what the topic spec depends on. cmd/dialstream fills it from
// the same variables the services read (KAFKA_TOPIC_PARTITIONS,
// KAFKA_REPLICATION_FACTOR, NOTIFIER_RETRY_SCHEDULE), so the topics that
// `dialstream topics apply` creates are the ones the services expect.
type TopicsConfig struct {
	// Partitions of every topic (KAFKA_TOPIC_PARTITIONS).
	Partitions int
	// ReplicationFactor of new topics; -1 takes the broker's default
	// (KAFKA_REPLICATION_FACTOR).
	ReplicationFactor int
	// MinInsyncReplicas is set on every topic; 0 derives it: 2 when the
	// replication factor is 3 or more, 1 below that, and left to the broker
	// when the replication factor is the broker's default
	// (KAFKA_MIN_INSYNC_REPLICAS).
	MinInsyncReplicas int
	// Retention of the command, event and log topics (KAFKA_TOPIC_RETENTION).
	Retention time.Duration
	// DLQRetention of the dead-letter topics: long, because an operator reads
	// and replays them by hand (KAFKA_DLQ_RETENTION).
	DLQRetention time.Duration
	// WebhookRetryTopics maps each notifier retry topic to the delay its
	// records wait there (notifier.RetryTopic of each distinct delay of
	// NOTIFIER_RETRY_SCHEDULE).
	WebhookRetryTopics map[string]time.Duration
}

// LoadTopicsConfig is k.TopicsConfig(): LoadConfig reads the spec's own
// variables with the rest of KAFKA_*; the retry topics come from the
// notifier's schedule (the caller adds WebhookRetryTopics).
func LoadTopicsConfig(_ *envconfig.Loader, k Config) TopicsConfig { return k.TopicsConfig() }

// Topic is one topic of the spec.
type Topic struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16 // -1: the broker's default
	// Configs are the managed configs, by key (see the Config* constants).
	Configs map[string]string
	// Purpose says in a few words what the topic holds, for the printed
	// plan and the docs.
	Purpose string
}

// Topics returns every topic of Dialstream with its partitions, replication
// and configs.
//
// Every topic has the same partition count. Every record is keyed (by call
// id; by workspace and URL on the endpoints topic; by workspace and number on
// the suppressions topic) and the dialer finds a call's state and commands
// by partition number, so the count can never change once records exist:
// more partitions would move keys and break per-call order and
// co-partitioning, and Kafka cannot remove partitions.
// ApplyTopics therefore refuses any partition change.
//
// A retry topic keeps its records for twice its delay plus Retention: a
// record is due after the delay lengthened by up to 100% jitter, and a
// notifier outage as long as Retention still loses nothing.
func Topics(c TopicsConfig) ([]Topic, error) {
	var errs []error
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("KAFKA_TOPIC_PARTITIONS: must be >= 1, got %d", c.Partitions))
	}
	if c.ReplicationFactor == 0 || c.ReplicationFactor < -1 {
		errs = append(errs, fmt.Errorf("KAFKA_REPLICATION_FACTOR: must be -1 (broker default) or >= 1, got %d", c.ReplicationFactor))
	}
	if c.Retention == 0 {
		c.Retention = DefaultTopicRetention
	}
	if c.DLQRetention == 0 {
		c.DLQRetention = DefaultDLQRetention
	}
	if c.Retention < time.Hour || c.DLQRetention < time.Hour {
		errs = append(errs, fmt.Errorf("KAFKA_TOPIC_RETENTION, KAFKA_DLQ_RETENTION: must be >= 1h, got %s and %s", c.Retention, c.DLQRetention))
	}
	isr := c.MinInsyncReplicas
	switch {
	case isr < 0:
		errs = append(errs, fmt.Errorf("KAFKA_MIN_INSYNC_REPLICAS: must be >= 0, got %d", isr))
	case isr == 0 && c.ReplicationFactor >= 3:
		isr = 2
	case isr == 0 && c.ReplicationFactor > 0:
		isr = 1
	case c.ReplicationFactor > 0 && isr > c.ReplicationFactor:
		errs = append(errs, fmt.Errorf("KAFKA_MIN_INSYNC_REPLICAS: %d is more than the replication factor %d: no write could ever succeed", isr, c.ReplicationFactor))
	}
	for name, d := range c.WebhookRetryTopics {
		if !strings.HasPrefix(name, schemas.TopicWebhookRetryPrefix) || d < 0 {
			errs = append(errs, fmt.Errorf("webhook retry topic %q (delay %s): must start with %s and have a delay >= 0", name, d, schemas.TopicWebhookRetryPrefix))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	p, rf := int32(c.Partitions), int16(c.ReplicationFactor)
	mk := func(name, purpose string, configs map[string]string) Topic {
		if isr > 0 {
			configs[ConfigMinInsyncReplicas] = strconv.Itoa(isr)
		}
		return Topic{Name: name, Partitions: p, ReplicationFactor: rf, Configs: configs, Purpose: purpose}
	}
	deleteAfter := func(d time.Duration) map[string]string {
		return map[string]string{ConfigCleanupPolicy: "delete", ConfigRetentionMs: strconv.FormatInt(d.Milliseconds(), 10)}
	}
	// Compacted topics keep the latest record per key for ever (tombstones
	// delete); retention.ms does not apply to them and is left alone.
	compact := func() map[string]string { return map[string]string{ConfigCleanupPolicy: "compact"} }

	ts := []Topic{
		mk(schemas.TopicRequested, "call commands (requests, cancels, dial results); dialer input", deleteAfter(c.Retention)),
		mk(schemas.TopicEvents, "call-lifecycle events; notifier input, ingest call state", deleteAfter(c.Retention)),
		mk(schemas.TopicState, "latest state per call (dialer)", compact()),
		mk(schemas.TopicRequestsDLQ, "invalid call commands", deleteAfter(c.DLQRetention)),
		mk(schemas.TopicWebhookRedeliver, "events to deliver again (replays)", deleteAfter(c.Retention)),
		mk(schemas.TopicWebhookDLQ, "events the notifier gave up on", deleteAfter(c.DLQRetention)),
		mk(schemas.TopicWebhookDeliveries, "log of every webhook attempt", deleteAfter(c.Retention)),
		mk(schemas.TopicWebhookEndpoints, "latest state per webhook endpoint (410 Gone)", compact()),
		mk(schemas.TopicSuppressions, "do-not-call lists: latest entry per workspace and number", compact()),
		mk(schemas.TopicCampaignCommands, "campaign commands (created, contacts, controls, outcomes) and scheduled calls; scheduler input", deleteAfter(c.Retention)),
		mk(schemas.TopicCampaignState, "latest state per campaign, contact and scheduled call (scheduler)", compact()),
	}
	retry := slices.SortedFunc(maps.Keys(c.WebhookRetryTopics), func(a, b string) int {
		return cmp.Or(cmp.Compare(c.WebhookRetryTopics[a], c.WebhookRetryTopics[b]), strings.Compare(a, b))
	})
	for _, name := range retry {
		d := c.WebhookRetryTopics[name]
		ts = append(ts, mk(name, "webhooks waiting "+d.String()+" for their next attempt", deleteAfter(2*d+c.Retention)))
	}
	return ts, nil
}

// TopicChange is one difference between the spec and the cluster.
type TopicChange struct {
	Topic string
	// Create is set when the topic does not exist.
	Create bool
	// Configs are the configs to set, by key, with the value they have now
	// (empty if unset) in Was.
	Configs map[string]string
	Was     map[string]string
}

func (c TopicChange) String() string {
	if c.Create {
		return "create " + c.Topic + " " + formatConfigs(c.Configs, nil)
	}
	return "alter  " + c.Topic + " " + formatConfigs(c.Configs, c.Was)
}

func formatConfigs(set, was map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(set)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + set[k])
		if was != nil {
			w := was[k]
			if w == "" {
				w = "unset"
			}
			b.WriteString(" (was " + w + ")")
		}
	}
	return b.String()
}

// TopicPlan is what ApplyTopics found and did.
type TopicPlan struct {
	// Topics is the number of topics in the spec.
	Topics int
	// Changes are the creates and config changes, in spec order.
	Changes []TopicChange
	// Applied is false on a dry run.
	Applied bool
}

// ErrTopicsRefused wraps the differences ApplyTopics will not fix: partition
// counts and replication factors.
var ErrTopicsRefused = errors.New("topics differ from the spec in ways apply does not change")

// PlanTopics compares the spec with the cluster. It returns ErrTopicsRefused
// (joined with every reason) when a topic's partition count or replication
// factor differs from the spec: those are never changed, see Topics.
func PlanTopics(ctx context.Context, adm *kadm.Client, spec []Topic) (TopicPlan, error) {
	plan := TopicPlan{Topics: len(spec)}
	names := make([]string, len(spec))
	for i, t := range spec {
		names[i] = t.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return plan, fmt.Errorf("kafka: list topics: %w", err)
	}
	var existing []string
	var refused []error
	for _, t := range spec {
		d, ok := details[t.Name]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			plan.Changes = append(plan.Changes, TopicChange{Topic: t.Name, Create: true, Configs: t.Configs})
			continue
		}
		if d.Err != nil {
			return plan, fmt.Errorf("kafka: describe topic %s: %w", t.Name, d.Err)
		}
		existing = append(existing, t.Name)
		if got := int32(len(d.Partitions)); got != t.Partitions {
			refused = append(refused, fmt.Errorf("topic %s has %d partitions, the spec %d: Dialstream's topics are keyed by call and "+
				"co-partitioned (the dialer finds a call's state by partition number), so adding partitions would move calls "+
				"and break their order, and Kafka cannot remove partitions; set KAFKA_TOPIC_PARTITIONS=%d, or move to new topics "+
				"(see deploy/README.md, Sizing)", t.Name, got, t.Partitions, got))
		}
		if rf := replicas(d); t.ReplicationFactor > 0 && rf != int(t.ReplicationFactor) {
			refused = append(refused, fmt.Errorf("topic %s has replication factor %d, the spec %d: changing it is a partition "+
				"reassignment (kafka-reassign-partitions.sh), which apply does not do", t.Name, rf, t.ReplicationFactor))
		}
	}
	if len(refused) > 0 {
		return plan, fmt.Errorf("%w:\n%w", ErrTopicsRefused, errors.Join(refused...))
	}
	if len(existing) == 0 {
		return plan, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, existing...)
	if err != nil {
		return plan, fmt.Errorf("kafka: describe topic configs: %w", err)
	}
	for _, t := range spec {
		rc, err := rcs.On(t.Name, nil)
		if err != nil {
			continue // created above
		}
		if rc.Err != nil {
			return plan, fmt.Errorf("kafka: describe configs of %s: %w", t.Name, rc.Err)
		}
		current := explicitConfigs(rc.Configs)
		ch := TopicChange{Topic: t.Name, Configs: map[string]string{}, Was: map[string]string{}}
		for k, want := range t.Configs {
			// A value equal to the spec but inherited from the broker's
			// default is set too: the topic must not change when the
			// broker's default does.
			if got, ok := current[k]; !ok || got != want {
				ch.Configs[k], ch.Was[k] = want, got
			}
		}
		if len(ch.Configs) > 0 {
			plan.Changes = append(plan.Changes, ch)
		}
	}
	return plan, nil
}

func replicas(d kadm.TopicDetail) int {
	for _, p := range d.Partitions {
		return len(p.Replicas)
	}
	return 0
}

// explicitConfigs returns the configs set on the topic itself.
func explicitConfigs(cs []kadm.Config) map[string]string {
	out := map[string]string{}
	for _, c := range cs {
		if c.Source == kmsg.ConfigSourceDynamicTopicConfig && c.Value != nil {
			out[c.Key] = *c.Value
		}
	}
	return out
}

// ApplyTopics makes the cluster match the spec: it creates missing topics
// with their configs and sets configs that differ (IncrementalAlterConfigs,
// so configs outside the spec stay as they are). It never changes a
// partition count or a replication factor: when one differs it changes
// nothing at all and returns ErrTopicsRefused. Running it again changes
// nothing. With dryRun it only plans.
//
// After applying it plans again until the cluster matches (metadata reaches
// every broker a little after a create), so a nil error means the topics are
// there as specified. kadm reads topic metadata through its client's cache:
// give that client a short kgo.MetadataMinAge (the default, 5s, is how long
// a just-created topic can look missing).
func ApplyTopics(ctx context.Context, adm *kadm.Client, spec []Topic, dryRun bool) (TopicPlan, error) {
	plan, err := PlanTopics(ctx, adm, spec)
	if err != nil || dryRun || len(plan.Changes) == 0 {
		return plan, err
	}
	byName := map[string]Topic{}
	for _, t := range spec {
		byName[t.Name] = t
	}
	for _, ch := range plan.Changes {
		t := byName[ch.Topic]
		if ch.Create {
			cfg := make(map[string]*string, len(t.Configs))
			for k, v := range t.Configs {
				cfg[k] = &v
			}
			resp, err := adm.CreateTopic(ctx, t.Partitions, t.ReplicationFactor, cfg, t.Name)
			if err == nil {
				err = resp.Err
			}
			// Created meanwhile by a service or another apply: the
			// verification below sets its configs.
			if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return plan, fmt.Errorf("kafka: create topic %s: %w%s", t.Name, err, errMessage(resp.ErrMessage))
			}
			continue
		}
		if err := alterConfigs(ctx, adm, ch.Topic, ch.Configs); err != nil {
			return plan, err
		}
	}
	plan.Applied = true
	return plan, verifyTopics(ctx, adm, spec)
}

func alterConfigs(ctx context.Context, adm *kadm.Client, topic string, set map[string]string) error {
	alters := make([]kadm.AlterConfig, 0, len(set))
	for _, k := range slices.Sorted(maps.Keys(set)) {
		v := set[k]
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
	}
	resps, err := adm.AlterTopicConfigs(ctx, alters, topic)
	if err != nil {
		return fmt.Errorf("kafka: alter configs of %s: %w", topic, err)
	}
	for _, r := range resps {
		if r.Err != nil {
			return fmt.Errorf("kafka: alter configs of %s: %w%s", topic, r.Err, errMessage(r.ErrMessage))
		}
	}
	return nil
}

func errMessage(m string) string {
	if m == "" {
		return ""
	}
	return " (" + m + ")"
}

// verifyTopics plans until nothing is left to do, fixing what a concurrent
// creator left without configs, for up to 30 seconds.
func verifyTopics(ctx context.Context, adm *kadm.Client, spec []Topic) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		plan, err := PlanTopics(ctx, adm, spec)
		if err == nil && len(plan.Changes) == 0 {
			return nil
		}
		if errors.Is(err, ErrTopicsRefused) {
			return err
		}
		if err == nil {
			for _, ch := range plan.Changes {
				if !ch.Create {
					if err = alterConfigs(ctx, adm, ch.Topic, ch.Configs); err != nil {
						break
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("%d differences left: %v", len(plan.Changes), plan.Changes)
			}
			return fmt.Errorf("kafka: topics do not match the spec after applying it: %w", err)
		case <-t.C:
		}
	}
}
