{{/*
Names. Every object is named after the chart: verbund installs one release per booking
namespace, and the offering's smoke test calls http://bauantrag-online:8080.
*/}}
{{- define "bauantrag-online.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bauantrag-online.fullname" -}}
{{- include "bauantrag-online.name" . -}}
{{- end -}}

{{- define "bauantrag-online.configName" -}}
{{- printf "%s-config" (include "bauantrag-online.fullname" .) -}}
{{- end -}}

{{- define "bauantrag-online.mailSecretName" -}}
{{- printf "%s-mail" (include "bauantrag-online.fullname" .) -}}
{{- end -}}

{{- define "bauantrag-online.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable across versions (a Deployment's selector is immutable). */}}
{{- define "bauantrag-online.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bauantrag-online.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bauantrag-online.labels" -}}
helm.sh/chart: {{ include "bauantrag-online.chart" . }}
{{ include "bauantrag-online.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "bauantrag-online.image" -}}
{{- $image := .Values.image -}}
{{- printf "%s/%s:%s" $image.registry $image.repository ($image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The PostgreSQL dependency: host and port from verbund's block, else the values. */}}
{{- define "bauantrag-online.databaseHost" -}}
{{- $verbund := .Values.verbund | default dict -}}
{{- dig "dependencies" "postgresql" "host" "" $verbund | default .Values.database.host | default "postgresql" -}}
{{- end -}}

{{- define "bauantrag-online.databasePort" -}}
{{- $verbund := .Values.verbund | default dict -}}
{{- dig "dependencies" "postgresql" "port" "" $verbund | default .Values.database.port | default 5432 | int -}}
{{- end -}}

{{/* A feature flag: the tenant's value if set, else the offering's default. */}}
{{- define "bauantrag-online.feature" -}}
{{- $features := .features | default dict -}}
{{- if hasKey $features .key -}}
{{- index $features .key | toString -}}
{{- else -}}
{{- .default | toString -}}
{{- end -}}
{{- end -}}

{{/* The fewest and the most pods that can run. */}}
{{- define "bauantrag-online.minReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- get .Values.autoscaling "minReplicas" | default .Values.replicaCount | default 1 | int -}}
{{- else -}}
{{- .Values.replicaCount | int -}}
{{- end -}}
{{- end -}}

{{- define "bauantrag-online.maxReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- $min := include "bauantrag-online.minReplicas" . | int -}}
{{- get .Values.autoscaling "maxReplicas" | default (max $min (.Values.replicaCount | int)) | int -}}
{{- else -}}
{{- .Values.replicaCount | int -}}
{{- end -}}
{{- end -}}

{{/* The XBau version: the tenant's `xbau_version`, else the package's `xbau.version`. */}}
{{- define "bauantrag-online.xbauVersion" -}}
{{- $xbau := get .Values "xbau" | default dict -}}
{{- get .Values "xbau_version" | default (get $xbau "version") | default "2.4" | toString -}}
{{- end -}}

{{/* The largest upload in MiB (the offering's default 500). */}}
{{- define "bauantrag-online.maxUploadMib" -}}
{{- get .Values "max_upload_mib" | default 500 | int -}}
{{- end -}}

{{/* The Keycloak dependency, as JSON: verbund's block, else keycloak.host/port; {} if neither. */}}
{{- define "bauantrag-online.keycloak" -}}
{{- $verbund := .Values.verbund | default dict -}}
{{- $dependency := dig "dependencies" "keycloak" (dict) $verbund -}}
{{- $host := get $dependency "host" | default .Values.keycloak.host -}}
{{- if $host -}}
{{- dict "host" $host "port" (get $dependency "port" | default .Values.keycloak.port | default 80 | int) "credentialsSecretName" (get $dependency "credentialsSecretName" | default .Values.keycloak.existingSecret) | toJson -}}
{{- else -}}
{{- dict | toJson -}}
{{- end -}}
{{- end -}}
