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

package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/install"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scheme"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// SamplesNamespace is where the dev stack applies config/samples, and the namespace of its
// kubeconfigs' context.
const SamplesNamespace = "default"

// kubeconfig is a kubeconfig of the dev stack, whose context is the samples' namespace, as
// kubectl's and the operator's default; for user with the rest.Config's credentials.
func kubeconfig(user string) proc.Kubeconfig {
	return proc.Kubeconfig{Cluster: "wechat-qrcode-dev", User: user, Namespace: SamplesNamespace}
}

// The namespace where the dev stack applies config/samples/namespaced (the account of one
// namespace, its Secret and a code), as `kubectl apply -k config/samples/namespaced -n shop`
// would; and the namespace of the documentation's examples that use the ClusterWeChatAccount.
// Both exist from the start, so that those examples apply as written.
const (
	NamespacedSamplesNamespace = "shop"
	ExamplesNamespace          = "marketing"
)

// Ports of the stack's servers, all on 127.0.0.1. Zero picks a free port.
type Ports struct {
	APIServer       int
	WeChat          int
	Callback        int
	CallbackHealth  int
	CallbackMetrics int
	ManagerHealth   int
	ManagerMetrics  int
	// Application and Sink are the demo application's (spec.forward) and the demo sink's.
	Application int
	Sink        int
}

// DevPorts are the fixed ports of `make dev`: the Deployment's container ports where it has one,
// so that a URL seen in the dev stack means the same in a cluster.
var DevPorts = Ports{
	APIServer:       6443,
	WeChat:          8089,
	Callback:        8090,
	CallbackHealth:  8091,
	CallbackMetrics: 8092,
	ManagerMetrics:  8080,
	ManagerHealth:   8081,
	Application:     8093,
	Sink:            8094,
}

func (p *Ports) all() []*int {
	return []*int{&p.APIServer, &p.WeChat, &p.Callback, &p.CallbackHealth, &p.CallbackMetrics, &p.ManagerHealth, &p.ManagerMetrics, &p.Application, &p.Sink}
}

