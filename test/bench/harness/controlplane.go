/*
Copyright 2026 The WeChat QR Code Operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// ControlPlane is a real etcd and kube-apiserver with the CRD (internal/testenv), and a
// kubeconfig for the processes this package starts.
type ControlPlane struct {
	*testenv.Env
	// Kubeconfig authenticates as the control plane's admin.
	Kubeconfig string
}

// adminKubeconfig authenticates with the credentials of the control plane's rest.Config.
var adminKubeconfig = proc.Kubeconfig{Cluster: "local", User: "admin"}

// StartControlPlane starts a control plane and writes its kubeconfig into dir.
func StartControlPlane(dir string) (*ControlPlane, error) {
	env, err := testenv.Start()
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Env: env, Kubeconfig: filepath.Join(dir, "kubeconfig")}
	if err := adminKubeconfig.Write(cp.Kubeconfig, env.Config); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return cp, nil
}

// LimitedClient is a client of the control plane limited to qps requests per second with burst, as
// client-go limits the manager (--kube-api-qps, --kube-api-burst): a baseline measured with this
// client pays the same client-side limits as the process it is compared with.
func (cp *ControlPlane) LimitedClient(qps float64, burst int) (client.Client, error) {
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = float32(qps), burst
	return client.New(cfg, client.Options{Scheme: cp.Scheme})
}

// apiServerPID is the pid of the control plane's kube-apiserver: envtest starts it as a child
// of this process and keeps its handle to itself.
func apiServerPID() (int, error) { return childPID("kube-apiserver") }

// childPID is the pid of this process's child named comm (kube-apiserver, etcd).
func childPID(comm string) (int, error) {
	pids, err := proc.Children()
	if err != nil {
		return 0, err
	}
	for _, pid := range pids {
		if _, c, err := proc.Stat(strconv.Itoa(pid)); err == nil && c == comm {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s among this process's children", comm)
}

// ControlPlaneProcesses are the processes of a control plane, by command name.
var ControlPlaneProcesses = []string{"kube-apiserver", "etcd"}

// RSS is the resident set size now (VmRSS) of each of the control plane's processes, in bytes,
// by command name. One control plane runs at a time: they are this process's only children
// of those names.
func (cp *ControlPlane) RSS() (map[string]int64, error) {
	out := map[string]int64{}
	for _, comm := range ControlPlaneProcesses {
		pid, err := childPID(comm)
		if err != nil {
			return nil, err
		}
		if out[comm], err = memoryOf(pid, "VmRSS"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PauseAPIServer stops the kube-apiserver process (SIGSTOP): it accepts connections (the kernel
// does) and answers nothing, as an API server behind a hung load balancer or in a long GC
// pause does, which is worse for a client than a refused connection. The returned function
// resumes it (SIGCONT).
func (cp *ControlPlane) PauseAPIServer() (resume func() error, err error) {
	pid, err := apiServerPID()
	if err != nil {
		return nil, err
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return nil, err
	}
	return func() error { return syscall.Kill(pid, syscall.SIGCONT) }, nil
}

// Writes is the API server's own count of the write requests it has served so far
// (apiserver_request_total of the verbs that write), by verb and resource (RequestKind.String):
// what a load cost it, whoever made the requests, a segment's appends apart from its offsets.
func (cp *ControlPlane) Writes(ctx context.Context) (map[string]float64, error) {
	all, err := cp.Requests(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for k, v := range all {
		if writeVerbs[k.Verb] {
			out[k.String()] += v
		}
	}
	return out, nil
}

// RequestKind is a verb on a resource (and subresource, e.g. "status"), as the API server's
// apiserver_request_total labels a request.
type RequestKind struct{ Verb, Resource, Subresource string }

func (k RequestKind) String() string {
	if k.Subresource == "" {
		return k.Verb + " " + k.Resource
	}
	return k.Verb + " " + k.Resource + "/" + k.Subresource
}

// Requests is the API server's own count of the requests it has finished so far, by verb and
// resource (a watch counts when it ends). The difference of two counts around a load is what
// the load cost, by kind of request, whoever made them.
func (cp *ControlPlane) Requests(ctx context.Context) (map[RequestKind]float64, error) {
	hc, err := rest.HTTPClientFor(cp.Config)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cp.Config.Host, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the API server's /metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return requestsByKind(string(body)), nil
}

// writeVerbs are the verbs of apiserver_request_total that write.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// requestsByKind sums the samples of apiserver_request_total in a text exposition by their
// verb, resource and subresource labels.
func requestsByKind(exposition string) map[RequestKind]float64 {
	out := map[RequestKind]float64{}
	for line := range strings.Lines(exposition) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "apiserver_request_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		out[RequestKind{Verb: label(labels, "verb"), Resource: label(labels, "resource"), Subresource: label(labels, "subresource")}] += v
	}
	return out
}

// label is the value of name in a Prometheus label set (a="x",b="y"); values hold no quotes.
func label(labels, name string) string {
	_, v, ok := strings.Cut(","+labels, ","+name+`="`)
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, `"`)
	return v
}
