package deploy

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The Kubernetes manifests are checked offline: every kustomization under
// k8s/ is rendered with Kustomize's Go API (what `kubectl kustomize` runs),
// every rendered object is decoded strictly (unknown or misspelled fields,
// duplicate keys and wrong case are errors) into its real Go API type, and
// then the objects are checked against each other and against the code.

const secretName = "dialstream-secrets"

// newObject returns the Go type of an apiVersion/kind; anything else in the
// manifests is an error, so a new kind gets a type here before it ships.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1/Namespace":
		return &corev1.Namespace{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "batch/v1/Job":
		return &batchv1.Job{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}, true
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, true
	case "keda.sh/v1alpha1/ScaledObject":
		return &scaledObject{}, true
	case "keda.sh/v1alpha1/TriggerAuthentication":
		return &triggerAuthentication{}, true
	case "monitoring.coreos.com/v1/PodMonitor":
		return &monitoringv1.PodMonitor{}, true
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	}
	return nil, false
}

// decodeStrict decodes JSON as the API server's strict field validation
// does: unknown fields, duplicate fields and case-insensitive matches are
// errors.
func decodeStrict(j []byte, into any) error {
	strict, err := sigsjson.UnmarshalStrict(j, into, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// bundle is one rendered kustomization, by kind and name.
type bundle struct {
	deployments   map[string]*appsv1.Deployment
	jobs          map[string]*batchv1.Job
	configMaps    map[string]*corev1.ConfigMap
	services      map[string]*corev1.Service
	accounts      map[string]*corev1.ServiceAccount
	pdbs          []*policyv1.PodDisruptionBudget
	hpas          []*autoscalingv2.HorizontalPodAutoscaler
	scaled        []*scaledObject
	triggerAuths  map[string]*triggerAuthentication
	netpols       []*networkingv1.NetworkPolicy
	podMonitors   []*monitoringv1.PodMonitor
	ingresses     []*networkingv1.Ingress
	secretObjects []string
}

func kustomizations(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir("k8s", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(p))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 2 {
		t.Fatalf("found kustomizations %v, want the base and an overlay", dirs)
	}
	return dirs
}

func render(t *testing.T, dir string) *bundle {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := &bundle{
		deployments: map[string]*appsv1.Deployment{}, jobs: map[string]*batchv1.Job{}, configMaps: map[string]*corev1.ConfigMap{},
		services: map[string]*corev1.Service{}, accounts: map[string]*corev1.ServiceAccount{}, triggerAuths: map[string]*triggerAuthentication{},
	}
	for _, r := range m.Resources() {
		id := r.GetApiVersion() + " " + r.GetKind() + " " + r.GetName()
		obj, ok := newObject(r.GetApiVersion(), r.GetKind())
		if !ok {
			t.Errorf("%s: no Go type known for this kind: add one to newObject", id)
			continue
		}
		j, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if err := decodeStrict(j, obj); err != nil {
			t.Errorf("%s does not decode strictly: %v", id, err)
			continue
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			b.deployments[o.Name] = o
		case *batchv1.Job:
			b.jobs[o.Name] = o
		case *corev1.ConfigMap:
			b.configMaps[o.Name] = o
		case *corev1.Service:
			b.services[o.Name] = o
		case *corev1.ServiceAccount:
			b.accounts[o.Name] = o
		case *corev1.Secret:
			b.secretObjects = append(b.secretObjects, o.Name)
		case *policyv1.PodDisruptionBudget:
			b.pdbs = append(b.pdbs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			b.hpas = append(b.hpas, o)
		case *scaledObject:
			b.scaled = append(b.scaled, o)
		case *triggerAuthentication:
			b.triggerAuths[o.Name] = o
		case *networkingv1.NetworkPolicy:
			b.netpols = append(b.netpols, o)
		case *monitoringv1.PodMonitor:
			b.podMonitors = append(b.podMonitors, o)
		case *networkingv1.Ingress:
			b.ingresses = append(b.ingresses, o)
		}
	}
	return b
}

// secretTemplateKeys are the keys of the user-created Secret, from
// k8s/secret.env.example.
func secretTemplateKeys(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("k8s/secret.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = true
		}
	}
	return keys
}

func TestKubernetesManifests(t *testing.T) {
	secretKeys := secretTemplateKeys(t)
	for _, dir := range kustomizations(t) {
		t.Run(filepath.ToSlash(dir), func(t *testing.T) {
			b := render(t, dir)
			if t.Failed() {
				return
			}
			for _, e := range check(t, b, secretKeys) {
				t.Error(e)
			}
		})
	}
}

type k8sChecker struct {
	t          *testing.T
	b          *bundle
	secretKeys map[string]bool
	// facts and env of each Deployment's service container, by Deployment.
	facts map[string]roleFacts
	env   map[string]map[string]string
	// all has the facts of every container.
	all  []roleFacts
	errs []string
}

func (c *k8sChecker) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// check runs every check of a rendered bundle and returns the problems.
func check(t *testing.T, b *bundle, secretKeys map[string]bool) []string {
	c := &k8sChecker{t: t, b: b, secretKeys: secretKeys, facts: map[string]roleFacts{}, env: map[string]map[string]string{}}
	c.checkNoSecrets()
	c.checkPods()
	if err := checkRecords(c.all); err != nil {
		c.errorf("%v", err)
	}
	c.checkAutoscaling()
	c.checkDisruptionBudgets()
	c.checkServices()
	c.checkMonitoring()
	c.checkNetworkPolicies()
	return c.errs
}

// Secrets are referenced, never part of the manifests.
func (c *k8sChecker) checkNoSecrets() {
	for _, s := range c.b.secretObjects {
		c.errorf("Secret %s is in the manifests: secrets are created by the user and referenced by name", s)
	}
	for name, cm := range c.b.configMaps {
		for k := range cm.Data {
			if secretLike.MatchString(k) {
				c.errorf("ConfigMap %s holds %s: secrets belong in the Secret %s", name, k, secretName)
			}
		}
	}
}

type podOwner struct {
	kind, name string
	labels     map[string]string
	spec       *corev1.PodSpec
}

func (c *k8sChecker) pods() []podOwner {
	var out []podOwner
	for _, name := range slices.Sorted(mapsKeys(c.b.deployments)) {
		d := c.b.deployments[name]
		out = append(out, podOwner{"Deployment", name, d.Spec.Template.Labels, &d.Spec.Template.Spec})
	}
	for _, name := range slices.Sorted(mapsKeys(c.b.jobs)) {
		j := c.b.jobs[name]
		out = append(out, podOwner{"Job", name, j.Spec.Template.Labels, &j.Spec.Template.Spec})
	}
	return out
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (c *k8sChecker) checkPods() {
	if len(c.b.deployments) != 5 || len(c.b.jobs) != 1 {
		c.errorf("want 5 Deployments (ingest, dialer, notifier, recorder, scheduler) and the topics Job, got %v and %v",
			slices.Sorted(mapsKeys(c.b.deployments)), slices.Sorted(mapsKeys(c.b.jobs)))
	}
	alsoKnown := map[string]bool{"GOMEMLIMIT": true} // read by the Go runtime
	for _, cm := range c.b.configMaps {
		for _, v := range cm.Data {
			for k := range registryKeys([]byte(v)) {
				alsoKnown[k] = true
			}
		}
	}
	for _, p := range c.pods() {
		where := p.kind + " " + p.name
		s := p.spec
		if s.ServiceAccountName == "" || c.b.accounts[s.ServiceAccountName] == nil {
			c.errorf("%s: serviceAccountName %q is not in the manifests", where, s.ServiceAccountName)
		}
		if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
			c.errorf("%s: automountServiceAccountToken must be false (Dialstream never calls the Kubernetes API)", where)
		}
		if sc := s.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			c.errorf("%s: pod securityContext needs runAsNonRoot and seccompProfile RuntimeDefault", where)
		}
		if p.labels["app.kubernetes.io/part-of"] != "dialstream" {
			c.errorf("%s: pods need the label app.kubernetes.io/part-of=dialstream (network policies select it)", where)
		}
		if p.kind == "Job" {
			j := c.b.jobs[p.name]
			if j.Spec.BackoffLimit == nil || s.RestartPolicy == corev1.RestartPolicyAlways {
				c.errorf("%s: needs a backoffLimit and restartPolicy OnFailure or Never", where)
			}
		}
		for i := range s.InitContainers {
			c.checkContainer(p, &s.InitContainers[i], true, alsoKnown)
		}
		if len(s.Containers) != 1 {
			c.errorf("%s: want one container, got %d", where, len(s.Containers))
		}
		for i := range s.Containers {
			c.checkContainer(p, &s.Containers[i], false, alsoKnown)
		}
	}
}

func (c *k8sChecker) checkContainer(p podOwner, ctr *corev1.Container, init bool, alsoKnown map[string]bool) {
	where := fmt.Sprintf("%s %s container %s", p.kind, p.name, ctr.Name)
	if err := checkImage(ctr.Image); err != nil {
		c.errorf("%s: %v", where, err)
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := ctr.Resources.Requests[res]; !ok {
			c.errorf("%s: no %s request", where, res)
		}
		if _, ok := ctr.Resources.Limits[res]; !ok {
			c.errorf("%s: no %s limit", where, res)
		}
	}
	if sc := ctr.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		c.errorf("%s: securityContext needs allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop ALL", where)
	}
	if len(ctr.Command) > 0 {
		c.errorf("%s: command overrides the image's entrypoint; give the subcommand in args", where)
	}
	r, err := roleOf(ctr.Args)
	if err != nil {
		c.errorf("%s: args: %v", where, err)
		return
	}
	switch {
	case init && (r != roleTopics || ctr.Args[1] != "wait"):
		c.errorf("%s: an init container should only wait for the topics (topics wait), got %v", where, ctr.Args)
	case p.kind == "Job" && (r != roleTopics || ctr.Args[1] != "apply"):
		c.errorf("%s: the Job runs topics apply, got %v", where, ctr.Args)
	case p.kind == "Deployment" && !init && r == roleTopics:
		c.errorf("%s: a Deployment runs a service, got %v", where, ctr.Args)
	}

	env, errs := c.containerEnv(p.spec, ctr)
	facts, lerrs := loadRole(c.t, r, env)
	for _, err := range append(errs, lerrs...) {
		c.errorf("%s (%s): %v", where, r, err)
	}
	if u := unknownKeys(env.vars, alsoKnown); len(u) > 0 {
		c.errorf("%s: %v set but read by no Dialstream service (typo? removed setting?)", where, u)
	}
	if r == roleScheduler && !init {
		c.checkMemoryLimit(where, ctr, env.vars["GOMEMLIMIT"])
	}
	c.all = append(c.all, facts)
	if init || p.kind != "Deployment" {
		return
	}
	c.facts[p.name], c.env[p.name] = facts, env.vars

	// Probes on the port the service listens on.
	var httpPort int32
	for _, cp := range ctr.Ports {
		if cp.Name == "http" {
			httpPort = cp.ContainerPort
		}
	}
	if httpPort == 0 || int(httpPort) != facts.httpPort {
		c.errorf("%s: container port \"http\" is %d, the service listens on %d", where, httpPort, facts.httpPort)
	}
	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", ctr.ReadinessProbe, "/readyz"}, {"livenessProbe", ctr.LivenessProbe, "/healthz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil || pr.probe.HTTPGet.Path != pr.path ||
			(pr.probe.HTTPGet.Port.StrVal != "http" && pr.probe.HTTPGet.Port.IntVal != httpPort) {
			c.errorf("%s: %s must GET %s on the http port", where, pr.name, pr.path)
		}
	}
	// Long enough for in-flight work to hand over.
	var preStop time.Duration
	if ctr.Lifecycle != nil && ctr.Lifecycle.PreStop != nil && ctr.Lifecycle.PreStop.Sleep != nil {
		preStop = time.Duration(ctr.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	grace := 30 * time.Second
	if p.spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*p.spec.TerminationGracePeriodSeconds) * time.Second
	}
	if need := preStop + facts.stopBound + 5*time.Second; grace < need {
		c.errorf("%s: terminationGracePeriodSeconds is %s; preStop %s + the service's shutdown bound %s + 5s margin needs %s",
			where, grace, preStop, facts.stopBound, need)
	}
}

