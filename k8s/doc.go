// Package k8s holds no code: it is the home of Starling's Kubernetes
// manifests (a kustomize base and the overlays single and cluster) and of
// the Grafana dashboard, and its test renders both overlays in-process with
// the kustomize API, decodes every object strictly into the Kubernetes API
// types and checks the references between them. `kubectl kustomize
// k8s/overlays/<name>` renders the same objects.
package k8s
