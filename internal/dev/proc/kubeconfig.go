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

package proc

import (
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig is a kubeconfig with one cluster, one user and one context, all of it but the
// server in its fields.
type Kubeconfig struct {
	// Cluster names the cluster and the context.
	Cluster string
	User    string
	// Auth is how User authenticates; nil for the credentials of the rest.Config.
	Auth *clientcmdapi.AuthInfo
	// Namespace is the context's default namespace; empty for the API's default.
	Namespace string
}

// Write writes the kubeconfig for the API server of cfg to path: what a child process is given
// with --kubeconfig, since a rest.Config does not cross a process boundary.
func (k Kubeconfig) Write(path string, cfg *rest.Config) error {
	auth := k.Auth
	if auth == nil {
		auth = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[k.Cluster] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[k.User] = auth
	kc.Contexts[k.Cluster] = &clientcmdapi.Context{Cluster: k.Cluster, AuthInfo: k.User, Namespace: k.Namespace}
	kc.CurrentContext = k.Cluster
	return clientcmd.WriteToFile(*kc, path)
}
