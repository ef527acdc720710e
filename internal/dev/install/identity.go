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

package install

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
)

// The operator's namespace and ServiceAccounts, as config/default names them.
const (
	OperatorNamespace      = "wechat-qrcode-operator-system"
	ManagerServiceAccount  = "wechat-qrcode-operator-manager"
	CallbackServiceAccount = "wechat-qrcode-operator-callback"
)

// rbacKinds are the objects of config/default that give the operator its identities and rights.
var rbacKinds = map[string]bool{
	"Namespace": true, "ServiceAccount": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true,
}

// ApplyRBAC applies the identities and rights of config/default and nothing else: nothing here
// would run its Deployment (there is no scheduler and no kubelet), the processes take its place.
// Running them as these ServiceAccounts makes a local run fail where a real install would, on
// a right the RBAC forgot. root is the repository's.
func ApplyRBAC(ctx context.Context, c client.Client, kubectl, root string) error {
	objs, err := Render(ctx, kubectl, filepath.Join(root, "config", "default"))
	if err != nil {
		return err
	}
	var rbac []*unstructured.Unstructured
	for _, u := range objs {
		if rbacKinds[u.GetKind()] {
			rbac = append(rbac, u)
		}
	}
	return Apply(ctx, c, rbac)
}

// tokenLifetime outlives any local session; the tokens die with the control plane's signing key
// when it stops.
const tokenLifetime = 30 * 24 * time.Hour

// WriteServiceAccountKubeconfig writes kc to path, authenticating as the operator's ServiceAccount
// name with a token from the TokenRequest API, as a Pod's projected token would.
func WriteServiceAccountKubeconfig(ctx context.Context, admin *rest.Config, name string, kc proc.Kubeconfig, path string) error {
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return err
	}
	tr, err := cs.CoreV1().ServiceAccounts(OperatorNamespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(tokenLifetime.Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for ServiceAccount %s/%s: %w", OperatorNamespace, name, err)
	}
	kc.User, kc.Auth = name, &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	return kc.Write(path, admin)
}
