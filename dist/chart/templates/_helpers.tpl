{{/* The chart's name, or nameOverride. */}}
{{- define "wqo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object's name. A release named like the chart (helm install
wechat-qrcode-operator ...) gives the names that config/default gives, so the two install methods
name things alike (test/helm checks it).
*/}}
{{- define "wqo.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "wqo.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The labels of one release; the instance label keeps two releases apart. */}}
{{- define "wqo.instanceLabels" -}}
app.kubernetes.io/name: {{ include "wqo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels that select the operator's Pods. */}}
{{- define "wqo.selectorLabels" -}}
{{ include "wqo.instanceLabels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{/* Labels of every object. part-of matches config/, so label queries work for both installs. */}}
{{- define "wqo.labels" -}}
{{ include "wqo.instanceLabels" . }}
app.kubernetes.io/part-of: wechat-qrcode-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "wqo.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}

{{/*
The rules controller-gen writes from the RBAC markers (config/rbac/<who>/role.yaml), copied into
files/ by `make manifests`, so that a new marker reaches the chart without a hand edit.
*/}}
{{- define "wqo.generatedRules" -}}
{{- $kind := .kind | default "ClusterRole" }}
{{- $rules := list }}
{{- range splitList "\n---\n" (.root.Files.Get (printf "files/%s-role.yaml" .who)) }}
{{- $doc := fromYaml . }}
{{- if eq (get $doc "kind") $kind }}{{ $rules = $doc.rules }}{{ end }}
{{- end }}
{{- if not $rules }}{{ fail (printf "files/%s-role.yaml has no %s rules: run make manifests" .who $kind) }}{{ end }}
{{- toYaml $rules }}
{{- end }}
