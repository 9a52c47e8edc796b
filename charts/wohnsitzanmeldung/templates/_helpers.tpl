{{/*
Names. Every object is named after the chart: verbund installs one release per booking
namespace, and the offering's smoke test calls http://wohnsitzanmeldung:8080.
*/}}
{{- define "wohnsitzanmeldung.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wohnsitzanmeldung.fullname" -}}
{{- include "wohnsitzanmeldung.name" . -}}
{{- end -}}

{{- define "wohnsitzanmeldung.configName" -}}
{{- printf "%s-config" (include "wohnsitzanmeldung.fullname" .) -}}
{{- end -}}

{{- define "wohnsitzanmeldung.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable across versions (a Deployment's selector is immutable). */}}
{{- define "wohnsitzanmeldung.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wohnsitzanmeldung.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "wohnsitzanmeldung.labels" -}}
helm.sh/chart: {{ include "wohnsitzanmeldung.chart" . }}
{{ include "wohnsitzanmeldung.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "wohnsitzanmeldung.image" -}}
{{- $image := .Values.image -}}
{{- printf "%s/%s:%s" $image.registry $image.repository ($image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The PostgreSQL dependency: host and port from verbund's block, else the values. */}}
{{- define "wohnsitzanmeldung.databaseHost" -}}
{{- $verbund := .Values.verbund | default dict -}}
{{- dig "dependencies" "postgresql" "host" "" $verbund | default .Values.database.host | default "postgresql" -}}
{{- end -}}

{{- define "wohnsitzanmeldung.databasePort" -}}
{{- $verbund := .Values.verbund | default dict -}}
{{- dig "dependencies" "postgresql" "port" "" $verbund | default .Values.database.port | default 5432 | int -}}
{{- end -}}

{{/* A feature flag: the tenant's value if set, else the offering's default. */}}
{{- define "wohnsitzanmeldung.feature" -}}
{{- $features := .features | default dict -}}
{{- if hasKey $features .key -}}
{{- index $features .key | toString -}}
{{- else -}}
{{- .default | toString -}}
{{- end -}}
{{- end -}}

{{/* The fewest and the most pods that can run. */}}
{{- define "wohnsitzanmeldung.minReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- get .Values.autoscaling "minReplicas" | default .Values.replicaCount | default 1 | int -}}
{{- else -}}
{{- .Values.replicaCount | int -}}
{{- end -}}
{{- end -}}

{{- define "wohnsitzanmeldung.maxReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- $min := include "wohnsitzanmeldung.minReplicas" . | int -}}
{{- get .Values.autoscaling "maxReplicas" | default (max $min (.Values.replicaCount | int)) | int -}}
{{- else -}}
{{- .Values.replicaCount | int -}}
{{- end -}}
{{- end -}}
