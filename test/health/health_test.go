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

// Package health proves that GitOps tools read the operator's resources right: kstatus (what Flux
// and Argo CD's built-in health follow) and the Argo CD health Lua the README gives, run on the
// objects the real controller writes into a real API server, in every state a code or an account
// can be in.
package health

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	testenv.Run(m, func(e *testenv.Env) { env = e })
}

// kind is one resource of the operator as GitOps tools see it: the Argo CD health Lua the README
// gives for it, and each state the controller can put an object of it in.
type kind struct {
	name string
	// lua is the health script, relative to the repository root.
	lua    string
	states []state
}

// state drives an object into one state through the real controller and returns the object as
// the API server holds it then.
type state struct {
	name  string
	drive func(h *harness) *unstructured.Unstructured
	// want is kstatus's verdict.
	want status.Status
	// argo is Argo CD's verdict when it is not the one want maps to (see argoFor).
	argo string
}

// argoFor is the Argo CD health status that agrees with a kstatus status. Argo CD never runs a
// health script on an object being deleted: it reports Progressing ("Pending deletion") itself.
var argoFor = map[status.Status]string{
	status.CurrentStatus:     "Healthy",
	status.InProgressStatus:  "Progressing",
	status.FailedStatus:      "Degraded",
	status.TerminatingStatus: "Progressing",
}

const kindCode = "WeChatQRCode"

// healthLua is the one health script of every kind: they all report kstatus conditions.
const healthLua = "config/argocd/health.lua"

func kinds() []kind {
	return []kind{
		{name: kindCode, lua: healthLua, states: codeStates()},
		{name: v1alpha1.KindWeChatAccount, lua: healthLua, states: accountStates(v1alpha1.KindWeChatAccount)},
		{name: v1alpha1.KindClusterWeChatAccount, lua: healthLua, states: accountStates(v1alpha1.KindClusterWeChatAccount)},
	}
}

func TestHealth(t *testing.T) {
	// One manager for every kind: ClusterWeChatAccounts are cluster-scoped, so a second manager
	// (with another cluster-resource namespace) would reconcile them too and fight the first.
	h := newHarness(t)
	for _, k := range kinds() {
		script, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), k.lua))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range k.states {
			t.Run(k.name+"/"+s.name, func(t *testing.T) {
				h.t = t
				defer h.fake.ClearFaults()
				obj := s.drive(h)
				st := obj.Object["status"]
				res, err := status.Compute(obj)
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != s.want {
					t.Errorf("kstatus says %s (%s), want %s; status: %v", res.Status, res.Message, s.want, st)
				}
				want := argoFor[s.want]
				if s.argo != "" {
					want = s.argo
				}
				got, msg := argoHealth(t, string(script), obj)
				if got != want {
					t.Errorf("Argo CD says %s (%s), want %s; status: %v", got, msg, want, st)
				}
				t.Logf("kstatus %s %q; Argo CD %s %q", res.Status, res.Message, got, msg)
			})
		}
	}
}

// argoHealth is what Argo CD reports for obj with script as the kind's health customization.
func argoHealth(t *testing.T, script string, obj *unstructured.Unstructured) (healthStatus, message string) {
	t.Helper()
	if obj.GetDeletionTimestamp() != nil {
		return "Progressing", "Pending deletion"
	}
	healthStatus, message, err := runHealthLua(context.Background(), script, obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	return healthStatus, message
}
