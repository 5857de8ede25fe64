package k8s_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"starling.dev/starling/internal/app"
)

// rendered is one overlay's objects, decoded into the API types.
type rendered struct {
	overlay     string
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	services    map[string]*corev1.Service
	pvcs        map[string]*corev1.PersistentVolumeClaim
	deployments map[string]*appsv1.Deployment
	sets        map[string]*appsv1.StatefulSet
	jobs        map[string]*batchv1.Job
	pdbs        map[string]*policyv1.PodDisruptionBudget
	count       int
}

// workload is a pod template with the object it belongs to.
type workload struct {
	name     string
	replicas int
	labels   map[string]string
	pod      *corev1.PodTemplateSpec
}

func (r *rendered) workloads() []workload {
	var ws []workload
	for n, d := range r.deployments {
		ws = append(ws, workload{"Deployment/" + n, int(ptrOr(d.Spec.Replicas, 1)), d.Spec.Template.Labels, &d.Spec.Template})
	}
	for n, s := range r.sets {
		ws = append(ws, workload{"StatefulSet/" + n, int(ptrOr(s.Spec.Replicas, 1)), s.Spec.Template.Labels, &s.Spec.Template})
	}
	for n, j := range r.jobs {
		ws = append(ws, workload{"Job/" + n, 1, j.Spec.Template.Labels, &j.Spec.Template})
	}
	slices.SortFunc(ws, func(a, b workload) int { return strings.Compare(a.name, b.name) })
	return ws
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// strictDecoder decodes JSON into the typed objects and fails on unknown
// or duplicate fields.
func strictDecoder(t testing.TB) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Strict: true})
}

// render builds overlays/<name> as `kubectl kustomize` does and decodes
// every object strictly.
func render(t *testing.T, overlay string) *rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), "overlays/"+overlay)
	if err != nil {
		t.Fatalf("kustomize %s: %v", overlay, err)
	}
	dec := strictDecoder(t)
	r := &rendered{
		overlay:    overlay,
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		services: map[string]*corev1.Service{}, pvcs: map[string]*corev1.PersistentVolumeClaim{},
		deployments: map[string]*appsv1.Deployment{}, sets: map[string]*appsv1.StatefulSet{},
		jobs: map[string]*batchv1.Job{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
	}
	for _, res := range m.Resources() {
		raw, err := res.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := dec.Decode(raw, nil, nil)
		if err != nil {
			t.Fatalf("%s: %s %s: %v", overlay, res.GetKind(), res.GetName(), err)
		}
		r.count++
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			r.configMaps[o.Name] = o
		case *corev1.Secret:
			r.secrets[o.Name] = o
		case *corev1.Service:
			r.services[o.Name] = o
		case *corev1.PersistentVolumeClaim:
			r.pvcs[o.Name] = o
		case *appsv1.Deployment:
			r.deployments[o.Name] = o
		case *appsv1.StatefulSet:
			r.sets[o.Name] = o
		case *batchv1.Job:
			r.jobs[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			r.pdbs[o.Name] = o
		default:
			t.Fatalf("%s: %T %s: a kind this test does not check", overlay, obj, res.GetName())
		}
	}
	t.Logf("%s: %d objects: %d ConfigMaps, %d Secrets, %d Services, %d PVCs, %d Deployments, %d StatefulSets, %d Jobs, %d PDBs",
		overlay, r.count, len(r.configMaps), len(r.secrets), len(r.services), len(r.pvcs),
		len(r.deployments), len(r.sets), len(r.jobs), len(r.pdbs))
	return r
}

// TestStrictDecoderRejectsUnknownFields shows that the decoder the checks
// rely on refuses a misspelled field, which kustomize lets through.
func TestStrictDecoderRejectsUnknownFields(t *testing.T) {
	bad := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replica":2}}`
	if _, _, err := strictDecoder(t).Decode([]byte(bad), nil, nil); err == nil {
		t.Fatal("spec.replica decoded without an error")
	}
}