// checkImage requires a version tag (or a digest): never latest, never
// untagged.
func checkImage(image string) error {
	if strings.Contains(image, "@sha256:") {
		return nil
	}
	_, tag, hasTag := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
	switch {
	case !hasTag || tag == "" || tag == "latest":
		return fmt.Errorf("image %q is not pinned to a version", image)
	case !strings.ContainsAny(tag, "0123456789"):
		return fmt.Errorf("image %q: tag %q is not a version", image, tag)
	}
	return nil
}

// containerEnv resolves a container's environment the way the kubelet does,
// from the rendered ConfigMaps; values from the Secret are placeholders.
func (c *k8sChecker) containerEnv(s *corev1.PodSpec, ctr *corev1.Container) (containerEnv, []error) {
	env := containerEnv{vars: map[string]string{}, files: map[string][]byte{}}
	var errs []error
	for _, ef := range ctr.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := c.b.configMaps[ef.ConfigMapRef.Name]
			if !ok {
				errs = append(errs, fmt.Errorf("envFrom ConfigMap %s is not in the manifests", ef.ConfigMapRef.Name))
				continue
			}
			for k, v := range cm.Data {
				env.vars[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil:
			errs = append(errs, fmt.Errorf("envFrom Secret %s: reference each secret key by secretKeyRef, so every container shows which secrets it gets", ef.SecretRef.Name))
		}
	}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			env.vars[e.Name] = e.Value
			if secretLike.MatchString(e.Name) {
				errs = append(errs, fmt.Errorf("%s is given inline: take it from the Secret %s", e.Name, secretName))
			}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name != secretName || !c.secretKeys[ref.Key] {
				errs = append(errs, fmt.Errorf("%s: secretKeyRef %s/%s: use Secret %s and list the key in k8s/secret.env.example", e.Name, ref.Name, ref.Key, secretName))
			}
			env.vars[e.Name] = secretPlaceholder(ref.Key)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			v, ok := c.b.configMaps[ref.Name].Data[ref.Key]
			if !ok && (ref.Optional == nil || !*ref.Optional) {
				errs = append(errs, fmt.Errorf("%s: ConfigMap key %s/%s does not exist", e.Name, ref.Name, ref.Key))
			}
			env.vars[e.Name] = v
		default:
			env.vars[e.Name] = "1"
		}
	}
	for k := range env.vars {
		if secretLike.MatchString(k) && !slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool {
			return e.Name == k && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		}) {
			errs = append(errs, fmt.Errorf("%s does not come from the Secret %s", k, secretName))
		}
	}
	for _, vm := range ctr.VolumeMounts {
		i := slices.IndexFunc(s.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			errs = append(errs, fmt.Errorf("volumeMount %s: no such volume", vm.Name))
			continue
		}
		v := s.Volumes[i]
		if v.ConfigMap == nil {
			continue
		}
		cm, ok := c.b.configMaps[v.ConfigMap.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("volume %s: ConfigMap %s is not in the manifests", v.Name, v.ConfigMap.Name))
			continue
		}
		paths := map[string]string{}
		for k := range cm.Data {
			paths[k] = k
		}
		if len(v.ConfigMap.Items) > 0 {
			paths = map[string]string{}
			for _, it := range v.ConfigMap.Items {
				paths[it.Key] = it.Path
			}
		}
		for k, p := range paths {
			switch {
			case vm.SubPath == "":
				env.files[filepath.Join(vm.MountPath, p)] = []byte(cm.Data[k])
			case vm.SubPath == p:
				env.files[vm.MountPath] = []byte(cm.Data[k])
			}
		}
	}
	return env, errs
}

