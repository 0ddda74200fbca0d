{{/*
Chart name, truncated to the DNS label limit.
*/}}
{{- define "batch-translate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified release name; every resource name is this plus a component suffix.
*/}}
{{- define "batch-translate.fullname" -}}
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

{{/*
Name of one component's resources: (dict "root" $ "suffix" "worker-en-fr" ["max" 52]).
CronJob names are limited to 52 characters, everything else to 63.
*/}}
{{- define "batch-translate.componentName" -}}
{{- $max := .max | default 63 | int }}
{{- printf "%s-%s" (include "batch-translate.fullname" .root) .suffix | lower | trunc $max | trimSuffix "-" }}
{{- end }}

{{/*
Chart label value.
*/}}
{{- define "batch-translate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one component: (dict "root" $ "component" "worker" ["pair" "en-fr"]).
Only labels that never change across upgrades: no chart version, no app version.
*/}}
{{- define "batch-translate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "batch-translate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .pair }}
batch-translate/pair: {{ . }}
{{- end }}
{{- end }}

{{/*
All labels of one component (same arguments as selectorLabels).
*/}}
{{- define "batch-translate.labels" -}}
helm.sh/chart: {{ include "batch-translate.chart" .root }}
{{ include "batch-translate.selectorLabels" . }}
{{- with .root.Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/part-of: {{ include "batch-translate.name" .root }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/*
Labels of chart-wide objects that belong to no component (ConfigMap, ServiceAccount, TriggerAuthentication).
*/}}
{{- define "batch-translate.commonLabels" -}}
helm.sh/chart: {{ include "batch-translate.chart" . }}
app.kubernetes.io/name: {{ include "batch-translate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/part-of: {{ include "batch-translate.name" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Service account the pods run as.
*/}}
{{- define "batch-translate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "batch-translate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference of one component: (dict "root" $ "image" .Values.api.image).
The tag defaults to the chart's appVersion, which is the Python package version `make image` tags with.
*/}}
{{- define "batch-translate.image" -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- $registry := .root.Values.image.registry | trimSuffix "/" }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry .image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Names of the existing Secrets the chart reads (it never creates one).
*/}}
{{- define "batch-translate.rabbitmqSecret" -}}
{{- .Values.rabbitmq.existingSecret | default (printf "%s-rabbitmq" (include "batch-translate.fullname" .)) }}
{{- end }}
{{- define "batch-translate.postgresqlSecret" -}}
{{- .Values.postgresql.existingSecret | default (printf "%s-postgresql" (include "batch-translate.fullname" .)) }}
{{- end }}
{{- define "batch-translate.apiKeysSecret" -}}
{{- .Values.api.auth.existingSecret | default (printf "%s-api-keys" (include "batch-translate.fullname" .)) }}
{{- end }}
{{- define "batch-translate.deliverySigningSecret" -}}
{{- .Values.delivery.signing.existingSecret | default (printf "%s-delivery-signing" (include "batch-translate.fullname" .)) }}
{{- end }}

{{/*
In-cluster URL of the API Service.
*/}}
{{- define "batch-translate.apiServiceUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "batch-translate.componentName" (dict "root" . "suffix" "api")) .Release.Namespace (.Values.api.service.port | int) }}
{{- end }}

{{/*
Base URL clients reach the API at: delivery.publicApiUrl, else the first Ingress host, else the Service.
*/}}
{{- define "batch-translate.publicApiUrl" -}}
{{- if .Values.delivery.publicApiUrl }}
{{- .Values.delivery.publicApiUrl | trimSuffix "/" }}
{{- else if and .Values.api.ingress.enabled .Values.api.ingress.hosts }}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .Values.api.ingress.tls))) (first .Values.api.ingress.hosts).host }}
{{- else }}
{{- include "batch-translate.apiServiceUrl" . }}
{{- end }}
{{- end }}

{{/*
Queue a translation worker consumes: <queuePrefix>.<pair>, as jobs.topology.Topology.queue(pair) names it.
*/}}
{{- define "batch-translate.workerQueue" -}}
{{- printf "%s.%s" .root.Values.queuePrefix .pair }}
{{- end }}