func TestOverlays(t *testing.T) {
	for _, overlay := range []string{"single", "cluster", "s2s"} {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			t.Run("deployments", r.checkDeployments)
			t.Run("services", r.checkServices)
			t.Run("references", r.checkReferences)
			t.Run("probes", r.checkProbes)
			t.Run("security", r.checkSecurity)
			t.Run("resources", r.checkResources)
			t.Run("settings", r.checkSettings)
			t.Run("addresses", r.checkAddresses)
			t.Run("metrics", r.checkMetricsAnnotations)
			t.Run("disruption", r.checkDisruptionBudgets)
			t.Run("s2s", r.checkS2S)
		})
	}
}

var starlingDeployments = []string{"starling-api", "starling-gateway"}

func (r *rendered) checkDeployments(t *testing.T) {
	for _, name := range starlingDeployments {
		d, ok := r.deployments[name]
		if !ok {
			t.Fatalf("no Deployment %s", name)
		}
		n := ptrOr(d.Spec.Replicas, 1)
		switch {
		case r.overlay == "cluster" && n < 2:
			t.Errorf("%s: %d replicas, want at least 2", name, n)
		case r.overlay == "single" && name == "starling-gateway" && n != 1:
			t.Errorf("%s: %d replicas; the embedded NATS server allows exactly 1", name, n)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s: selector %v does not match its pod template (%v)", name, d.Spec.Selector, err)
		}
	}
	if r.overlay == "single" && r.deployments["starling-gateway"].Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Error("single: the gateway owns a volume and a NATS store: its strategy must be Recreate")
	}
}

// checkServices: every Service selects some pod template and targets ports
// its containers declare; a StatefulSet's serviceName exists and is
// headless.
func (r *rendered) checkServices(t *testing.T) {
	for name, svc := range r.services {
		var matched []workload
		for _, w := range r.workloads() {
			if len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.labels)) {
				matched = append(matched, w)
			}
		}
		if len(matched) == 0 {
			t.Errorf("Service %s: selector %v matches no pod template", name, svc.Spec.Selector)
			continue
		}
		for _, p := range svc.Spec.Ports {
			for _, w := range matched {
				if _, ok := containerPort(w.pod, p.TargetPort); !ok {
					t.Errorf("Service %s port %s: %s declares no port %s", name, p.Name, w.name, p.TargetPort.String())
				}
			}
		}
	}
	for name, s := range r.sets {
		svc, ok := r.services[s.Spec.ServiceName]
		if !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone && r.overlay == "cluster" {
			t.Errorf("StatefulSet %s: serviceName %q is not a headless Service of the render", name, s.Spec.ServiceName)
		}
	}
}