// Autoscaling: ingest on CPU (HPA), the consumer group services on their
// group's lag (KEDA), never past the partition count; a Deployment owned by
// an autoscaler leaves replicas out so an apply does not reset it.
func (c *k8sChecker) checkAutoscaling() {
	owners := map[string][]string{}
	for _, h := range c.b.hpas {
		ref := h.Spec.ScaleTargetRef
		owners[ref.Name] = append(owners[ref.Name], "HPA "+h.Name)
		if ref.Kind != "Deployment" || c.b.deployments[ref.Name] == nil {
			c.errorf("HPA %s targets %s %s, not a Deployment here", h.Name, ref.Kind, ref.Name)
			continue
		}
		cpu := slices.ContainsFunc(h.Spec.Metrics, func(m autoscalingv2.MetricSpec) bool {
			return m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU
		})
		if !cpu || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
			c.errorf("HPA %s: want a CPU metric and minReplicas >= 2", h.Name)
		}
	}
	for _, so := range c.b.scaled {
		where := "ScaledObject " + so.Name
		ref := so.Spec.ScaleTargetRef
		if ref == nil || (ref.Kind != "" && ref.Kind != "Deployment") || c.b.deployments[ref.Name] == nil {
			c.errorf("%s: scaleTargetRef %+v is not a Deployment here", where, ref)
			continue
		}
		owners[ref.Name] = append(owners[ref.Name], where)
		facts, env := c.facts[ref.Name], c.env[ref.Name]
		if facts.group == "" {
			c.errorf("%s: %s is not a consumer group service; scale it on CPU", where, ref.Name)
			continue
		}
		min, max := so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount
		if min == nil || *min < 1 {
			c.errorf("%s: minReplicaCount must be >= 1: the service never scales to zero", where)
		}
		if max == nil || int(*max) > facts.partitions {
			c.errorf("%s: maxReplicaCount %v exceeds KAFKA_TOPIC_PARTITIONS=%d: replicas past the partition count get no partition", where, ptrVal(max), facts.partitions)
		}
		if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
			c.errorf("%s: want one kafka trigger", where)
			continue
		}
		tr := so.Spec.Triggers[0]
		md := tr.Metadata
		if md["consumerGroup"] != facts.group {
			c.errorf("%s: consumerGroup %q, but the service's group is %q", where, md["consumerGroup"], facts.group)
		}
		if md["topic"] != facts.topic {
			c.errorf("%s: topic %q, want %q (the group's input)", where, md["topic"], facts.topic)
		}
		if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n < 1 {
			c.errorf("%s: lagThreshold %q", where, md["lagThreshold"])
		}
		if md["offsetResetPolicy"] != "earliest" {
			c.errorf("%s: offsetResetPolicy must be earliest, as the service's consumer resets to the start", where)
		}
		switch brokers := md["bootstrapServers"]; {
		case brokers != "" && brokers != env["KAFKA_BROKERS"]:
			c.errorf("%s: bootstrapServers %q differ from the service's KAFKA_BROKERS %q", where, brokers, env["KAFKA_BROKERS"])
		case brokers == "" && (md["bootstrapServersFromEnv"] == "" || env[md["bootstrapServersFromEnv"]] == ""):
			c.errorf("%s: bootstrapServersFromEnv %q is not in the target container's environment", where, md["bootstrapServersFromEnv"])
		}
		// KEDA must log in to Kafka as the service does.
		if mech := env["KAFKA_SASL_MECHANISM"]; mech != "" {
			want := map[string]string{"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}[mech]
			ta := (*triggerAuthentication)(nil)
			if tr.AuthenticationRef != nil {
				ta = c.b.triggerAuths[tr.AuthenticationRef.Name]
			}
			if md["sasl"] != want || ta == nil {
				c.errorf("%s: the service uses SASL %s; the trigger needs sasl: %s and an authenticationRef to a TriggerAuthentication here", where, mech, want)
			} else {
				params := map[string]bool{}
				for _, r := range ta.Spec.SecretTargetRef {
					params[r.Parameter] = true
					if r.Name != secretName || !c.secretKeys[r.Key] {
						c.errorf("TriggerAuthentication %s: %s from %s/%s, want a key of %s listed in k8s/secret.env.example", ta.Name, r.Parameter, r.Name, r.Key, secretName)
					}
				}
				if !params["username"] || !params["password"] {
					c.errorf("TriggerAuthentication %s: needs username and password", ta.Name)
				}
			}
		}
		if tls := env["KAFKA_TLS"] == "true"; tls != (md["tls"] == "enable") {
			c.errorf("%s: tls %q, but the service's KAFKA_TLS is %q", where, md["tls"], env["KAFKA_TLS"])
		}
	}
	for name, d := range c.b.deployments {
		if len(owners[name]) != 1 {
			c.errorf("Deployment %s: scaled by %v, want exactly one autoscaler", name, owners[name])
		}
		if d.Spec.Replicas != nil {
			c.errorf("Deployment %s: sets replicas; its autoscaler owns the count and every apply would reset it", name)
		}
	}
}

