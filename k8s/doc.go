// Package k8s holds no code: it is the home of Starling's Kubernetes
// manifests (a kustomize base, the overlays single and cluster, the
// component s2s and the overlay s2s, which is single with it) and of the
// Grafana dashboard, and its test renders every overlay in-process with
// the kustomize API, decodes every object strictly into the Kubernetes API
// types and checks the references between them. `kubectl kustomize
// k8s/overlays/<name>` renders the same objects.
package k8s
