{{/* Chart name, overridable. */}}
{{- define "atrium.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; resource names append "-<app>" to it. */}}
{{- define "atrium.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "atrium.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object of the release. */}}
{{- define "atrium.labels" -}}
helm.sh/chart: {{ include "atrium.chart" . }}
{{ include "atrium.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: atrium
{{- end }}

{{- define "atrium.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atrium.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Per-app names and labels. Called with (dict "root" $ "app" "<app name>").
*/}}
{{- define "atrium.appFullname" -}}
{{- printf "%s-%s" (include "atrium.fullname" .root) .app | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "atrium.appLabels" -}}
{{ include "atrium.labels" .root }}
app.kubernetes.io/component: {{ .app }}
{{- end }}

{{- define "atrium.appSelectorLabels" -}}
{{ include "atrium.selectorLabels" .root }}
app.kubernetes.io/component: {{ .app }}
{{- end }}

{{- define "atrium.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "atrium.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "atrium.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Name of the Secret made by the chart for connection URLs and the registration secret. */}}
{{- define "atrium.connectionsSecretName" -}}
{{- printf "%s-connections" (include "atrium.fullname" .) }}
{{- end }}

{{- define "atrium.signingKeySecretName" -}}
{{- default (printf "%s-signing-key" (include "atrium.fullname" .)) .Values.signingKey.existingSecret }}
{{- end }}

{{- define "atrium.signingKeySecretKey" -}}
{{- if .Values.signingKey.existingSecret }}{{ .Values.signingKey.existingSecretKey }}{{ else }}signing.key{{ end }}
{{- end }}

{{/* The Ingress host and port other servers use for federation (/.well-known/matrix/server). */}}
{{- define "atrium.wellKnownServer" -}}
{{- if .Values.config.wellKnownServer }}
{{- .Values.config.wellKnownServer }}
{{- else if .Values.ingress.enabled }}
{{- printf "%s:443" .Values.ingress.host }}
{{- end }}
{{- end }}

{{- define "atrium.publicBaseurl" -}}
{{- if .Values.publicBaseurl }}
{{- .Values.publicBaseurl }}
{{- else if .Values.ingress.enabled }}
{{- printf "%s://%s/" (ternary "https" "http" .Values.ingress.tls.enabled) .Values.ingress.host }}
{{- else }}
{{- printf "http://%s:8008/" .Values.serverName }}
{{- end }}
{{- end }}

{{/*
The atrium.yaml of the ConfigMap, as a dict (keys of libs/config/src/schema.ts).
Connection URLs and secrets are not here: they come from Secrets as ATRIUM_*
environment variables, which override the file.
*/}}
{{- define "atrium.configDict" -}}
{{- $c := .Values.config }}
{{- $registration := dict "mode" $c.registration.mode "allow_guests" $c.registration.allowGuests "tokens" $c.registration.tokens }}
{{- $cfg := dict
  "server_name" (required "serverName is required" .Values.serverName)
  "public_baseurl" (include "atrium.publicBaseurl" .)
  "data_dir" "/var/lib/atrium"
  "signing_key_path" "/etc/atrium/keys/signing.key"
  "listeners" (dict "service" (dict "host" "0.0.0.0" "port" (int .Values.service.port)))
  "registration" $registration
  "rate_limits" (dict "enabled" $c.rateLimits.enabled "login" $c.rateLimits.login "register" $c.rateLimits.register)
  "rooms" (dict "default_version" (toString $c.rooms.defaultVersion))
  "telemetry" (dict "log_level" $c.logLevel)
}}
{{- with .Values.telemetry.otlpEndpoint }}
{{- $_ := set $cfg.telemetry "otlp_endpoint" . }}
{{- end }}
{{- with (include "atrium.wellKnownServer" .) }}
{{- $_ := set $cfg "well_known" (dict "server" .) }}
{{- end }}
{{- toYaml (mustMergeOverwrite $cfg (deepCopy $c.extra)) }}
{{- end }}

{{/*
An env entry read from a Secret: the existing Secret when set, else the
chart's connections Secret. Called with (dict "root" $ "name" ENV "spec" .Values.x "key" KEY).
*/}}
{{- define "atrium.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      {{- if .spec.existingSecret }}
      name: {{ .spec.existingSecret }}
      key: {{ .spec.existingSecretKey }}
      {{- else }}
      name: {{ include "atrium.connectionsSecretName" .root }}
      key: {{ .key }}
      {{- end }}
{{- end }}