func ptrVal[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func selects(sel *metav1.LabelSelector, lbls map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(lbls))
}

func (c *k8sChecker) checkDisruptionBudgets() {
	for name, d := range c.b.deployments {
		n := 0
		for _, p := range c.b.pdbs {
			if selects(p.Spec.Selector, d.Spec.Template.Labels) {
				n++
			}
		}
		if n != 1 {
			c.errorf("Deployment %s: %d PodDisruptionBudgets select its pods, want 1", name, n)
		}
	}
	for _, p := range c.b.pdbs {
		if !slices.ContainsFunc(slices.Collect(mapsValues(c.b.deployments)), func(d *appsv1.Deployment) bool { return selects(p.Spec.Selector, d.Spec.Template.Labels) }) {
			c.errorf("PodDisruptionBudget %s selects no Deployment's pods", p.Name)
		}
	}
}

func mapsValues[V any](m map[string]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func (c *k8sChecker) podsOf(sel *metav1.LabelSelector) []podOwner {
	var out []podOwner
	for _, p := range c.pods() {
		if selects(sel, p.labels) {
			out = append(out, p)
		}
	}
	return out
}

func hasPort(p podOwner, name string) bool {
	for _, ctr := range p.spec.Containers {
		for _, cp := range ctr.Ports {
			if cp.Name == name {
				return true
			}
		}
	}
	return false
}

func (c *k8sChecker) checkServices() {
	for name, s := range c.b.services {
		pods := c.podsOf(&metav1.LabelSelector{MatchLabels: s.Spec.Selector})
		if len(pods) == 0 {
			c.errorf("Service %s selects no pods", name)
		}
		for _, sp := range s.Spec.Ports {
			for _, p := range pods {
				if sp.TargetPort.StrVal == "" || !hasPort(p, sp.TargetPort.StrVal) {
					c.errorf("Service %s: targetPort %s is not a named port of %s", name, sp.TargetPort.String(), p.name)
				}
			}
		}
	}
	for _, ing := range c.b.ingresses {
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				be := p.Backend.Service
				s, ok := c.b.services[be.Name]
				if !ok || !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == be.Port.Name || sp.Port == be.Port.Number }) {
					c.errorf("Ingress %s: backend %s:%v is not a Service port here", ing.Name, be.Name, be.Port)
				}
			}
		}
	}
}