// containerPort finds the container port a Service or probe port names.
func containerPort(pod *corev1.PodTemplateSpec, port intstr.IntOrString) (int32, bool) {
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if port.Type == intstr.String && cp.Name == port.StrVal || port.Type == intstr.Int && cp.ContainerPort == port.IntVal {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// checkReferences: every ConfigMap, Secret and claim a pod uses exists,
// with the keys it names.
func (r *rendered) checkReferences(t *testing.T) {
	for _, w := range r.workloads() {
		for _, c := range allContainers(w.pod) {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil && r.configMaps[ef.ConfigMapRef.Name] == nil {
					t.Errorf("%s/%s: envFrom ConfigMap %s does not exist", w.name, c.Name, ef.ConfigMapRef.Name)
				}
				if ef.SecretRef != nil && r.secrets[ef.SecretRef.Name] == nil {
					t.Errorf("%s/%s: envFrom Secret %s does not exist", w.name, c.Name, ef.SecretRef.Name)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if ref := e.ValueFrom.SecretKeyRef; ref != nil && !r.secretHas(ref.Name, ref.Key) {
					t.Errorf("%s/%s: %s: Secret %s has no key %s", w.name, c.Name, e.Name, ref.Name, ref.Key)
				}
				if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
					if cm := r.configMaps[ref.Name]; cm == nil || cm.Data[ref.Key] == "" {
						t.Errorf("%s/%s: %s: ConfigMap %s has no key %s", w.name, c.Name, e.Name, ref.Name, ref.Key)
					}
				}
			}
		}
		var claims []string
		for name, s := range r.sets {
			if "StatefulSet/"+name == w.name {
				for _, vct := range s.Spec.VolumeClaimTemplates {
					claims = append(claims, vct.Name)
				}
			}
		}
		var volumes []string
		for _, v := range w.pod.Spec.Volumes {
			volumes = append(volumes, v.Name)
			switch {
			case v.ConfigMap != nil && r.configMaps[v.ConfigMap.Name] == nil:
				t.Errorf("%s: volume %s: ConfigMap %s does not exist", w.name, v.Name, v.ConfigMap.Name)
			case v.Secret != nil && r.secrets[v.Secret.SecretName] == nil:
				t.Errorf("%s: volume %s: Secret %s does not exist", w.name, v.Name, v.Secret.SecretName)
			case v.PersistentVolumeClaim != nil && r.pvcs[v.PersistentVolumeClaim.ClaimName] == nil:
				t.Errorf("%s: volume %s: claim %s does not exist", w.name, v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
		for _, c := range allContainers(w.pod) {
			for _, m := range c.VolumeMounts {
				if !slices.Contains(volumes, m.Name) && !slices.Contains(claims, m.Name) {
					t.Errorf("%s/%s: mount of %s, which is neither a volume nor a claim template", w.name, c.Name, m.Name)
				}
			}
		}
	}
}

func (r *rendered) secretHas(name, key string) bool {
	s := r.secrets[name]
	if s == nil {
		return false
	}
	_, inData := s.Data[key]
	_, inString := s.StringData[key]
	return inData || inString
}

func allContainers(pod *corev1.PodTemplateSpec) []corev1.Container {
	return append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...)
}

// checkProbes: HTTP probes ask /healthz or /readyz on a declared port;
// Starling's containers have both, on the port their settings listen on.
func (r *rendered) checkProbes(t *testing.T) {
	for _, w := range r.workloads() {
		for _, c := range allContainers(w.pod) {
			for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
				if p == nil || p.HTTPGet == nil {
					continue
				}
				path, _, _ := strings.Cut(p.HTTPGet.Path, "?")
				if path != "/healthz" && path != "/readyz" {
					t.Errorf("%s/%s: %s probe on %s, want /healthz or /readyz", w.name, c.Name, kind, p.HTTPGet.Path)
				}
				if _, ok := containerPort(w.pod, p.HTTPGet.Port); !ok {
					t.Errorf("%s/%s: %s probe on undeclared port %s", w.name, c.Name, kind, p.HTTPGet.Port.String())
				}
			}
		}
	}
	for name, addrSetting := range map[string]string{"starling-api": "STARLING_HTTP_ADDR", "starling-gateway": "STARLING_METRICS_ADDR"} {
		d := r.deployments[name]
		c := d.Spec.Template.Spec.Containers[0]
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: liveness probe is not GET /healthz", name)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: readiness probe is not GET /readyz", name)
			continue
		}
		port, _ := containerPort(&d.Spec.Template, c.ReadinessProbe.HTTPGet.Port)
		addr := r.env(c)[addrSetting]
		host, p, err := net.SplitHostPort(addr)
		if err != nil || p != strconv.Itoa(int(port)) || host != "0.0.0.0" && host != "" {
			t.Errorf("%s: %s=%q, but the probes use port %d of the pod's address", name, addrSetting, addr, port)
		}
	}
}

// checkSecurity: every container runs as non-root, read-only, without
// privilege escalation or capabilities.
func (r *rendered) checkSecurity(t *testing.T) {
	for _, w := range r.workloads() {
		psc := w.pod.Spec.SecurityContext
		for _, c := range allContainers(w.pod) {
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s/%s: no securityContext", w.name, c.Name)
				continue
			}
			nonRoot := sc.RunAsNonRoot != nil && *sc.RunAsNonRoot || sc.RunAsNonRoot == nil && psc != nil && ptrOr(psc.RunAsNonRoot, false)
			uid := sc.RunAsUser
			if uid == nil && psc != nil {
				uid = psc.RunAsUser
			}
			if !nonRoot || uid == nil || *uid == 0 {
				t.Errorf("%s/%s: not forced to run as a non-root user", w.name, c.Name)
			}
			if !ptrOr(sc.ReadOnlyRootFilesystem, false) {
				t.Errorf("%s/%s: root filesystem is writable", w.name, c.Name)
			}
			if ptrOr(sc.AllowPrivilegeEscalation, true) || ptrOr(sc.Privileged, false) {
				t.Errorf("%s/%s: privilege escalation allowed", w.name, c.Name)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s/%s: capabilities not all dropped", w.name, c.Name)
			}
		}
	}
}

