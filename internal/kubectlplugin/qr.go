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
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/qrimage"
)

type qrOptions struct {
	output        string
	size          int
	margin        int
	caption       string
	all           bool
	allNamespaces bool
	format        string
}

// imageWriters are the image formats, by file extension.
var imageWriters = map[string]func(*qrimage.Code, io.Writer, qrimage.Options) error{
	".png": (*qrimage.Code).WritePNG,
	".svg": (*qrimage.Code).WriteSVG,
}

// indexFile is what `qr --all` writes beside the images: one row per image, for a printer.
const indexFile = "index.csv"

func (p *plugin) qrCommand() *cobra.Command {
	o := &qrOptions{}
	cmd := &cobra.Command{
		Use:   "qr (NAME | --all -o DIR)",
		Short: "Draw a code from status.url: in the terminal, into a PNG or SVG, or every code into a directory",
		Long: "Renders the QR code locally from status.url (nothing is fetched from WeChat). Without -o it " +
			"is drawn in the terminal with half blocks; -o FILE.png or FILE.svg writes a print-ready image " +
			"(SVG for posters: it scales without loss). --all -o DIR writes the image of every Ready code " +
			"of the namespace (-A: of every namespace) as DIR/<namespace>/<name>.<format> and an " + indexFile +
			" (namespace, name, scene, type, url, expiry, file); codes that are not Ready are listed on " +
			"stderr, skipped, and make the exit code 2. A single code that is not Ready exits 2 too: drawn " +
			"with a warning when it still has a URL, not at all without one.",
		Example: "  kubectl wechat qr spring-sale-poster\n" +
			"  kubectl wechat qr spring-sale-poster -o poster.svg --caption 'Scan for the spring sale'\n" +
			"  kubectl wechat qr -A --all -o print/ --caption '{name}'",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.all && len(args) > 0:
				return errors.New("give a NAME or --all, not both")
			case o.all:
				return p.exportAll(cmd, o)
			case len(args) == 0:
				return errors.New("give the NAME of a code, or --all -o DIR for every code")
			case o.allNamespaces:
				return errors.New("-A goes with --all")
			}
			return p.drawOne(cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "", "image file to write (.png or .svg); with --all, the directory")
	f.IntVar(&o.size, "size", 1024, "width of the image: pixels of a PNG, the width attribute of an SVG")
	f.IntVar(&o.margin, "margin", qrimage.DefaultMargin, "quiet zone around the code, in modules (the QR standard asks for 4)")
	f.StringVar(&o.caption, "caption", "", "a line of text under the code; {namespace}, {name} and {scene} stand for the code's")
	f.BoolVar(&o.all, "all", false, "every Ready code of the namespace (with -A, of all namespaces), into the directory -o")
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "with --all: every namespace")
	f.StringVar(&o.format, "format", "png", "with --all: the image format, png or svg")
	return cmd
}

func (o *qrOptions) imageOptions(code *v1alpha1.WeChatQRCode) qrimage.Options {
	caption := strings.NewReplacer("{namespace}", code.Namespace, "{name}", code.Name, "{scene}", code.Spec.Scene.Key()).Replace(o.caption)
	return qrimage.Options{Size: o.size, Margin: o.margin, Caption: caption}
}

