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

package kubectlplugin

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

func (p *plugin) renewCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "renew NAME",
		Short: "Ask the operator to re-issue a Temporary code's ticket now",
		Long: "Sets the annotation " + v1alpha1.AnnotationRenewRequestedAt + " to the current time; the operator " +
			"issues a new ticket once, as it would at status.renewalTime. The current ticket stays valid " +
			"at WeChat until it expires and its scans keep counting. Permanent codes are refused: WeChat " +
			"keeps one ticket per permanent scene forever, so they are never re-issued.",
		Example: "  kubectl wechat renew spring-sale-poster",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, code, err := p.getCode(cmd, args[0])
			if err != nil {
				return err
			}
			if code.Spec.Type == v1alpha1.Permanent {
				return fmt.Errorf("%s/%s is a Permanent code: permanent codes are never re-issued (WeChat keeps one ticket per permanent scene forever, so every printed image of it stays valid); nothing changed",
					code.Namespace, code.Name)
			}
			at := p.clock.Now().UTC().Format(time.RFC3339)
			// The resourceVersion makes the patch fail if the code changed since it was read,
			// so a code switched to Permanent in between is never marked.
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
				"resourceVersion": code.ResourceVersion,
				"annotations":     map[string]string{v1alpha1.AnnotationRenewRequestedAt: at},
			}})
			if err != nil {
				return err
			}
			if err := c.Patch(cmd.Context(), code, client.RawPatch(types.MergePatchType, patch)); err != nil {
				if apierrors.IsConflict(err) {
					return fmt.Errorf("%s/%s changed while the request was being made: run the command again", code.Namespace, code.Name)
				}
				return fmt.Errorf("patching %s/%s: %w", code.Namespace, code.Name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s: re-issue requested at %s. The current ticket stays valid until it expires; `kubectl wechat status -n %s %s` shows the new one.\n",
				code.Namespace, code.Name, at, code.Namespace, code.Name)
			return nil
		},
	}
}