func (r *rendered) checkResources(t *testing.T) {
	for _, w := range r.workloads() {
		for _, c := range allContainers(w.pod) {
			for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, ok := c.Resources.Requests[res]
				lim, okLim := c.Resources.Limits[res]
				if !ok || !okLim {
					t.Errorf("%s/%s: no %s request or limit", w.name, c.Name, res)
				} else if req.Cmp(lim) > 0 {
					t.Errorf("%s/%s: %s request %s above its limit %s", w.name, c.Name, res, req.String(), lim.String())
				}
			}
		}
	}
}

// env resolves a container's environment: literals, envFrom and key
// references (a field reference becomes a placeholder).
func (r *rendered) env(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && r.configMaps[ef.ConfigMapRef.Name] != nil {
			for k, v := range r.configMaps[ef.ConfigMapRef.Name].Data {
				env[ef.Prefix+k] = v
			}
		}
		if ef.SecretRef != nil && r.secrets[ef.SecretRef.Name] != nil {
			for k := range r.secrets[ef.SecretRef.Name].StringData {
				env[ef.Prefix+k] = r.secretValue(ef.SecretRef.Name, k)
			}
			for k := range r.secrets[ef.SecretRef.Name].Data {
				env[ef.Prefix+k] = r.secretValue(ef.SecretRef.Name, k)
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = r.secretValue(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
		case e.ValueFrom.ConfigMapKeyRef != nil && r.configMaps[e.ValueFrom.ConfigMapKeyRef.Name] != nil:
			env[e.Name] = r.configMaps[e.ValueFrom.ConfigMapKeyRef.Name].Data[e.ValueFrom.ConfigMapKeyRef.Key]
		default:
			env[e.Name] = "from-the-pod"
		}
	}
	return env
}

func (r *rendered) secretValue(name, key string) string {
	if s := r.secrets[name]; s != nil {
		if v, ok := s.StringData[key]; ok {
			return v
		}
		return string(s.Data[key])
	}
	return ""
}

// secretSettings come only from a Secret, never a ConfigMap or a literal.
var secretSettings = []string{"STARLING_XMPP_SECRET", "STARLING_ADMIN_TOKEN", "STARLING_NATS_TOKEN", "STARLING_S2S_SECRET"}

// checkSettings parses each Starling container's environment with the
// binary's own parser: it must be valid, every STARLING_* variable must be
// one the parser reads, and secrets must come from Secrets.
func (r *rendered) checkSettings(t *testing.T) {
	parsers := map[string]func(app.Env) error{
		"starling-api":     func(env app.Env) error { _, err := app.ParseAPI(nil, env); return err },
		"starling-gateway": func(env app.Env) error { _, err := app.ParseGateway(nil, env); return err },
	}
	for name, parse := range parsers {
		c := r.deployments[name].Spec.Template.Spec.Containers[0]
		env := r.env(c)
		read := map[string]bool{}
		if err := parse(func(k string) (string, bool) {
			read[k] = true
			v, ok := env[k]
			return v, ok
		}); err != nil {
			t.Errorf("%s: its environment does not parse: %v", name, err)
		}
		for k := range env {
			if strings.HasPrefix(k, "STARLING_") && !read[k] {
				t.Errorf("%s: %s is not a setting of this binary (internal/app/config.go)", name, k)
			}
		}
		for _, k := range secretSettings {
			if !read[k] {
				continue
			}
			if _, set := env[k]; !set {
				continue
			}
			if !fromSecret(c, k) {
				t.Errorf("%s: %s must come from a Secret (secretKeyRef)", name, k)
			}
		}
		if name == "starling-gateway" {
			if _, ok := env["STARLING_NATS_TOKEN"]; !ok {
				t.Errorf("%s: STARLING_NATS_TOKEN unset: NATS would accept anyone", name)
			}
		}
	}
	for name, cm := range r.configMaps {
		for _, k := range secretSettings {
			if _, ok := cm.Data[k]; ok {
				t.Errorf("ConfigMap %s holds the secret %s", name, k)
			}
		}
	}
}

func fromSecret(c corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		}
	}
	return false // from envFrom: a ConfigMap unless proven otherwise
}

