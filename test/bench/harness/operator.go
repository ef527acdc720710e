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
	"os"
	"path/filepath"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
)

// ManagerConfig is a manager process: its command line, whose addresses StartManager chooses,
// and its environment.
type ManagerConfig struct {
	proc.ManagerArgs
	// Env is added to the process's environment, e.g. GOMEMLIMIT=90MiB, as a Deployment's env.
	Env []string
	// ProfileDir, when set, turns on the manager's /debug/pprof and is where HeapProfile writes.
	ProfileDir string
}

// controllerName is the name controller-runtime gives the reconciler (the kind, lower case), the
// label of its metrics.
const controllerName = `controller="wechatqrcode"`

// Manager is a running manager process.
type Manager struct {
	*Process
	// Metrics is the URL of its Prometheus metrics.
	Metrics string

	pprof, profileDir string
}

// StartManager starts a manager without leader election (one process, and a restart after
// kill -9 need not wait out a Lease) and waits until it serves its probes.
func StartManager(ctx context.Context, bins Binaries, cfg ManagerConfig, logDir string) (*Manager, error) {
	addrs, err := FreeAddrs(2)
	if err != nil {
		return nil, err
	}
	metrics, probe := addrs[0], addrs[1]
	args := cfg.ManagerArgs
	args.LeaderElect, args.MetricsAddr, args.ProbeAddr, args.PlainMetrics = false, metrics, probe, true
	if cfg.ProfileDir != "" {
		if args.PprofAddr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	// Outside a Pod the manager must be told where ClusterWeChatAccounts keep their Secrets; the
	// harness's codes use namespaced WeChatAccounts, so any namespace does.
	if args.ClusterResourceNamespace == "" {
		args.ClusterResourceNamespace = "default"
	}
	p, err := StartProcess("manager", bins.Manager, args.Args(), cfg.Env, logDir)
	if err != nil {
		return nil, err
	}
	m := &Manager{Process: p, Metrics: "http://" + metrics + "/metrics", pprof: args.PprofAddr, profileDir: cfg.ProfileDir}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.WaitReady(ctx, "http://"+probe+"/readyz"); err != nil {
		p.Kill()
		return nil, err
	}
	return m, nil
}

// Reconciles is how many reconciles the manager finished, whatever their result.
func (m *Manager) Reconciles() (float64, error) {
	return Metric(m.Metrics, "controller_runtime_reconcile_total", controllerName)
}

// Memory is the manager's peak resident set size so far (bytes) and the heap its Go runtime has
// in use now (go_memstats_heap_inuse_bytes): what the peak holds beyond the second is collectable
// garbage, stacks and the runtime.
func (m *Manager) Memory() (peakRSS int64, heapInUse float64, err error) {
	if peakRSS, err = m.PeakRSS(); err == nil {
		heapInUse, err = Metric(m.Metrics, "go_memstats_heap_inuse_bytes")
	}
	return peakRSS, heapInUse, err
}

// HeapProfile writes the manager's heap profile (after a collection, so in-use figures are what
// is live) into the profile directory as name, for `go tool pprof -sample_index=inuse_space`.
// Without a profile directory it does nothing.
func (m *Manager) HeapProfile(ctx context.Context, name string) error {
	if m.profileDir == "" {
		return nil
	}
	return saveProfile(ctx, "http://"+m.pprof+"/debug/pprof/heap?gc=1", filepath.Join(m.profileDir, name))
}

// saveProfile writes what url (a /debug/pprof endpoint) answers into path.
func saveProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// WaitIdle waits until the manager has finished at least n reconciles and its work queue is
// empty: after a restart, it has looked at every one of n codes and has nothing left to do.
func (m *Manager) WaitIdle(ctx context.Context, n int) error {
	return m.waitReconciles(ctx, n, true)
}

// WaitReconciled waits until the manager has finished at least n reconciles, whatever waits in
// its queue.
func (m *Manager) WaitReconciled(ctx context.Context, n int) error {
	return m.waitReconciles(ctx, n, false)
}

func (m *Manager) waitReconciles(ctx context.Context, n int, idle bool) error {
	for {
		done, err := m.Reconciles()
		if err == nil && done >= float64(n) {
			if !idle {
				return nil
			}
			depth, err := Metric(m.Metrics, "workqueue_depth", `name="wechatqrcode"`)
			if err == nil && depth == 0 {
				return nil
			}
		}
		select {
		case <-m.Done():
			return m.ExitError()
		case <-ctx.Done():
			return fmt.Errorf("manager not done after %v reconciles (want %d): %w", done, n, ctx.Err())
		case <-time.After(reconcilePoll):
		}
	}
}

// reconcilePoll is short: the time to a restarted manager's first reconcile is a measurement.
const reconcilePoll = 50 * time.Millisecond

// Callback is a running callback server process.
type Callback struct {
	*Process
	// URL is where pushes go: URL + "/wechat/<appID>".
	URL     string
	Metrics string

	bin, name, logDir, probe, pprof string
	args                            []string
}

// CPUProfile writes a CPU profile of the callback server over the next d into path, for
// `go tool pprof`.
func (c *Callback) CPUProfile(ctx context.Context, d time.Duration, path string) error {
	return saveProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", c.pprof, int(d.Seconds())), path)
}

// StartCallback starts a callback server of the operator's namespace ns, where it finds the push
// config Secret and keeps its ledger, and waits until it is ready (push config read, cache
// synced), as a kubelet would before sending it traffic. foldInterval is its --fold-interval;
// zero keeps the default.
func StartCallback(ctx context.Context, bins Binaries, name, kubeconfig, ns, logDir string, foldInterval time.Duration) (*Callback, error) {
	addrs, err := FreeAddrs(4)
	if err != nil {
		return nil, err
	}
	args := proc.CallbackArgs{
		// The process name keeps the replicas apart.
		Kubeconfig: kubeconfig, Namespace: ns, Identity: name, FoldInterval: foldInterval,
		BindAddr: addrs[0], ProbeAddr: addrs[1], MetricsAddr: addrs[2], PprofAddr: addrs[3], PlainMetrics: true,
	}
	c := &Callback{
		URL: "http://" + addrs[0], Metrics: "http://" + addrs[2] + "/metrics",
		bin: bins.Callback, name: name, logDir: logDir, probe: "http://" + addrs[1] + "/readyz", pprof: addrs[3], args: args.Args(),
	}
	return c, c.start(ctx)
}

// Kill kills the callback server's process with SIGKILL: the one running now, after a Restart or
// a Roll too. Defined here rather than promoted from Process, so that a method value taken
// before a restart (t.Cleanup(cb.Kill)) kills the process that runs at the end, not the one
// that ran when it was taken: the restarted one ran on past its test, campaigning for its
// Leases, and held the API server's shutdown past envtest's timeout.
func (c *Callback) Kill() { c.Process.Kill() }

// Restart starts the callback server again after it ended (killed, or exited by itself), with
// the same command line: same identity and addresses, as a kubelet restarts a Pod's container.
func (c *Callback) Restart(ctx context.Context) error {
	c.Kill()
	return c.start(ctx)
}

// Roll stops the callback server as a kubelet does in a rolling update (SIGTERM, then SIGKILL if
// it has not exited after grace) and starts it again with the same command line, ready.
func (c *Callback) Roll(ctx context.Context, grace time.Duration) error {
	if err := c.Stop(grace); err != nil {
		return err
	}
	return c.start(ctx)
}

func (c *Callback) start(ctx context.Context) error {
	p, err := StartProcess(c.name, c.bin, c.args, nil, c.logDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.WaitReady(ctx, c.probe); err != nil {
		p.Kill()
		return err
	}
	c.Process = p
	return nil
}

// Folds is whether this replica holds the fold's Lease (controller-runtime's
// leader_election_master_status), and how many fold rounds it has finished (result ok) and tally
// shards it has written so far: a shard count that moved while the rounds did not is a fold
// writing its shards.
func (c *Callback) Folds() (leader bool, rounds, shards float64, err error) {
	status, err := Metric(c.Metrics, "leader_election_master_status", `name="wechat-qrcode-callback-fold"`)
	if err != nil {
		return false, 0, 0, err
	}
	const folds = metricnames.Namespace + "_callback_folds_total"
	if rounds, err = Metric(c.Metrics, folds, `result="ok"`); err != nil {
		return false, 0, 0, err
	}
	shards, err = Metric(c.Metrics, folds, `result="shard_written"`)
	return status == 1, rounds, shards, err
}