func (c *k8sChecker) checkMonitoring() {
	if len(c.b.podMonitors) == 0 {
		c.errorf("no PodMonitor: Prometheus Operator would scrape nothing")
	}
	for name, d := range c.b.deployments {
		scraped := false
		for _, pm := range c.b.podMonitors {
			if !selects(&pm.Spec.Selector, d.Spec.Template.Labels) {
				continue
			}
			for _, ep := range pm.Spec.PodMetricsEndpoints {
				if ep.Port != nil && hasPort(podOwner{spec: &d.Spec.Template.Spec}, *ep.Port) && (ep.Path == "" || ep.Path == "/metrics") {
					scraped = true
				}
			}
		}
		if !scraped {
			c.errorf("Deployment %s: no PodMonitor endpoint scrapes /metrics on one of its ports", name)
		}
		// The rules and dashboards select on job="dialstream-<service>".
		want := "dialstream-" + strings.Join(d.Spec.Template.Spec.Containers[0].Args, "")
		for _, pm := range c.b.podMonitors {
			if selects(&pm.Spec.Selector, d.Spec.Template.Labels) && d.Spec.Template.Labels[pm.Spec.JobLabel] != want {
				c.errorf("PodMonitor %s: job of %s would be %q, the alert rules and dashboards expect %q (jobLabel)", pm.Name, name, d.Spec.Template.Labels[pm.Spec.JobLabel], want)
			}
		}
		if b, err := os.ReadFile("prometheus/prometheus.yml"); err == nil && !strings.Contains(string(b), "job_name: "+want) {
			c.errorf("job %s is not one deploy/prometheus/prometheus.yml defines", want)
		}
	}
}