// checkAddresses: the NATS and Redis addresses in the settings name
// Services of the render (or pods of a StatefulSet behind its headless
// Service) on ports they expose. STARLING_XMPP_ADDR is the operator's.
func (r *rendered) checkAddresses(t *testing.T) {
	for _, name := range starlingDeployments {
		env := r.env(r.deployments[name].Spec.Template.Spec.Containers[0])
		var hosts []string
		for u := range strings.SplitSeq(env["STARLING_NATS_URL"], ",") {
			if u != "" {
				hosts = append(hosts, urlHosts(t, u)...)
			}
		}
		hosts = append(hosts, urlHosts(t, env["STARLING_REDIS_URL"])...)
		if name == "starling-api" && env["STARLING_NATS_URL"] == "" {
			t.Errorf("%s: no STARLING_NATS_URL (it would dial 127.0.0.1)", name)
		}
		for _, hp := range hosts {
			if err := r.reachable(hp); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}

func urlHosts(t *testing.T, raw string) []string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		t.Errorf("%q: %v", raw, err)
		return nil
	}
	return append([]string{u.Host}, u.Query()["addr"]...)
}

// reachable tells whether host:port is a Service port of the render, or a
// StatefulSet pod (<set>-<n>.<service>) on a port of its headless Service.
func (r *rendered) reachable(hostPort string) error {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return fmt.Errorf("%q: %v", hostPort, err)
	}
	svcName := host
	if pod, svc, ok := strings.Cut(host, "."); ok {
		svcName = svc
		i := strings.LastIndex(pod, "-")
		ord, err := strconv.Atoi(pod[i+1:])
		sts := r.sets[pod[:max(i, 0)]]
		if i < 0 || err != nil || sts == nil || sts.Spec.ServiceName != svc || ord >= int(ptrOr(sts.Spec.Replicas, 1)) {
			return fmt.Errorf("%s: not a pod of a StatefulSet behind Service %s", host, svc)
		}
	}
	svc := r.services[svcName]
	if svc == nil {
		return fmt.Errorf("%s: no Service %s", hostPort, svcName)
	}
	for _, p := range svc.Spec.Ports {
		if strconv.Itoa(int(p.Port)) == port {
			return nil
		}
	}
	return fmt.Errorf("%s: Service %s has no port %s", hostPort, svcName, port)
}

// checkS2S: a gateway in s2s mode listens where a Service publishes port
// 5269, reads the dialback secret from a Secret, and its certificate and
// key from files of a mounted Secret; the s2s overlay is in that mode.
func (r *rendered) checkS2S(t *testing.T) {
	d := r.deployments["starling-gateway"]
	c := d.Spec.Template.Spec.Containers[0]
	env := r.env(c)
	if env["STARLING_XMPP_MODE"] != "s2s" {
		if r.overlay == "s2s" {
			t.Fatalf("s2s: STARLING_XMPP_MODE=%q", env["STARLING_XMPP_MODE"])
		}
		return
	}
	_, port, err := net.SplitHostPort(env["STARLING_S2S_ADDR"])
	if err != nil {
		t.Fatalf("STARLING_S2S_ADDR=%q: %v", env["STARLING_S2S_ADDR"], err)
	}
	published := false
	for _, svc := range r.services {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) || len(svc.Spec.Selector) == 0 {
			continue
		}
		for _, p := range svc.Spec.Ports {
			cp, ok := containerPort(&d.Spec.Template, p.TargetPort)
			if ok && p.Port == 5269 && strconv.Itoa(int(cp)) == port {
				published = published || svc.Spec.Type == corev1.ServiceTypeLoadBalancer || svc.Spec.Type == corev1.ServiceTypeNodePort
			}
		}
	}
	if !published {
		t.Errorf("no LoadBalancer or NodePort Service publishes port 5269 of the gateway's s2s listener (%s)", env["STARLING_S2S_ADDR"])
	}
	if !fromSecret(c, "STARLING_S2S_SECRET") {
		t.Error("STARLING_S2S_SECRET does not come from a Secret")
	}
	for _, file := range []string{env["STARLING_TLS_CERT"], env["STARLING_TLS_KEY"]} {
		if !r.fromSecretVolume(d, c, file) {
			t.Errorf("%q is not a key of a Secret mounted in the gateway", file)
		}
	}
}