// resolve picks the free ports and checks that the fixed ones are free, so that a second
// `make dev` says which port is taken instead of failing somewhere inside a child.
func (p Ports) resolve() (Ports, error) {
	for _, port := range p.all() {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
		if err != nil {
			return p, fmt.Errorf("port %d on 127.0.0.1 is taken (by a `make dev` of another checkout?): free it, or let the stack pick free ports: make dev DEV_ARGS=--any-ports (make scan and make message find them): %w", *port, err)
		}
		*port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
	}
	return p, nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// Options configure a Stack.
type Options struct {
	// Root is the repository's root directory (cmd/, config/, hack/).
	Root string
	// Dir holds what the stack writes: kubeconfigs, binaries, logs of etcd and kube-apiserver,
	// and the state file that `scan` and the e2e test read.
	Dir string
	// Out is where the stack reports and its children's output goes, each line prefixed with the
	// name of its source.
	Out io.Writer
	// Go is the go command; default "go".
	Go    string
	Ports Ports
	// Account is a real Official Account to use against WeChat's real API; nil for the fake
	// WeChat with the account of config/samples/account-secret.yaml.
	Account *Account
	// NoSamples leaves the codes of config/samples out, for a caller that applies them itself.
	NoSamples bool
}

// Stack is a running dev stack.
type Stack struct {
	State

	opts Options
	// lock is nil when another stack holds the directory: then nothing in it is this one's.
	lock  *dirLock
	log   *prefixWriter
	con   *console
	env   *envtest.Environment
	admin client.Client
	fake  *wechattest.Server
	// servers are the stack's own HTTP servers: scans and messages, the demo application and sink.
	servers   []*http.Server
	sinkLines *sightings
	sink      *switchable
	// others are the accounts of the other samples, by AppID, for pushes of their codes.
	others map[string]Account
	// procsMu guards procs and restarted: `make outage` restarts the callback server while
	// the stack runs.
	procsMu sync.Mutex
	procs   []*proc.Process
	// restarted are processes the stack killed itself to start them again: their exit is not
	// the stack's end.
	restarted map[*proc.Process]bool
	// callback is how the callback server was started, to start it again.
	callback child
	exited   chan *proc.Process
}

// child is how one of the operator's processes is started.
type child struct {
	name, path string
	args       []string
	health     int
}

// Start builds what is missing and starts the stack: etcd and kube-apiserver with the CRD, the
// RBAC of config/default, the fake WeChat (or none, for a real account), the demo application
// and sink the account forwards to and sends scans to, the account Secret, the
// manager and the callback server as processes running as their ServiceAccounts, and the samples
// of config/samples. It returns once every code is Ready. On error, what was started is stopped.
func Start(ctx context.Context, opts Options) (s *Stack, err error) {
	if opts.Go == "" {
		opts.Go = "go"
	}
	con := &console{w: opts.Out}
	s = &Stack{opts: opts, con: con, log: con.prefixed("dev"), exited: make(chan *proc.Process, 8)}
	// envtest reports through controller-runtime's logger, which otherwise complains that it was
	// never set, with a stack trace.
	ctrllog.SetLogger(funcr.New(func(prefix, args string) { s.log.Printf("%s %s", prefix, args) }, funcr.Options{}))
	defer func() {
		if err == nil {
			return
		}
		if stopErr := s.Stop(); stopErr != nil {
			s.log.Printf("%v", stopErr)
		}
	}()
	start := time.Now()
	if err := os.MkdirAll(filepath.Join(opts.Dir, "logs"), 0o755); err != nil {
		return s, err
	}
	if s.lock, err = lockDir(opts.Dir); err != nil {
		return s, err
	}
	if pids := reapLeftovers(opts.Dir); len(pids) > 0 {
		s.log.Printf("killed processes %v left running by an earlier stack in %s that did not stop", pids, opts.Dir)
	}
	// Before the build, which takes minutes the first time, so that a taken port is said at once.
	// Free ports are picked only after it: one picked now could be taken during the build.
	if _, err = opts.Ports.resolve(); err != nil {
		return s, err
	}
	binDir := filepath.Join(opts.Dir, "bin")
	bins, err := Build(ctx, opts.Root, opts.Go, binDir, con.prefixed("build"))
	if err != nil {
		return s, err
	}
	// Again: another program may have taken one during the build.
	if s.opts.Ports, err = opts.Ports.resolve(); err != nil {
		return s, err
	}
	s.Kubectl = bins.Kubectl()
	samples, err := install.Render(ctx, s.Kubectl, filepath.Join(opts.Root, "config", "samples"))
	if err != nil {
		return s, err
	}
	secret, clusterAccount, codes, err := splitSamples(samples)
	if err != nil {
		return s, err
	}
	sample, err := credentials.FromSecret(secret)
	if err != nil {
		return s, fmt.Errorf("config/samples: account Secret: %w", err)
	}
	namespaced, others, err := s.namespacedSamples(ctx)
	if err != nil {
		return s, err
	}
	account := Account{Account: sample}
	if opts.Account != nil {
		account = *opts.Account
	}
	if err := s.startControlPlane(bins); err != nil {
		return s, err
	}
	if err := s.startWeChat(account, others); err != nil {
		return s, err
	}
	s.others = map[string]Account{}
	for _, o := range others {
		s.others[o.AppID] = Account{Account: o}
	}
	if err := s.startDemo(account, clusterAccount); err != nil {
		return s, err
	}
	if err := s.startOperator(ctx, bins, account, secret, clusterAccount); err != nil {
		return s, err
	}
	if s.fake != nil {
		if err := s.serveScans(account); err != nil {
			return s, err
		}
	}
	if err := s.createNamespaces(ctx); err != nil {
		return s, err
	}
	if !opts.NoSamples {
		if err := s.applySamples(ctx, account, codes, namespaced); err != nil {
			return s, err
		}
		if err := s.waitReady(ctx); err != nil {
			return s, err
		}
	}
	if err := s.State.write(opts.Dir); err != nil {
		return s, err
	}
	s.log.Printf("ready in %s", time.Since(start).Round(100*time.Millisecond))
	return s, nil
}

func (s *Stack) startControlPlane(bins Binaries) error {
	logs := filepath.Join(s.opts.Dir, "logs")
	apiLog, err := os.Create(filepath.Join(logs, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	etcdLog, err := os.Create(filepath.Join(logs, "etcd.log"))
	if err != nil {
		return err
	}
	// The control plane's data and certificates live in the stack's directory, not in envtest's
	// temporary ones, so that what a killed stack leaves behind is cleared by the next one.
	for _, d := range s.controlPlaneDirs() {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	s.env = &envtest.Environment{
		BinaryAssetsDirectory: bins.ControlPlane,
		CRDDirectoryPaths:     []string{filepath.Join(s.opts.Root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme.New(),
		ControlPlane: envtest.ControlPlane{
			APIServer: &envtest.APIServer{
				SecureServing: envtest.SecureServing{ListenAddr: envtest.ListenAddr{Address: "127.0.0.1", Port: strconv.Itoa(s.opts.Ports.APIServer)}},
				CertDir:       s.controlPlaneDirs()[1],
				Out:           apiLog,
				Err:           apiLog,
			},
			Etcd: &envtest.Etcd{DataDir: s.controlPlaneDirs()[0], Out: etcdLog, Err: etcdLog},
		},
	}
	s.log.Printf("starting etcd and kube-apiserver on https://%s (logs in %s)", hostPort(s.opts.Ports.APIServer), logs)
	begin := time.Now()
	if _, err := s.env.Start(); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	admin, err := s.env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	cfg := admin.Config()
	s.Kubeconfig = filepath.Join(s.opts.Dir, "kubeconfig")
	if err := kubeconfig("dev-admin").Write(s.Kubeconfig, cfg); err != nil {
		return err
	}
	if s.admin, err = client.New(cfg, client.Options{Scheme: s.env.Scheme}); err != nil {
		return err
	}
	s.log.Printf("API server up with the WeChatQRCode CRD in %s", time.Since(begin).Round(100*time.Millisecond))
	_, err = recordChildren(s.opts.Dir)
	return err
}

// controlPlaneDirs are etcd's data directory and kube-apiserver's certificate directory.
func (s *Stack) controlPlaneDirs() []string {
	return []string{filepath.Join(s.opts.Dir, "etcd"), filepath.Join(s.opts.Dir, "apiserver")}
}

// startWeChat starts the fake WeChat knowing a and others, the accounts of the other samples,
// so that every sample becomes Ready as written: their AppIDs are placeholders meant for it.
func (s *Stack) startWeChat(a Account, others []credentials.Account) error {
	if a.Real {
		s.log.Printf("real WeChat API, account %s (WECHAT_APP_ID)", a.AppID)
		return nil
	}
	fake, err := wechattest.NewServer(wechattest.Options{Addr: hostPort(s.opts.Ports.WeChat)})
	if err != nil {
		return fmt.Errorf("fake WeChat: %w", err)
	}
	appIDs := []string{a.AppID}
	fake.AddAccount(a.AppID, a.AppSecret)
	for _, o := range others {
		fake.AddAccount(o.AppID, o.AppSecret)
		appIDs = append(appIDs, o.AppID)
	}
	s.fake, s.WeChatURL = fake, fake.URL
	s.log.Printf("fake WeChat on %s with accounts %s", fake.URL, strings.Join(appIDs, ", "))
	return nil
}

// namespacedSamples renders config/samples/namespaced into NamespacedSamplesNamespace and returns
// its objects and the accounts of its Secrets.
func (s *Stack) namespacedSamples(ctx context.Context) ([]*unstructured.Unstructured, []credentials.Account, error) {
	objs, err := install.Render(ctx, s.Kubectl, filepath.Join(s.opts.Root, "config", "samples", "namespaced"))
	if err != nil {
		return nil, nil, err
	}
	var accounts []credentials.Account
	for _, u := range objs {
		u.SetNamespace(NamespacedSamplesNamespace)
		if u.GetKind() != "Secret" {
			continue
		}
		sec, err := secretOf(u)
		if err != nil {
			return nil, nil, err
		}
		a, err := credentials.FromSecret(sec)
		if err != nil {
			return nil, nil, fmt.Errorf("config/samples/namespaced: Secret %s: %w", u.GetName(), err)
		}
		accounts = append(accounts, a)
	}
	return objs, accounts, nil
}

func secretOf(u *unstructured.Unstructured) (*corev1.Secret, error) {
	sec := &corev1.Secret{}
	return sec, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, sec)
}

// createNamespaces creates the namespaces the samples and the documentation's examples use.
func (s *Stack) createNamespaces(ctx context.Context) error {
	for _, ns := range []string{NamespacedSamplesNamespace, ExamplesNamespace} {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("Namespace")
		u.SetName(ns)
		if err := install.Apply(ctx, s.admin, []*unstructured.Unstructured{u}); err != nil {
			return err
		}
	}
	return nil
}

// startOperator applies the RBAC of config/default, the account Secret and its
// ClusterWeChatAccount, and starts the manager and the callback server as their ServiceAccounts.
func (s *Stack) startOperator(ctx context.Context, bins Binaries, a Account, secret *corev1.Secret, account *unstructured.Unstructured) error {
	if err := install.ApplyRBAC(ctx, s.admin, s.Kubectl, s.opts.Root); err != nil {
		return err
	}
	cfg := s.env.Config
	managerKC, callbackKC := filepath.Join(s.opts.Dir, "manager.kubeconfig"), filepath.Join(s.opts.Dir, "callback.kubeconfig")
	if err := install.WriteServiceAccountKubeconfig(ctx, cfg, install.ManagerServiceAccount, kubeconfig(""), managerKC); err != nil {
		return err
	}
	if err := install.WriteServiceAccountKubeconfig(ctx, cfg, install.CallbackServiceAccount, kubeconfig(""), callbackKC); err != nil {
		return err
	}
	a.apply(secret)
	if err := s.admin.Create(ctx, secret); err != nil {
		return fmt.Errorf("account Secret: %w", err)
	}
	if err := install.Apply(ctx, s.admin, []*unstructured.Unstructured{account}); err != nil {
		return fmt.Errorf("ClusterWeChatAccount: %w", err)
	}
	s.AccountSecret, s.Account = secret.Name, account.GetName()
	s.log.Printf("RBAC of config/default applied; ClusterWeChatAccount %s with Secret %s/%s holds account %s", account.GetName(), secret.Namespace, secret.Name, a.AppID)

	p := s.opts.Ports
	managerArgs := proc.ManagerArgs{
		Kubeconfig:              managerKC,
		LeaderElect:             true,
		LeaderElectionNamespace: install.OperatorNamespace,
		MetricsAddr:             hostPort(p.ManagerMetrics),
		PlainMetrics:            true,
		ProbeAddr:               hostPort(p.ManagerHealth),
		// The callback server tags through it with its ServiceAccount's token, as in a cluster.
		TaggingAddr:      "127.0.0.1:0",
		TaggingAdvertise: "127.0.0.1",
		Console:          true,
	}
	if s.fake != nil {
		// The fake serves the images too, so status.imageURL opens on this machine.
		managerArgs.WeChatURL = s.fake.URL
	}
	callbackArgs := proc.CallbackArgs{
		Kubeconfig:   callbackKC,
		BindAddr:     hostPort(p.Callback),
		ProbeAddr:    hostPort(p.CallbackHealth),
		MetricsAddr:  hostPort(p.CallbackMetrics),
		PlainMetrics: true,
		Namespace:    install.OperatorNamespace,
		// A fixed name, as a Pod's: restarted, the server is the same replica and takes its
		// Leases back at once instead of waiting for them to expire (`make outage`).
		Identity: "callback-0",
		Console:  true,
	}
	s.CallbackURL = "http://" + hostPort(p.Callback)
	s.callback = child{"callback", bins.Callback, callbackArgs.Args(), p.CallbackHealth}
	for _, c := range []child{{"manager", bins.Manager, managerArgs.Args(), p.ManagerHealth}, s.callback} {
		if _, err := s.start(ctx, c); err != nil {
			return err
		}
	}
	var err error
	s.PIDs, err = recordChildren(s.opts.Dir)
	return err
}

// start starts c and waits until it is ready. Its exit ends the stack, unless the stack
// restarts it.
func (s *Stack) start(ctx context.Context, c child) (*proc.Process, error) {
	p, err := startProcess(c.name, c.path, c.args, nil, s.con)
	if err != nil {
		return nil, err
	}
	s.procsMu.Lock()
	s.procs = append(s.procs, p)
	s.procsMu.Unlock()
	go func() {
		<-p.Done()
		s.procsMu.Lock()
		restarted := s.restarted[p]
		s.procsMu.Unlock()
		if !restarted {
			s.exited <- p
		}
	}()
	return p, s.waitHealthy(ctx, p, c.health)
}

// killCallback kills the callback server with SIGKILL, as a node failure or an OOM kill would,
// and returns its pid.
func (s *Stack) killCallback() (int, error) {
	s.procsMu.Lock()
	i := slices.IndexFunc(s.procs, func(p *proc.Process) bool { return p.Name == s.callback.name })
	if i < 0 {
		s.procsMu.Unlock()
		return 0, errors.New("the stack runs no callback server")
	}
	p := s.procs[i]
	s.procs = slices.Delete(s.procs, i, i+1)
	if s.restarted == nil {
		s.restarted = map[*proc.Process]bool{}
	}
	s.restarted[p] = true
	s.procsMu.Unlock()
	p.Kill()
	return p.Pid(), nil
}

// restartCallback starts the callback server again as it was started, and records the new pid
// so that no process of the stack outlives it unnoticed.
func (s *Stack) restartCallback(ctx context.Context) (int, error) {
	p, err := s.start(ctx, s.callback)
	if err != nil {
		return 0, err
	}
	if s.PIDs, err = recordChildren(s.opts.Dir); err != nil {
		return 0, err
	}
	return p.Pid(), s.State.write(s.opts.Dir)
}

// waitHealthy waits for a process's readiness probe, as a kubelet would before sending traffic.
func (s *Stack) waitHealthy(ctx context.Context, p *proc.Process, port int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return p.WaitReady(ctx, "http://"+hostPort(port)+"/readyz", 250*time.Millisecond)
}

// splitSamples finds the account Secret, the ClusterWeChatAccount and the codes among the
// objects of config/samples. The Secret stays in the operator's namespace, where a
// ClusterWeChatAccount's Secret lives; the codes go to the samples namespace.
func splitSamples(objs []*unstructured.Unstructured) (*corev1.Secret, *unstructured.Unstructured, []*unstructured.Unstructured, error) {
	var (
		secret  *corev1.Secret
		account *unstructured.Unstructured
		codes   []*unstructured.Unstructured
	)
	for _, u := range objs {
		switch u.GetKind() {
		case "Secret":
			var err error
			if secret, err = secretOf(u); err != nil {
				return nil, nil, nil, err
			}
			secret.Namespace = install.OperatorNamespace
		case qrv1alpha1.KindClusterWeChatAccount:
			account = u
		case "WeChatQRCode":
			u.SetNamespace(SamplesNamespace)
			codes = append(codes, u)
		}
	}
	if secret == nil || account == nil {
		return nil, nil, nil, errors.New("config/samples has no account Secret or no ClusterWeChatAccount")
	}
	return secret, account, codes, nil
}

// applySamples applies the codes of config/samples, then config/samples/namespaced. With a real
// account, the Permanent ones are left out: a permanent code exists at WeChat forever and counts
// against the account's 100,000; and so is config/samples/namespaced, whose account is a
// placeholder only the fake WeChat knows.
func (s *Stack) applySamples(ctx context.Context, a Account, samples, namespaced []*unstructured.Unstructured) error {
	var codes []*unstructured.Unstructured
	for _, u := range samples {
		if typ, _, _ := unstructured.NestedString(u.Object, "spec", "type"); a.Real && typ == string(qrv1alpha1.Permanent) {
			s.log.Printf("real WeChat: not applying the Permanent sample %s (a permanent code can never be deleted)", u.GetName())
			continue
		}
		codes = append(codes, u)
	}
	if err := install.Apply(ctx, s.admin, codes); err != nil {
		return err
	}
	s.log.Printf("applied %d codes of config/samples in namespace %s", len(codes), SamplesNamespace)
	if a.Real {
		s.log.Printf("real WeChat: not applying config/samples/namespaced (its account is a placeholder)")
		return nil
	}
	if err := install.Apply(ctx, s.admin, namespaced); err != nil {
		return err
	}
	s.log.Printf("applied config/samples/namespaced in namespace %s", NamespacedSamplesNamespace)
	return nil
}

// waitReady waits until every code has Ready True, or says which are not and why.
func (s *Stack) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	begin := time.Now()
	for {
		var list qrv1alpha1.WeChatQRCodeList
		if err := s.admin.List(ctx, &list); err != nil {
			return err
		}
		var notReady []string
		for _, c := range list.Items {
			if !isReady(&c) {
				notReady = append(notReady, c.Namespace+"/"+c.Name+" ("+readyReason(&c)+")")
			}
		}
		if len(notReady) == 0 {
			s.log.Printf("all %d codes Ready in %s", len(list.Items), time.Since(begin).Round(100*time.Millisecond))
			return nil
		}
		select {
		case p := <-s.exited:
			return p.ExitError()
		case <-ctx.Done():
			return fmt.Errorf("codes not Ready: %v", notReady)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func readyCondition(c *qrv1alpha1.WeChatQRCode) (status, reason string) {
	if cond := c.ReadyCondition(); cond != nil {
		return string(cond.Status), cond.Reason
	}
	return "", "no Ready condition yet"
}

func isReady(c *qrv1alpha1.WeChatQRCode) bool {
	status, _ := readyCondition(c)
	return status == "True"
}

func readyReason(c *qrv1alpha1.WeChatQRCode) string {
	_, reason := readyCondition(c)
	return reason
}

// Wait returns when ctx ends (nil) or when a process of the stack exits on its own (its error).
func (s *Stack) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case p := <-s.exited:
		return p.ExitError()
	}
}

// processGrace is how long the manager and the callback server get to finish after SIGTERM, a
// bit less than the Deployment's terminationGracePeriodSeconds would allow, to keep Ctrl-C quick.
const processGrace = 10 * time.Second

// Stop stops everything in the reverse order of Start: the operator's processes first, while the
// API server they talk to is still up, then the fake WeChat, then kube-apiserver and etcd. It
// removes the state file, so that `scan` does not talk to a stack that is gone. It fails when
// kube-apiserver or etcd may still run.
func (s *Stack) Stop() error {
	if s.lock == nil {
		return nil
	}
	defer s.lock.release()
	_ = os.Remove(stateFile(s.opts.Dir))
	for _, srv := range s.servers {
		_ = srv.Close()
	}
	s.procsMu.Lock()
	procs := slices.Clone(s.procs)
	s.procsMu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].Stop(processGrace); err != nil {
			s.log.Printf("%v", err)
		}
	}
	if s.fake != nil {
		s.fake.Close()
	}
	if s.env != nil {
		if err := s.env.Stop(); err != nil {
			// Their record stays, for the next stack in this directory to reap.
			return fmt.Errorf("stopping the control plane: %w (the next stack in %s kills what is left)", err, s.opts.Dir)
		}
	}
	_ = os.Remove(pidsFile(s.opts.Dir))
	for _, d := range s.controlPlaneDirs() {
		_ = os.RemoveAll(d)
	}
	return nil
}
