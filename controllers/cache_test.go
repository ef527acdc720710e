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

package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

func TestCacheTransform(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	code := &v1alpha1.WeChatQRCode{ObjectMeta: metav1.ObjectMeta{
		ManagedFields: managed,
		Annotations: map[string]string{
			v1alpha1.AnnotationRecentEvents:    "k1 k2 k3",
			v1alpha1.AnnotationScans:           "3",
			"team":                             "marketing",
			corev1.LastAppliedConfigAnnotation: `{"spec":{}}`,
		},
	}}
	out, err := CacheTransform()(code)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*v1alpha1.WeChatQRCode)
	if _, ok := got.Annotations[v1alpha1.AnnotationRecentEvents]; ok || got.ManagedFields != nil {
		t.Errorf("recent-events or managed fields kept: %+v", got.ObjectMeta)
	}
	if _, ok := got.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		t.Errorf("last-applied-configuration kept: %v", got.Annotations)
	}
	if got.Annotations[v1alpha1.AnnotationScans] != "3" || got.Annotations["team"] != "marketing" {
		t.Errorf("other annotations lost: %v", got.Annotations)
	}

	// Other kinds keep their annotations, whatever they are called, but kubectl's copy of what
	// was applied (of a Secret, its data).
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{ManagedFields: managed,
		Annotations: map[string]string{v1alpha1.AnnotationRecentEvents: "x", corev1.LastAppliedConfigAnnotation: `{"data":{"appSecret":"c2VjcmV0"}}`}}}
	out, err = CacheTransform()(secret)
	if err != nil {
		t.Fatal(err)
	}
	if s := out.(*corev1.Secret); s.ManagedFields != nil || len(s.Annotations) != 1 || s.Annotations[v1alpha1.AnnotationRecentEvents] != "x" {
		t.Errorf("secret transformed wrongly: %+v", s.ObjectMeta)
	}
}