// fromSecretVolume tells whether path is a key of a Secret volume mounted
// in c.
func (r *rendered) fromSecretVolume(d *appsv1.Deployment, c corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		dir := strings.TrimSuffix(m.MountPath, "/") + "/"
		key, ok := strings.CutPrefix(path, dir)
		if !ok {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil && r.secretHas(v.Secret.SecretName, key) {
				return true
			}
		}
	}
	return false
}

// checkMetricsAnnotations: Starling's pods ask to be scraped on a port
// they declare.
func (r *rendered) checkMetricsAnnotations(t *testing.T) {
	for _, name := range starlingDeployments {
		tpl := r.deployments[name].Spec.Template
		a := tpl.Annotations
		port, err := strconv.Atoi(a["prometheus.io/port"])
		if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" || err != nil {
			t.Errorf("%s: scrape annotations %v", name, a)
			continue
		}
		if _, ok := containerPort(&tpl, intstr.FromInt32(int32(port))); !ok {
			t.Errorf("%s: prometheus.io/port %d is not a declared port", name, port)
		}
	}
}

// checkDisruptionBudgets: in the cluster shape every replicated workload
// has a PDB selecting its pods that still lets one pod go.
func (r *rendered) checkDisruptionBudgets(t *testing.T) {
	if r.overlay != "cluster" {
		return
	}
	for _, w := range r.workloads() {
		if strings.HasPrefix(w.name, "Job/") {
			continue
		}
		var found bool
		for _, pdb := range r.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(w.labels)) {
				continue
			}
			found = true
			if mA := pdb.Spec.MinAvailable; mA != nil && mA.Type == intstr.Int && int(mA.IntVal) >= w.replicas {
				t.Errorf("PDB %s: minAvailable %d of %d replicas blocks every drain", pdb.Name, mA.IntVal, w.replicas)
			}
		}
		if !found {
			t.Errorf("%s: no PodDisruptionBudget", w.name)
		}
	}
}

// metricName matches the names of our metrics in PromQL and in Go.
var metricName = regexp.MustCompile(`starling_[a-z_]+`)

// TestDashboard checks that the Grafana dashboard parses, ships as a
// ConfigMap, and queries only metrics the code registers.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("grafana/starling.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Type    string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana/starling.json: %v", err)
	}
	known := map[string]bool{}
	for _, f := range []string{"../fanout/metrics.go", "../xmpp/metrics.go", "../httpapi/metrics.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`Name:\s+"(starling_[a-z_]+)"`).FindAllSubmatch(src, -1) {
			known[string(m[1])] = true
		}
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			for _, m := range metricName.FindAllString(q.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !known[m] && !known[base] {
					t.Errorf("panel %q: %s is not a metric the code registers", p.Title, m)
				}
				used[base] = true
			}
		}
	}
	for _, want := range []string{"starling_fanout_posts_total", "starling_fanout_batches_total", "starling_fanout_deliveries_total",
		"starling_fanout_send_errors_total", "starling_fanout_dead_letters_total", "starling_xmpp_handler_busy_total"} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
	for _, overlay := range []string{"single", "cluster"} {
		cm := render(t, overlay).configMaps["starling-grafana-dashboard"]
		if cm == nil || cm.Data["starling.json"] != string(raw) {
			t.Errorf("%s: the dashboard is not shipped as ConfigMap starling-grafana-dashboard", overlay)
		}
	}
}

// TestDockerfile checks what the manifests assume of the image: static,
// non-root, distroless, with the binaries at the paths the pods run.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "FROM gcr.io/distroless/static", "USER 65532", "AS build", "COPY --from=build"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile: no %q", want)
		}
	}
	r := render(t, "cluster")
	for _, name := range starlingDeployments {
		c := r.deployments[name].Spec.Template.Spec.Containers[0]
		if len(c.Command) != 1 || !strings.Contains(df, c.Command[0][strings.LastIndex(c.Command[0], "/")+1:]) ||
			!strings.Contains(df, "/usr/local/bin/") || !strings.HasPrefix(c.Command[0], "/usr/local/bin/") {
			t.Errorf("%s: command %v is not a binary the Dockerfile installs in /usr/local/bin", name, c.Command)
		}
	}
}
