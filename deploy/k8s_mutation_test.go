package deploy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Each check catches the mistake it is there for: the example overlay, broken
// one way at a time, must fail with the expected message.
func TestKubernetesChecksCatchMistakes(t *testing.T) {
	secretKeys := secretTemplateKeys(t)
	cases := []struct {
		name   string
		mutate func(b *bundle)
		want   string
	}{
		{"missing readiness probe", func(b *bundle) {
			b.deployments["dialstream-dialer"].Spec.Template.Spec.Containers[0].ReadinessProbe = nil
		}, "readinessProbe must GET /readyz"},
		{"no resources", func(b *bundle) {
			b.deployments["dialstream-notifier"].Spec.Template.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
		}, "no cpu request"},
		{"root filesystem writable", func(b *bundle) {
			f := false
			b.deployments["dialstream-ingest"].Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &f
		}, "readOnlyRootFilesystem true"},
		{"required variable missing", func(b *bundle) {
			for _, cm := range b.configMaps {
				delete(cm.Data, "LIVEKIT_URL")
			}
		}, "LIVEKIT_URL: required"},
		{"service on loopback", func(b *bundle) {
			for _, cm := range b.configMaps {
				delete(cm.Data, "NOTIFIER_HTTP_ADDR")
			}
		}, "listens on 127.0.0.1 only"},
		{"typo in a setting", func(b *bundle) {
			for _, cm := range b.configMaps {
				if _, ok := cm.Data["DIALER_DRAIN_TIMEOUT"]; ok {
					cm.Data["DIALER_DRAIN_TIMOUT"] = "1m"
				}
			}
		}, "[DIALER_DRAIN_TIMOUT] set but read by no Dialstream service"},
		{"registry variable missing", func(b *bundle) {
			for _, cm := range b.configMaps {
				delete(cm.Data, "DIALSTREAM_SIP_TRUNK_ID")
			}
		}, "referenced by the registry are not set: DIALSTREAM_SIP_TRUNK_ID"},
		{"webhook secret not given to the notifier", func(b *bundle) {
			c := &b.deployments["dialstream-notifier"].Spec.Template.Spec.Containers[0]
			c.Env = c.Env[1:]
		}, "workspace ws_acme has no webhook secret"},
		{"secret inline", func(b *bundle) {
			c := &b.deployments["dialstream-dialer"].Spec.Template.Spec.Containers[0]
			c.Env[1] = corev1.EnvVar{Name: "LIVEKIT_API_SECRET", Value: "hunter2"}
		}, "LIVEKIT_API_SECRET is given inline"},
		{"grace period too short", func(b *bundle) {
			g := int64(20)
			b.deployments["dialstream-dialer"].Spec.Template.Spec.TerminationGracePeriodSeconds = &g
		}, "terminationGracePeriodSeconds is 20s"},
		{"more replicas than partitions", func(b *bundle) {
			n := int32(12)
			b.scaled[0].Spec.MaxReplicaCount = &n
		}, "exceeds KAFKA_TOPIC_PARTITIONS=6"},
		{"wrong consumer group", func(b *bundle) {
			b.scaled[1].Spec.Triggers[0].Metadata["consumerGroup"] = "notifier"
		}, `consumerGroup "notifier", but the service's group is "dialstream-notifier"`},
		{"KEDA without SASL", func(b *bundle) {
			delete(b.scaled[0].Spec.Triggers[0].Metadata, "sasl")
		}, "the trigger needs sasl: scram_sha512"},
		{"replicas next to an autoscaler", func(b *bundle) {
			n := int32(3)
			b.deployments["dialstream-ingest"].Spec.Replicas = &n
		}, "sets replicas"},
		{"no PDB", func(b *bundle) { b.pdbs = b.pdbs[1:] }, "0 PodDisruptionBudgets select its pods"},
		{"latest image", func(b *bundle) {
			b.jobs["dialstream-topics"].Spec.Template.Spec.Containers[0].Image = "dialstream:latest"
		}, "is not pinned to a version"},
		{"webhook port open to all", func(b *bundle) {
			for _, np := range b.netpols {
				if np.Name == "dialstream-dialer-ingress" {
					np.Spec.Ingress[0].From = nil
				}
			}
		}, "admits everyone to the webhook port 8081"},
		{"notifier may reach private ranges", func(b *bundle) {
			for _, np := range b.netpols {
				if np.Name == "dialstream-notifier-egress-internet" {
					np.Spec.Egress[0].To[0].IPBlock.Except = np.Spec.Egress[0].To[0].IPBlock.Except[2:]
				}
			}
		}, "does not except 10.0.0.0/8"},
		{"no default deny", func(b *bundle) {
			b.netpols = deleteFunc(b.netpols, func(np *networkingv1.NetworkPolicy) bool { return np.Name == "dialstream-default-deny" })
		}, "no default-deny NetworkPolicy"},
		{"job names the rules do not know", func(b *bundle) {
			b.podMonitors[0].Spec.JobLabel = "app.kubernetes.io/component"
		}, `the alert rules and dashboards expect "dialstream-dialer"`},
		{"ingest and recorder keep records for different times", func(b *bundle) {
			c := &b.deployments["dialstream-ingest"].Spec.Template.Spec.Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "CALL_RECORDS_RETENTION", Value: "30d"})
		}, "CALL_RECORDS_RETENTION differs between ingest and the recorder (720h0m0s and 9600h0m0s)"},
		{"ingest without the call records", func(b *bundle) {
			c := &b.deployments["dialstream-ingest"].Spec.Template.Spec.Containers[0]
			c.Env = deleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "DATABASE_URL" })
		}, "DATABASE_URL: required"},
		{"recorder missing", func(b *bundle) { delete(b.deployments, "dialstream-recorder") }, "want 5 Deployments"},
		{"scheduler missing", func(b *bundle) { delete(b.deployments, "dialstream-scheduler") }, "want 5 Deployments"},
		{"recorder on another group than KEDA watches", func(b *bundle) {
			b.scaled[2].Spec.Triggers[0].Metadata["consumerGroup"] = "recorder"
		}, `consumerGroup "recorder", but the service's group is "dialstream-recorder"`},
		{"no egress to PostgreSQL", func(b *bundle) {
			b.netpols = deleteFunc(b.netpols, func(np *networkingv1.NetworkPolicy) bool { return np.Name == "dialstream-egress-postgres" })
		}, "Deployment dialstream-recorder: no egress rule for PostgreSQL's port 5432"},
		{"scheduler without its ScaledObject", func(b *bundle) {
			b.scaled = deleteFunc(b.scaled, func(so *scaledObject) bool { return so.Name == "dialstream-scheduler" })
		}, "Deployment dialstream-scheduler: scaled by [], want exactly one autoscaler"},
		{"scheduler scaled on the outcome relay's group", func(b *bundle) {
			scaledNamed(b, "dialstream-scheduler").Spec.Triggers[0].Metadata["consumerGroup"] = "dialstream-scheduler-outcomes"
		}, `consumerGroup "dialstream-scheduler-outcomes", but the service's group is "dialstream-scheduler"`},
		{"scheduler scaled past the partitions", func(b *bundle) {
			n := int32(7)
			scaledNamed(b, "dialstream-scheduler").Spec.MaxReplicaCount = &n
		}, "ScaledObject dialstream-scheduler: maxReplicaCount 7 exceeds KAFKA_TOPIC_PARTITIONS=6"},
		{"scheduler on loopback", func(b *bundle) {
			for _, cm := range b.configMaps {
				delete(cm.Data, "SCHEDULER_HTTP_ADDR")
			}
		}, "SCHEDULER_HTTP_ADDR: 127.0.0.1:8086 listens on 127.0.0.1 only"},
		{"scheduler open to everyone", func(b *bundle) {
			netpolNamed(b, "dialstream-scheduler-ingress").Spec.Ingress[0].From = nil
		}, "Deployment dialstream-scheduler: NetworkPolicy dialstream-scheduler-ingress admits everyone"},
		{"scheduler not scraped", func(b *bundle) {
			b.netpols = deleteFunc(b.netpols, func(np *networkingv1.NetworkPolicy) bool { return np.Name == "dialstream-scheduler-ingress" })
		}, "Deployment dialstream-scheduler: no NetworkPolicy lets Prometheus reach its metrics port 8086"},
		{"scheduler may reach PostgreSQL", func(b *bundle) {
			sel := &netpolNamed(b, "dialstream-egress-postgres").Spec.PodSelector.MatchExpressions[0]
			sel.Values = append(sel.Values, "dialstream-scheduler")
		}, "Deployment dialstream-scheduler: NetworkPolicy dialstream-egress-postgres opens egress on port 5432"},
		{"no Kafka egress", func(b *bundle) {
			b.netpols = deleteFunc(b.netpols, func(np *networkingv1.NetworkPolicy) bool { return np.Name == "dialstream-egress-dns-kafka" })
		}, "no egress rule for Kafka's port 9096"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := render(t, "k8s/overlays/example")
			tc.mutate(b)
			errs := check(t, b, secretKeys)
			for _, e := range errs {
				if strings.Contains(e, tc.want) {
					return
				}
			}
			t.Errorf("want a problem saying %q, got %q", tc.want, errs)
		})
	}

	// Strict decoding: a misspelled or misplaced field is an error.
	for _, j := range []string{
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replica":2}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"Replicas":2}}`,
		`{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","metadata":{"name":"x"},"spec":{"maxReplicas":2}}`,
	} {
		obj, _ := newObject(strings.Split(j, `"`)[3], strings.Split(j, `"`)[7])
		if err := decodeStrict([]byte(j), obj); err == nil {
			t.Errorf("decoded without error: %s", j)
		}
	}
}

func scaledNamed(b *bundle, name string) *scaledObject {
	for _, so := range b.scaled {
		if so.Name == name {
			return so
		}
	}
	panic("no ScaledObject " + name)
}

func netpolNamed(b *bundle, name string) *networkingv1.NetworkPolicy {
	for _, np := range b.netpols {
		if np.Name == name {
			return np
		}
	}
	panic("no NetworkPolicy " + name)
}

func deleteFunc[T any](s []T, del func(T) bool) []T {
	var out []T
	for _, v := range s {
		if !del(v) {
			out = append(out, v)
		}
	}
	return out
}