// privateRanges are what the notifier must never reach (its SSRF guard's
// ranges, as far as a NetworkPolicy can say them).
var privateRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8", "100.64.0.0/10"}

func (c *k8sChecker) policiesFor(p podOwner, typ networkingv1.PolicyType) []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, np := range c.b.netpols {
		if selects(&np.Spec.PodSelector, p.labels) && slices.Contains(np.Spec.PolicyTypes, typ) {
			out = append(out, np)
		}
	}
	return out
}

func portsAllow(ports []networkingv1.NetworkPolicyPort, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	return slices.ContainsFunc(ports, func(p networkingv1.NetworkPolicyPort) bool {
		pr := corev1.ProtocolTCP
		if p.Protocol != nil {
			pr = *p.Protocol
		}
		return pr == proto && (p.Port == nil || p.Port.IntVal == port || (p.EndPort != nil && p.Port.IntVal <= port && port <= *p.EndPort))
	})
}

func (c *k8sChecker) checkNetworkPolicies() {
	denyAll := false
	for _, np := range c.b.netpols {
		if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/part-of"] == "dialstream" && len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 &&
			slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			denyAll = true
		}
	}
	if !denyAll {
		c.errorf("no default-deny NetworkPolicy (ingress and egress) for app.kubernetes.io/part-of=dialstream")
	}
	for _, p := range c.pods() {
		where := p.kind + " " + p.name
		egress := c.policiesFor(p, networkingv1.PolicyTypeEgress)
		var rules []networkingv1.NetworkPolicyEgressRule
		for _, np := range egress {
			rules = append(rules, np.Spec.Egress...)
		}
		if !slices.ContainsFunc(rules, func(r networkingv1.NetworkPolicyEgressRule) bool { return portsAllow(r.Ports, 53, corev1.ProtocolUDP) }) {
			c.errorf("%s: no egress to DNS (UDP 53)", where)
		}
		if c.usesDatabase(p) && !slices.ContainsFunc(rules, func(r networkingv1.NetworkPolicyEgressRule) bool {
			return len(r.Ports) > 0 && portsAllow(r.Ports, postgresPort, corev1.ProtocolTCP)
		}) {
			c.errorf("%s: no egress rule for PostgreSQL's port %d (DATABASE_URL)", where, postgresPort)
		}
		kafkaPort := c.kafkaPort(p)
		if kafkaPort == 0 || !slices.ContainsFunc(rules, func(r networkingv1.NetworkPolicyEgressRule) bool {
			return len(r.Ports) > 0 && portsAllow(r.Ports, kafkaPort, corev1.ProtocolTCP)
		}) {
			c.errorf("%s: no egress rule for Kafka's port %d", where, kafkaPort)
		}
		c.checkEgressLimited(p, egress, kafkaPort)
		if p.kind == "Deployment" {
			c.checkIngressLimited(p)
		}
		for _, r := range rules {
			for _, peer := range r.To {
				if peer.IPBlock == nil {
					continue
				}
				pfx, err := netip.ParsePrefix(peer.IPBlock.CIDR)
				if err != nil || pfx.Bits() > 0 || !pfx.Addr().Is4() {
					continue
				}
				for _, priv := range privateRanges {
					if !slices.Contains(peer.IPBlock.Except, priv) {
						c.errorf("%s: egress to %s on ports %v does not except %s", where, peer.IPBlock.CIDR, r.Ports, priv)
					}
				}
			}
		}
		if p.name == "dialstream-notifier" {
			internet := slices.ContainsFunc(rules, func(r networkingv1.NetworkPolicyEgressRule) bool {
				return len(r.Ports) == 0 && slices.ContainsFunc(r.To, func(peer networkingv1.NetworkPolicyPeer) bool {
					return peer.IPBlock != nil && peer.IPBlock.CIDR == "0.0.0.0/0"
				})
			})
			if !internet {
				c.errorf("%s: no egress to the internet (0.0.0.0/0, any port): callback URLs are unreachable", where)
			}
		}
		// The dialer's webhook port: only named peers, never everyone.
		if p.name == "dialstream-dialer" {
			port := int32(c.facts[p.name].httpPort)
			admitted := 0
			for _, np := range c.policiesFor(p, networkingv1.PolicyTypeIngress) {
				for _, r := range np.Spec.Ingress {
					if !portsAllow(r.Ports, port, corev1.ProtocolTCP) {
						continue
					}
					if len(r.From) == 0 {
						c.errorf("%s: NetworkPolicy %s admits everyone to the webhook port %d", where, np.Name, port)
					}
					for _, peer := range r.From {
						if peer.IPBlock != nil || peer.PodSelector == nil || peer.NamespaceSelector == nil ||
							len(peer.PodSelector.MatchLabels)+len(peer.PodSelector.MatchExpressions) == 0 ||
							len(peer.NamespaceSelector.MatchLabels)+len(peer.NamespaceSelector.MatchExpressions) == 0 {
							c.errorf("%s: NetworkPolicy %s admits %+v to the webhook port: name LiveKit's (or the ingress controller's) pods and namespace", where, np.Name, peer)
						}
						admitted++
					}
				}
			}
			if admitted == 0 {
				c.errorf("%s: nothing may reach the webhook port %d: LiveKit's webhooks would be dropped", where, port)
			}
		}
	}
}

