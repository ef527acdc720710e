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

package kubectlplugin_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/kubectlplugin"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, func(e *testenv.Env) { env = e }) }

// now is the fake clock's time: every age and expiry on screen is measured from it.
var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// cluster is one test's namespace on the envtest API server and a kubeconfig whose context
// points at it, which the plugin is given as a user would give it.
type cluster struct {
	t          *testing.T
	ns         string
	kubeconfig string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plugin-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := (proc.Kubeconfig{Cluster: "envtest", User: "admin", Namespace: ns.Name}).Write(path, env.Config); err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, ns: ns.Name, kubeconfig: path}
}

// run runs `kubectl wechat args…` in process, as the binary does, and returns its output and exit code.
func (c *cluster) run(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	cmd := kubectlplugin.NewCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut}, clocktesting.NewFakePassiveClock(now))
	cmd.SetArgs(append([]string{"--kubeconfig", c.kubeconfig}, args...))
	code = kubectlplugin.Execute(cmd, &errOut)
	return out.String(), errOut.String(), code
}

func (c *cluster) create(obj client.Object) {
	c.t.Helper()
	if obj.GetNamespace() == "" {
		obj.SetNamespace(c.ns)
	}
	if err := env.Client.Create(context.Background(), obj); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) get(name string) *v1alpha1.WeChatQRCode {
	c.t.Helper()
	code := &v1alpha1.WeChatQRCode{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: name}, code); err != nil {
		c.t.Fatal(err)
	}
	return code
}

func newCode(name string, typ v1alpha1.QRCodeType, scene v1alpha1.Scene) *v1alpha1.WeChatQRCode {
	return &v1alpha1.WeChatQRCode{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.WeChatQRCodeSpec{
			AccountRef: v1alpha1.AccountReference{Name: "official-account"},
			Type:       typ,
			Scene:      scene,
		},
	}
}

func temporary(name string, id int64) *v1alpha1.WeChatQRCode {
	code := newCode(name, v1alpha1.Temporary, v1alpha1.Scene{ID: ptr.To(id)})
	code.Spec.TTL = &metav1.Duration{Duration: 168 * time.Hour}
	return code
}

func permanent(name, scene string) *v1alpha1.WeChatQRCode {
	return newCode(name, v1alpha1.Permanent, v1alpha1.Scene{Str: ptr.To(scene)})
}

func at(t time.Time) *metav1.Time { return &metav1.Time{Time: t} }

// issue records a ticket in the code's status through the status subresource, as the
// controller does after WeChat answered, issued at issuedAt.
func (c *cluster) issue(code *v1alpha1.WeChatQRCode, issuedAt time.Time) {
	c.t.Helper()
	ticket := "gQFG8DwAAAAAAAAAAS5odHRwOi8v" + code.Name
	st := &code.Status
	st.ObservedGeneration = code.Generation
	st.Ticket = ticket
	st.URL = "http://weixin.qq.com/q/02" + code.Name
	st.ImageURL = "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=" + ticket
	st.IssuedFor = &v1alpha1.IssuedFor{AppID: "wx0000000000test01", Type: code.Spec.Type, Scene: code.Spec.Scene}
	st.IssuedAt = at(issuedAt)
	message := fmt.Sprintf("Permanent ticket issued at %s", issuedAt.Format(time.RFC3339))
	if code.Spec.Type == v1alpha1.Temporary {
		st.ExpiresAt = at(issuedAt.Add(code.Spec.TTL.Duration))
		st.RenewalTime = at(st.ExpiresAt.Add(-code.Spec.TTL.Duration / 3))
		message = fmt.Sprintf("Ticket issued at %s, valid until %s; renewal at %s",
			issuedAt.Format(time.RFC3339), st.ExpiresAt.Format(time.RFC3339), st.RenewalTime.Format(time.RFC3339))
	}
	c.setReady(code, metav1.ConditionTrue, "Issued", message)
}

func (c *cluster) setReady(code *v1alpha1.WeChatQRCode, status metav1.ConditionStatus, reason, message string) {
	c.t.Helper()
	code.Status.ObservedGeneration = code.Generation
	code.Status.Conditions = []metav1.Condition{{
		Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: message,
		ObservedGeneration: code.Generation, LastTransitionTime: metav1.NewTime(now.Add(-time.Hour)),
	}}
	if err := env.Client.Status().Update(context.Background(), code); err != nil {
		c.t.Fatal(err)
	}
}

// event records an Event about code as the controller's events.k8s.io recorder does.
func (c *cluster) event(code *v1alpha1.WeChatQRCode, when time.Time, typ, reason, note string) {
	c.t.Helper()
	c.create(&eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{GenerateName: code.Name + "-"},
		EventTime:           metav1.NewMicroTime(when),
		ReportingController: "wechat.qrcode-operator.io/manager",
		ReportingInstance:   "manager-0",
		Action:              "IssueTicket",
		Reason:              reason,
		Type:                typ,
		Note:                note,
		Regarding: corev1.ObjectReference{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "WeChatQRCode",
			Namespace: code.Namespace, Name: code.Name, UID: code.UID,
		},
	})
}

func (c *cluster) secret(data map[string]string) {
	c.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "official-account"}, StringData: data}
	c.create(s)
}
