{{/*
Names: the release's name when it already says "verbund", else "<release>-verbund".
*/}}
{{- define "verbund.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "verbund.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "verbund.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable across versions (a Deployment's selector is immutable). */}}
{{- define "verbund.selectorLabels" -}}
app.kubernetes.io/name: {{ include "verbund.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "verbund.labels" -}}
helm.sh/chart: {{ include "verbund.chart" . }}
{{ include "verbund.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: control-plane
app.kubernetes.io/part-of: verbund
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "verbund.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