// egressBeyondKafka are the pods whose work is outside the cluster's Kafka
// and database: every other pod may reach DNS, Kafka and, when it reads
// DATABASE_URL, PostgreSQL, and nothing else.
var egressBeyondKafka = map[string]string{
	"dialstream-dialer":   "LiveKit's API",
	"dialstream-notifier": "callback URLs",
}

// checkEgressLimited: a pod outside egressBeyondKafka gets egress only on
// the ports of DNS, Kafka and (if it uses the database) PostgreSQL, each
// rule naming its ports.
func (c *k8sChecker) checkEgressLimited(p podOwner, egress []*networkingv1.NetworkPolicy, kafkaPort int32) {
	if _, ok := egressBeyondKafka[p.name]; ok {
		return
	}
	allowed := []int32{53, kafkaPort}
	if c.usesDatabase(p) {
		allowed = append(allowed, postgresPort)
	}
	for _, np := range egress {
		for _, r := range np.Spec.Egress {
			open := "every port"
			if len(r.Ports) > 0 {
				open = ""
			}
			for _, pp := range r.Ports {
				switch {
				case pp.Port == nil:
					open = "every port"
				case pp.EndPort != nil || !slices.Contains(allowed, pp.Port.IntVal):
					open = "port " + pp.Port.String()
				}
			}
			if open != "" {
				c.errorf("%s %s: NetworkPolicy %s opens egress on %s; it needs only ports %v (DNS, Kafka, PostgreSQL if it reads DATABASE_URL)",
					p.kind, p.name, np.Name, open, allowed)
			}
		}
	}
}

