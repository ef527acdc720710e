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

package pushconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Write makes the push config Secret in namespace hold exactly accounts and no tagging
// endpoint: what tests and the benchmarks write in the manager's place.
func Write(ctx context.Context, reader client.Reader, writer client.Writer, namespace string, accounts ...Account) error {
	return WriteConfig(ctx, reader, writer, namespace, accounts, nil)
}

// WriteConfig makes the push config Secret in namespace hold exactly accounts and the tagging
// endpoint (nil: none), creating it if need be, and writes nothing when it already does: the
// manager's projection. The Secret is read through reader, so that the manager reads it
// uncached (its cache holds no Secret data) and writes through writer.
func WriteConfig(ctx context.Context, reader client.Reader, writer client.Writer, namespace string, accounts []Account, tagging *Tagging) error {
	data, err := Encode(accounts)
	if err != nil {
		return err
	}
	if tagging != nil {
		if data[TaggingKey], err = json.Marshal(tagging); err != nil {
			return err
		}
	}
	cur := &corev1.Secret{}
	switch err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: SecretName}, cur); {
	case apierrors.IsNotFound(err):
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: SecretName,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "wechat-qrcode-operator"}}, Data: data}
		return client.IgnoreAlreadyExists(writer.Create(ctx, s))
	case err != nil:
		return err
	case maps.EqualFunc(cur.Data, data, bytes.Equal):
		return nil
	}
	cur.Data = data
	return writer.Update(ctx, cur)
}