{{/*
Comma-separated language pairs of every configured model (the API's BT_PAIRS). Fails on a pair listed twice
(compared in lower case, as resource names are).
*/}}
{{- define "batch-translate.pairs" -}}
{{- $pairs := list }}
{{- $seen := dict }}
{{- range .Values.models }}
{{- if hasKey $seen (lower .pair) }}
{{- fail (printf "models: pair %s is listed more than once; list each pair once and override its settings there" .pair) }}
{{- end }}
{{- $_ := set $seen (lower .pair) true }}
{{- $pairs = append $pairs .pair }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/*
Pod-level settings every pod shares: service account without an API token, pull secrets, security context.
*/}}
{{- define "batch-translate.podCommon" -}}
serviceAccountName: {{ include "batch-translate.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
The shared settings ConfigMap, loaded whole into a container's environment.
*/}}
{{- define "batch-translate.configEnvFrom" -}}
- configMapRef:
    name: {{ include "batch-translate.componentName" (dict "root" . "suffix" "config") }}
{{- end }}

{{/*
Environment every component shares: connection URLs from existing Secrets (the rest comes from the ConfigMap).
*/}}
{{- define "batch-translate.sharedEnv" -}}
- name: BT_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "batch-translate.rabbitmqSecret" . }}
      key: {{ .Values.rabbitmq.urlKey }}
- name: BT_STORE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "batch-translate.postgresqlSecret" . }}
      key: {{ .Values.postgresql.urlKey }}
{{- end }}

{{/*
MLflow client environment of the components that talk to the model registry.
*/}}
{{- define "batch-translate.mlflowEnv" -}}
- name: MLFLOW_TRACKING_URI
  value: {{ .Values.mlflow.trackingUri | quote }}
{{- with .Values.mlflow.existingSecret }}
- name: MLFLOW_TRACKING_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.mlflow.usernameKey }}
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.mlflow.passwordKey }}
{{- end }}
{{- end }}

{{/*
Pod annotations that roll every pod when the shared settings change.
*/}}
{{- define "batch-translate.configChecksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}

{{/*
Scheduling onto the tainted GPU node pool: tolerations and node affinity (for GPU workloads only).
*/}}
{{- define "batch-translate.gpuScheduling" -}}
{{- with .Values.gpuNodePool.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.gpuNodePool.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
GPU resources: (dict "resources" $resources "gpu" $gpu) -> resources with the GPU limit (and request) added.
Extended resources such as nvidia.com/gpu cannot be overcommitted: requests must equal limits.
*/}}
{{- define "batch-translate.gpuResources" -}}
{{- $resources := deepCopy (.resources | default dict) }}
{{- if .gpu.enabled }}
{{- $limits := $resources.limits | default dict }}
{{- $_ := set $limits .gpu.resourceName (.gpu.count | int) }}
{{- $_ = set $resources "limits" $limits }}
{{- $requests := $resources.requests | default dict }}
{{- $_ = set $requests .gpu.resourceName (.gpu.count | int) }}
{{- $_ = set $resources "requests" $requests }}
{{- end }}
{{- toYaml $resources }}
{{- end }}

{{/*
A whole number rendered as a quoted string, as KEDA trigger metadata requires.
*/}}
{{- define "batch-translate.kedaNumber" -}}
{{- . | int64 | toString | quote }}
{{- end }}

{{/*
One model's worker configuration: `worker` with the model entry's overrides applied key by key (so that
`false` and `0` override too; a plain merge would skip them). (dict "root" $ "model" $model) -> YAML.
*/}}
{{- define "batch-translate.workerConfig" -}}
{{- $w := deepCopy .root.Values.worker }}
{{- range $key := list "replicaCount" "resources" "terminationGracePeriodSeconds" "modelVolume" "modelPath" "nodeSelector" "podAnnotations" "extraEnv" }}
{{- if hasKey $.model $key }}{{ $_ := set $w $key (get $.model $key) }}{{ end }}
{{- end }}
{{- range $section := list "gpu" "settings" "autoscaling" }}
{{- range $key, $value := (get $.model $section | default dict) }}
{{- if eq $key "backlog" }}
{{- range $k, $v := $value }}{{ $_ := set $w.autoscaling.backlog $k $v }}{{ end }}
{{- else }}
{{- $_ := set (get $w $section) $key $value }}
{{- end }}
{{- end }}
{{- end }}
{{- $_ := set $w "pair" .model.pair }}
{{- toYaml $w }}
{{- end }}
