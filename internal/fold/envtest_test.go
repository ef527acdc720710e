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

package fold

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// The API server starts on first use, so that the unit tests run without one.
var (
	env testenv.Lazy
	// logs is what the folders log: a malformed segment is logged once.
	logs scantest.Logs
)

func TestMain(m *testing.M) { scantest.Main(m, &env, &logs) }

// fixture is one test's namespace with a folder of its ledger on a fake clock: the dedupe window
// and the ledger's collection step on it.
type fixture struct {
	*scantest.Namespace
	clock *clocktesting.FakeClock
	folds *Folder
}

func newFixture(t *testing.T) *fixture {
	return &fixture{Namespace: scantest.NewNamespace(t, env.Get(t)), clock: clocktesting.NewFakeClock(time.Now())}
}

// folder is a folder of the fixture's ledger, as a freshly elected replica starts it, on the
// fixture's fake clock. It reads the codes live: a cache's lag is not what these tests are about.
func (f *fixture) folder(writer client.Writer) *Folder {
	return f.folderWith(writer, DefaultOptions().ViewPatchRate)
}

// folderWith is f.folder patching at most viewRate codes' annotations per second of f.clock,
// folding every second.
func (f *fixture) folderWith(writer client.Writer, viewRate float64) *Folder {
	opts := DefaultOptions()
	opts.Namespace, opts.Interval, opts.ViewPatchRate = f.NS, time.Second, viewRate
	return New(f.clock, f.C, f.C, writer, nil, opts, ctrl.Log)
}

// fold runs one round of the fixture's folder.
func (f *fixture) fold() {
	f.T.Helper()
	if f.folds == nil {
		f.folds = f.folder(f.C)
	}
	if err := f.folds.Fold(f.Ctx); err != nil {
		f.T.Fatal(err)
	}
}

// wantCounts folds the fixture's ledger, then checks c's count annotations.
func (f *fixture) wantCounts(c *qrv1alpha1.WeChatQRCode, scans, subscribes string) {
	f.T.Helper()
	f.fold()
	if s, sub := f.Counts(c); s != scans || sub != subscribes {
		f.T.Fatalf("%s: scans=%q subscribes=%q, want %q and %q", c.Name, s, sub, scans, subscribes)
	}
}
