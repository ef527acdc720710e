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
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// CacheTransform drops from the manager's informer cache what the manager never reads: managed
// fields and kubectl's last-applied-configuration (a copy of the whole object as applied: of a
// Secret, its data, in a cache meant to hold Secrets' metadata only) of every object and, on
// WeChatQRCodes, the callback server's recent-events annotation. That annotation holds up to
// --recent-events keys (about 13 KiB at the default) on every busy code; at 10,000 codes it
// tripled the manager's memory. The manager writes only status subresources and objects it reads
// from the API server, so an annotation missing from a cached copy is never written back.
func CacheTransform() toolscache.TransformFunc {
	stripManagedFields := cache.TransformStripManagedFields()
	return func(in any) (any, error) {
		out, err := stripManagedFields(in)
		if obj, ok := out.(metav1.Object); ok {
			if a := obj.GetAnnotations(); a != nil {
				delete(a, corev1.LastAppliedConfigAnnotation)
			}
		}
		if code, ok := out.(*v1alpha1.WeChatQRCode); ok {
			delete(code.Annotations, v1alpha1.AnnotationRecentEvents)
		}
		return out, err
	}
}
