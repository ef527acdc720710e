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

// Package e2e drives the operator with kubectl, as a user would, on the stack of `make dev`:
// a real kube-apiserver and etcd, the manager and the callback server as processes running as
// their ServiceAccounts with the RBAC of config/default, and the fake WeChat.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/install"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/stack"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// stack is a `dev up` process and what it reported.
type devStack struct {
	*stack.State
	cmd *exec.Cmd
	// output is the reading end of the pipe the stack writes its output to.
	output *os.File
	bin    string
	dir    string
	done   chan error
}

// startStack builds hack/dev and runs `dev up` as `make dev` does, on free ports in a scratch
// directory, without the samples (the test applies them with kubectl).
func startStack(t *testing.T) *devStack {
	t.Helper()
	root := testenv.RepoRoot()
	s := &devStack{bin: filepath.Join(t.TempDir(), "dev"), dir: t.TempDir(), done: make(chan error, 1)}
	build := exec.Command("go", "build", "-o", s.bin, "./hack/dev")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./hack/dev: %v\n%s", err, out)
	}
	s.cmd = exec.Command(s.bin, "up", "--dir", s.dir, "--any-ports", "--no-samples")
	s.cmd.Dir = root
	// The stack's output goes to the test's (go test shows it when the test fails) through a
	// pipe, as in `make dev | tee log`.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr, s.output = pw, pw, pr
	go func() { _, _ = io.Copy(os.Stdout, pr) }()
	s.cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own group, as in a terminal, so that the test's SIGINT reaches it as a Ctrl-C would.
		Setpgid: true,
		// A test binary that dies (timeout) still gets the stack stopped in order.
		Pdeathsig: syscall.SIGINT,
	}
	err = s.cmd.Start()
	_ = pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() { _ = s.interrupt(t) })

	deadline := time.After(3 * time.Minute) // a first build of the binaries included
	for {
		st, err := stack.LoadState(s.dir)
		if err == nil {
			s.State = st
			return s
		}
		if !errors.Is(err, stack.ErrNotRunning) {
			t.Fatal(err)
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("dev up exited before the stack was ready: %v", err)
		case <-deadline:
			t.Fatal("the stack was not ready within 3 minutes")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// interrupt sends the Ctrl-C of a terminal and waits for the stack to stop.
func (s *devStack) interrupt(t *testing.T) error {
	select {
	case err := <-s.done:
		s.done <- err
		return err
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGINT)
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(45 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		return errors.New("dev up did not stop within 45s of SIGINT")
	}
}

// kubectl runs kubectl as the admin and fails the test if it fails.
func (s *devStack) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.Run(context.Background(), nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// table parses the output of `kubectl get` into rows keyed by column header. Columns are cut at
// the header's positions because cells may be empty (EXPIRES of a Permanent code).
func table(out string) []map[string]string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 2 {
		return nil
	}
	header := lines[0]
	var starts []int
	var names []string
	for i := 0; i < len(header); i++ {
		if header[i] != ' ' && (i == 0 || header[i-1] == ' ') {
			starts = append(starts, i)
			end := strings.IndexByte(header[i:], ' ')
			if end < 0 {
				end = len(header) - i
			}
			names = append(names, header[i:i+end])
		}
	}
	var rows []map[string]string
	for _, line := range lines[1:] {
		row := map[string]string{}
		for j, start := range starts {
			end := len(line)
			if j+1 < len(starts) && starts[j+1] < end {
				end = starts[j+1]
			}
			if start < len(line) {
				row[names[j]] = strings.TrimSpace(line[start:end])
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func TestKubectlEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: runs the dev stack of `make dev` and kubectl against it (about 30 s); skipped under -short")
	}
	start := time.Now()
	s := startStack(t)
	t.Logf("stack ready in %s", time.Since(start).Round(100*time.Millisecond))
	root := testenv.RepoRoot()

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"samples are issued", func(t *testing.T) {
			s.kubectl(t, "apply", "-f", filepath.Join(root, "config", "samples")+"/")
			s.kubectl(t, "wait", "--for=condition=Ready", "wechatqrcodes", "--all", "--timeout=30s")
			rows := table(s.kubectl(t, "get", "wechatqrcodes", "-o", "wide"))
			if len(rows) != 4 {
				t.Fatalf("want the 4 samples, got %d rows", len(rows))
			}
			for _, r := range rows {
				if r["READY"] != "True" || !strings.HasPrefix(r["IMAGE"], "http") || !strings.Contains(r["IMAGE"], "/cgi-bin/showqrcode?ticket=") {
					t.Errorf("%s: READY %q IMAGE %q, want True and a showqrcode URL", r["NAME"], r["READY"], r["IMAGE"])
				}
			}
		}},
		{"config/default passes a server-side dry run", func(t *testing.T) {
			// A dry run creates nothing, so the namespace its objects go into must exist first;
			// the dev stack has created it, with the RBAC and the Pod Security label of
			// config/default, so that the Deployment is checked against "restricted" too.
			for _, dir := range []string{"default", "ingress"} {
				cmd := exec.Command(s.Kubectl, "--kubeconfig="+s.Kubeconfig, "apply", "--dry-run=server", "-k", filepath.Join(root, "config", dir))
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("dry run of config/%s: %v\n%s", dir, err, out)
				}
				if strings.Contains(string(out), "PodSecurity") {
					t.Errorf("config/%s breaks the namespace's Pod Security level:\n%s", dir, out)
				}
			}
		}},
		{"each ServiceAccount has exactly the rights it needs", func(t *testing.T) {
			checkRights(t, s)
		}},
		{"a simulated scan raises SCANS and reaches the sink", func(t *testing.T) {
			scan := exec.Command(s.bin, "scan", "--dir", s.dir, "--count", "3", "spring-sale-poster")
			out, err := scan.CombinedOutput()
			if err != nil {
				t.Fatalf("dev scan: %v\n%s", err, out)
			}
			// The demo sink, the account's spec.sink, printed one CloudEvent per scan, by the
			// scanner's OpenID (dev scan shows the line the sink printed for each).
			if n := strings.Count(string(out), "sink got: scan of default/spring-sale-poster: scene=123 openID=o-dev-"); n != 3 {
				t.Errorf("the sink printed %d of the 3 scans:\n%s", n, out)
			}
			// SCANS is folded from the scan ledger every --fold-interval (5 s): it lags the
			// acknowledged scans by about that, as README says, and by more on a loaded machine.
			var rows []map[string]string
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
				rows = table(s.kubectl(t, "get", "wechatqrcode", "spring-sale-poster"))
				if len(rows) == 1 && rows[0]["SCANS"] == "3" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("SCANS a minute after 3 acknowledged scans: %v", rows)
				}
			}
		}},
		{"a callback server killed -9 delivers after its restart what it had not (dev outage)", func(t *testing.T) {
			out, err := exec.Command(s.bin, "outage", "--dir", s.dir, "--count", "2", "spring-sale-poster").CombinedOutput()
			if err != nil {
				t.Fatalf("dev outage: %v\n%s", err, out)
			}
			for _, want := range []string{"the sink refused the callback server's deliveries", "killed with SIGKILL", "callback server started again"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("dev outage did not say %q:\n%s", want, out)
				}
			}
			if n := strings.Count(string(out), "sink got: scan of default/spring-sale-poster: scene=123 openID=o-dev-"); n != 2 {
				t.Errorf("the sink printed %d of the 2 scans after the restart:\n%s", n, out)
			}
			// The restarted server is a new process of the stack: Ctrl-C must stop it too.
			st, err := stack.LoadState(s.dir)
			if err != nil {
				t.Fatal(err)
			}
			s.PIDs = st.PIDs
		}},
		{"the namespaced sample is Ready in the namespace the stack made for it", func(t *testing.T) {
			// Its AppID is a placeholder: the fake WeChat of the stack knows it as it knows the
			// ClusterWeChatAccount's.
			ns := stack.NamespacedSamplesNamespace
			s.kubectl(t, "apply", "-k", filepath.Join(root, "config", "samples", "namespaced"), "-n", ns)
			s.kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "wechataccount/shop-account", "wechatqrcode/shop-window", "--timeout=30s")
			// Pushed as WeChat would for that account: to its own callback path, with its own
			// token and key; it has no spec.forward, so the callback server answers alone.
			out, err := exec.Command(s.bin, "scan", "--dir", s.dir, "--namespace", ns, "shop-window").CombinedOutput()
			if err != nil || !strings.Contains(string(out), ns+"/shop-window scan 1/1: subscribe (a new follower) by o-dev-") ||
				!strings.Contains(string(out), ": acknowledged, no reply") {
				t.Fatalf("dev scan --namespace %s shop-window: %v\n%s", ns, err, out)
			}
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
				rows := table(s.kubectl(t, "get", "wechatqrcode", "-n", ns, "shop-window"))
				if len(rows) == 1 && rows[0]["SCANS"] == "1" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("SCANS of %s/shop-window a minute after its scan: %v", ns, rows)
				}
			}
		}},
		{"a scan of a code that does not exist says which codes do", func(t *testing.T) {
			out, err := exec.Command(s.bin, "scan", "--dir", s.dir, "--namespace", stack.ExamplesNamespace, "spring-sale-poster").CombinedOutput()
			want := "dev: no WeChatQRCode marketing/spring-sale-poster; the codes are default/booth-checkin, default/business-card-zhang-wei, default/spring-sale-poster, default/store-entrance, shop/shop-window (name one with NAME=, its namespace with NAMESPACE=)\n"
			if err == nil || string(out) != want {
				t.Errorf("dev scan of an unknown code: %v\n%s\nwant\n%s", err, out, want)
			}
		}},
		{"a text message reaches the application, its reply the sender", func(t *testing.T) {
			// The account's spec.forward is the demo application: the callback server answers
			// no text message itself, forwards it, and relays the application's encrypted reply.
			out, err := exec.Command(s.bin, "message", "--dir", s.dir, "hello from e2e").CombinedOutput()
			if err != nil {
				t.Fatalf("dev message: %v\n%s", err, out)
			}
			if want := `replied (encrypted) "you said: hello from e2e"`; !strings.Contains(string(out), want) {
				t.Errorf("dev message printed %q, want the echo %s", out, want)
			}
			account := s.kubectl(t, "get", "clusterwechataccount", s.Account, "-o", "jsonpath={.status.forwardURL} {.status.sinkURI} {.status.conditions[?(@.type=='ForwardResolved')].status} {.status.conditions[?(@.type=='SinkResolved')].status}")
			if want := s.ApplicationURL + " " + s.SinkURL + " True True"; account != want {
				t.Errorf("account forwardURL, sinkURI, ForwardResolved, SinkResolved: %q, want %q", account, want)
			}
		}},
		{"an invalid manifest is refused with its message", func(t *testing.T) {
			bad := []byte(`apiVersion: wechat.qrcode-operator.io/v1alpha1
kind: WeChatQRCode
metadata: {name: e2e-invalid}
spec: {accountRef: {name: official-account}, type: Permanent, scene: {id: 7}, ttl: 24h}
`)
			_, err := s.Run(context.Background(), bad, "apply", "-f", "-")
			const want = "spec.ttl: Forbidden: ttl must not be set on a Permanent code: it never expires"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("want the refusal %q, got %v", want, err)
			}
		}},
		{"delete removes the codes", func(t *testing.T) {
			s.kubectl(t, "delete", "wechatqrcodes", "--all-namespaces", "--all", "--wait", "--timeout=30s")
			out, err := s.Run(context.Background(), nil, "get", "wechatqrcodes", "-o", "name")
			if err != nil || out != "" {
				t.Fatalf("codes left after delete: %q %v", out, err)
			}
		}},
	}
	for _, step := range steps {
		if !t.Run(step.name, step.run) {
			return
		}
	}

	t.Run("Ctrl-C leaves nothing running", func(t *testing.T) {
		// The same Ctrl-C ends a `tee` the output is piped to: the stack must stop in order with
		// nowhere to write.
		_ = s.output.Close()
		begin := time.Now()
		if err := s.interrupt(t); err != nil {
			t.Fatal(err)
		}
		t.Logf("stopped in %s", time.Since(begin).Round(100*time.Millisecond))
		for _, pid := range s.PIDs {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				t.Errorf("process %d still runs after the stack stopped", pid)
			}
		}
	})
	t.Logf("end to end in %s", time.Since(start).Round(100*time.Millisecond))
}