func (p *plugin) drawOne(cmd *cobra.Command, o *qrOptions, name string) error {
	_, code, err := p.getCode(cmd, name)
	if err != nil {
		return err
	}
	isReady, why := ready(code)
	if code.Status.URL == "" {
		return &ExitError{Code: ExitNotReady, Message: fmt.Sprintf("%s/%s has no URL yet: Ready is %s", code.Namespace, code.Name, why)}
	}
	// Drawn all the same, for a look at a code being renewed; the exit code tells a script.
	var notReady error
	if !isReady {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s/%s is not Ready (%s): its ticket may no longer scan\n", code.Namespace, code.Name, why)
		notReady = &ExitError{Code: ExitNotReady}
	}
	qr, err := qrimage.Encode(code.Status.URL)
	if err != nil {
		return err
	}
	imgOpts := o.imageOptions(code)
	if o.output != "" {
		write, ok := imageWriters[strings.ToLower(filepath.Ext(o.output))]
		if !ok {
			return fmt.Errorf("-o %s: the file must end in .png or .svg", o.output)
		}
		if err := writeFile(o.output, func(w io.Writer) error { return write(qr, w, imgOpts) }); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s)\n", o.output, code.Status.URL)
		return notReady
	}
	if cmd.Flags().Changed("size") {
		return errors.New("--size applies to image files (-o FILE.png or FILE.svg)")
	}
	out := cmd.OutOrStdout()
	if err := qr.WriteTerminal(out, o.margin, isTerminal(out)); err != nil {
		return err
	}
	if imgOpts.Caption != "" {
		fmt.Fprintln(out, imgOpts.Caption)
	}
	return notReady
}

// isTerminal: colours are set only for a terminal, so a redirected drawing is plain text.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// writeFile writes path through write into a temporary file renamed at the end, so that a
// failure leaves neither a partial file nor a damaged earlier one.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name()) // the temporary file; the error that matters is err
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func (p *plugin) exportAll(cmd *cobra.Command, o *qrOptions) error {
	if o.output == "" {
		return errors.New("--all needs -o DIR, the directory to write the images and " + indexFile + " into")
	}
	ext := "." + strings.ToLower(o.format)
	write, ok := imageWriters[ext]
	if !ok {
		return fmt.Errorf("--format %s: png or svg", o.format)
	}
	c, err := p.client()
	if err != nil {
		return err
	}
	var opts []client.ListOption
	where := "any namespace"
	if !o.allNamespaces {
		ns, err := p.namespace()
		if err != nil {
			return err
		}
		opts, where = append(opts, client.InNamespace(ns)), "namespace "+ns
	}
	var list v1alpha1.WeChatQRCodeList
	if err := c.List(cmd.Context(), &list, opts...); err != nil {
		return explain(err, "the WeChatQRCodes of "+where)
	}
	slices.SortFunc(list.Items, func(a, b v1alpha1.WeChatQRCode) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})

	rows := [][]string{{"namespace", "name", "scene", "type", "url", "expiry", "file"}}
	var skipped int
	for i := range list.Items {
		code := &list.Items[i]
		isReady, why := ready(code)
		if code.Status.URL == "" || !isReady {
			fmt.Fprintf(cmd.ErrOrStderr(), "skipped %s/%s: not Ready: %s\n", code.Namespace, code.Name, why)
			skipped++
			continue
		}
		qr, err := qrimage.Encode(code.Status.URL)
		if err != nil {
			return err
		}
		file := filepath.Join(code.Namespace, code.Name+ext)
		if err := os.MkdirAll(filepath.Join(o.output, code.Namespace), 0o755); err != nil {
			return err
		}
		imgOpts := o.imageOptions(code)
		if err := writeFile(filepath.Join(o.output, file), func(w io.Writer) error { return write(qr, w, imgOpts) }); err != nil {
			return err
		}
		var expiry string
		if code.Status.ExpiresAt != nil {
			expiry = code.Status.ExpiresAt.UTC().Format(time.RFC3339)
		}
		rows = append(rows, []string{code.Namespace, code.Name, code.Spec.Scene.Key(), string(code.Spec.Type), code.Status.URL, expiry, file})
	}
	if err := os.MkdirAll(o.output, 0o755); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(o.output, indexFile), func(w io.Writer) error {
		return csv.NewWriter(w).WriteAll(rows)
	}); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %d %s and %s to %s\n", len(rows)-1, plural(len(rows)-1, "image", "images"), indexFile, o.output)
	if skipped > 0 {
		return &ExitError{Code: ExitNotReady, Message: fmt.Sprintf("%d of %d codes in %s skipped: not Ready (listed above)", skipped, len(list.Items), where)}
	}
	return nil
}