// prometheusPeer is how the policies name Prometheus (networkpolicies.yaml).
func prometheusPeer(peer networkingv1.NetworkPolicyPeer) bool {
	return peer.IPBlock == nil && peer.NamespaceSelector != nil && peer.PodSelector != nil &&
		peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "monitoring" &&
		peer.PodSelector.MatchLabels["app.kubernetes.io/name"] == "prometheus"
}

// checkIngressLimited: Prometheus reaches every Deployment's metrics port
// (default deny would otherwise leave it unscraped), and a Deployment that
// no Service exposes admits Prometheus alone.
func (c *k8sChecker) checkIngressLimited(p podOwner) {
	where := p.kind + " " + p.name
	port := int32(c.facts[p.name].httpPort)
	exposed := false
	for _, s := range c.b.services {
		exposed = exposed || selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, p.labels)
	}
	scraped := false
	for _, np := range c.policiesFor(p, networkingv1.PolicyTypeIngress) {
		for _, r := range np.Spec.Ingress {
			if portsAllow(r.Ports, port, corev1.ProtocolTCP) && (len(r.From) == 0 || slices.ContainsFunc(r.From, prometheusPeer)) {
				scraped = true
			}
			if exposed {
				continue
			}
			if len(r.From) == 0 {
				c.errorf("%s: NetworkPolicy %s admits everyone; no Service exposes it, so only Prometheus may reach it", where, np.Name)
			}
			for _, peer := range r.From {
				if !prometheusPeer(peer) {
					c.errorf("%s: NetworkPolicy %s admits %+v; no Service exposes it, so only Prometheus may reach it", where, np.Name, peer)
				}
			}
		}
	}
	if !scraped {
		c.errorf("%s: no NetworkPolicy lets Prometheus reach its metrics port %d", where, port)
	}
}

// postgresPort is the port the call records database is reached on: the
// URL comes from the Secret, so its port is PostgreSQL's default.
const postgresPort = 5432

// usesDatabase reports whether a pod's service container reads DATABASE_URL.
func (c *k8sChecker) usesDatabase(p podOwner) bool {
	for _, ctr := range p.spec.Containers {
		if env, _ := c.containerEnv(p.spec, &ctr); env.vars["DATABASE_URL"] != "" {
			return true
		}
	}
	return false
}

// kafkaPort is the port of the first broker in a pod's KAFKA_BROKERS.
func (c *k8sChecker) kafkaPort(p podOwner) int32 {
	for _, ctr := range p.spec.Containers {
		env, _ := c.containerEnv(p.spec, &ctr)
		first, _, _ := strings.Cut(env.vars["KAFKA_BROKERS"], ",")
		if _, port, ok := strings.Cut(first, ":"); ok {
			n, _ := strconv.Atoi(port)
			return int32(n)
		}
	}
	return 0
}

// checkMemoryLimit: the scheduler holds its campaigns' contacts in memory,
// so its Go heap needs GOMEMLIMIT under the container's memory limit (with
// room for the runtime and buffers, 50-95 % of it): without one the heap
// grows to twice the live set before a collection and the pod is OOM-killed
// at half the contacts it could hold.
func (c *k8sChecker) checkMemoryLimit(where string, ctr *corev1.Container, gomemlimit string) {
	limit, ok := ctr.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		return // reported above
	}
	m := regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB)$`).FindStringSubmatch(gomemlimit)
	if m == nil {
		c.errorf("%s: GOMEMLIMIT %q, want a size such as 900MiB below the memory limit %s", where, gomemlimit, limit.String())
		return
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	n <<= map[string]uint{"B": 0, "KiB": 10, "MiB": 20, "GiB": 30}[m[2]]
	if ratio := float64(n) / float64(limit.Value()); ratio < 0.5 || ratio > 0.95 {
		c.errorf("%s: GOMEMLIMIT %s is %.0f %% of the memory limit %s, want 50-95 %%", where, gomemlimit, 100*ratio, limit.String())
	}
}