// checkRights asks the API server what each ServiceAccount may do. That the processes, running
// as these ServiceAccounts, issued and counted shows that the rights suffice; this shows that
// they go no further.
func checkRights(t *testing.T, s *devStack) {
	const opNS = install.OperatorNamespace
	sample := stack.SamplesNamespace
	for _, c := range []struct {
		sa      string
		allowed bool
		args    []string
	}{
		// The manager: watch the codes and write their status, read Secrets, record events, lead.
		{install.ManagerServiceAccount, true, []string{"watch", "wechatqrcodes", "-A"}},
		{install.ManagerServiceAccount, true, []string{"patch", "wechatqrcodes", "--subresource=status", "-n", sample}},
		{install.ManagerServiceAccount, true, []string{"get", "secrets", "-n", sample}},
		{install.ManagerServiceAccount, true, []string{"create", "events.events.k8s.io", "-n", sample}},
		{install.ManagerServiceAccount, true, []string{"update", "leases", "-n", opNS}},
		{install.ManagerServiceAccount, false, []string{"patch", "wechatqrcodes", "-n", sample}},
		{install.ManagerServiceAccount, false, []string{"delete", "wechatqrcodes", "-n", sample}},
		{install.ManagerServiceAccount, false, []string{"update", "secrets", "-n", sample}},
		{install.ManagerServiceAccount, false, []string{"patch", "deployments", "-n", opNS}},
		{install.ManagerServiceAccount, false, []string{"create", "pods", "-n", sample}},
		{install.ManagerServiceAccount, false, []string{"update", "leases", "-n", sample}},
		{install.ManagerServiceAccount, false, []string{"delete", "leases", "-n", opNS}},
		// The manager projects the accounts' push material into the operator's namespace.
		{install.ManagerServiceAccount, true, []string{"create", "secrets", "-n", opNS}},
		// Services that spec.forward and spec.sink name: read, and watched so that a reference
		// resolves when its Service appears; never written. Neither may the callback server read
		// them: it gets URLs from the push config.
		{install.ManagerServiceAccount, true, []string{"get", "services", "-n", sample}},
		{install.ManagerServiceAccount, true, []string{"watch", "services", "-A"}},
		{install.ManagerServiceAccount, false, []string{"update", "services", "-n", sample}},
		{install.CallbackServiceAccount, false, []string{"get", "services", "-n", sample}},
		// The callback server: read the codes, patch their annotations and the accounts'
		// status.callback and status.sinkDelivery, read the push config Secret and no other: never an AppSecret (the
		// account Secret), never a list of Secrets, never another namespace's.
		{install.CallbackServiceAccount, true, []string{"watch", "wechatqrcodes", "-A"}},
		{install.CallbackServiceAccount, true, []string{"patch", "wechatqrcodes", "-n", sample}},
		{install.CallbackServiceAccount, true, []string{"patch", "clusterwechataccounts", "--subresource=status"}},
		{install.CallbackServiceAccount, true, []string{"patch", "wechataccounts", "--subresource=status", "-n", sample}},
		{install.CallbackServiceAccount, false, []string{"patch", "clusterwechataccounts"}},
		{install.CallbackServiceAccount, true, []string{"get", "secrets/" + pushconfig.SecretName, "-n", opNS}},
		{install.CallbackServiceAccount, true, []string{"watch", "secrets/" + pushconfig.SecretName, "-n", opNS}},
		{install.CallbackServiceAccount, false, []string{"get", "secrets/" + s.AccountSecret, "-n", opNS}},
		{install.CallbackServiceAccount, false, []string{"list", "secrets", "-n", opNS}},
		{install.CallbackServiceAccount, false, []string{"update", "secrets/" + pushconfig.SecretName, "-n", opNS}},
		{install.CallbackServiceAccount, false, []string{"get", "secrets/" + pushconfig.SecretName, "-n", sample}},
		{install.CallbackServiceAccount, false, []string{"get", "secrets/official-account", "-n", sample}},
		{install.CallbackServiceAccount, false, []string{"get", "secrets/official-account", "-n", "kube-system"}},
		// Its push records, the callback's alone.
		{install.CallbackServiceAccount, true, []string{"patch", "wechatpushrecords", "-n", opNS}},
		{install.ManagerServiceAccount, false, []string{"patch", "wechatpushrecords", "-n", opNS}},
		// The deliverer writes a code's status.sinkDelivery, as it writes an account's: no new
		// power, since it could already patch the code itself (its annotations).
		{install.CallbackServiceAccount, true, []string{"patch", "wechatqrcodes", "--subresource=status", "-n", sample}},
		{install.CallbackServiceAccount, false, []string{"delete", "wechatqrcodes", "-n", sample}},
		{install.CallbackServiceAccount, false, []string{"create", "events.events.k8s.io", "-n", sample}},
		{install.CallbackServiceAccount, false, []string{"create", "events", "-n", opNS}},
		// The ledger, the tally and the fold's Lease: the callback's alone, in its namespace.
		{install.CallbackServiceAccount, true, []string{"create", "wechatscanledgers", "-n", opNS}},
		{install.CallbackServiceAccount, true, []string{"patch", "wechatscanledgers", "-n", opNS}},
		{install.CallbackServiceAccount, true, []string{"delete", "wechatscanledgers", "-n", opNS}},
		{install.CallbackServiceAccount, true, []string{"update", "wechatscantallies", "-n", opNS}},
		{install.CallbackServiceAccount, true, []string{"update", "leases", "-n", opNS}},
		{install.CallbackServiceAccount, false, []string{"create", "wechatscanledgers", "-n", sample}},
		{install.CallbackServiceAccount, false, []string{"update", "wechatscantallies", "-n", sample}},
		{install.CallbackServiceAccount, false, []string{"delete", "wechatscantallies", "-n", opNS}},
		// The deliverer follows the segments through a watch in its own namespace only.
		{install.CallbackServiceAccount, true, []string{"watch", "wechatscanledgers", "-n", opNS}},
		{install.CallbackServiceAccount, true, []string{"patch", "wechatscanledgers", "--subresource=status", "-n", opNS}},
		{install.CallbackServiceAccount, false, []string{"watch", "wechatscanledgers", "-n", sample}},
		{install.CallbackServiceAccount, false, []string{"watch", "wechatscanledgers", "-A"}},
		{install.CallbackServiceAccount, false, []string{"update", "leases", "-n", sample}},
		{install.ManagerServiceAccount, false, []string{"get", "wechatscanledgers", "-n", opNS}},
		{install.ManagerServiceAccount, false, []string{"list", "wechatscantallies", "-A"}},
		{install.ManagerServiceAccount, false, []string{"update", "wechatscantallies", "-n", opNS}},
		{install.ManagerServiceAccount, false, []string{"delete", "wechatscanledgers", "-n", opNS}},
	} {
		args := append([]string{"auth", "can-i", "--as=system:serviceaccount:" + opNS + ":" + c.sa}, c.args...)
		// can-i answers yes or no on stdout, and exits 1 for no.
		out, err := s.Run(context.Background(), nil, args...)
		got := strings.TrimSpace(out) == "yes"
		if got != c.allowed || (err != nil) == c.allowed {
			t.Errorf("%s: kubectl auth can-i %s: %q (%v), want allowed=%v", c.sa, strings.Join(c.args, " "), out, err, c.allowed)
		}
	}
}
