{{/* Names, labels, images, and the environment every phoneagent process shares. */}}

{{- define "phoneagent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "phoneagent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "phoneagent.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "phoneagent.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* labels: include "phoneagent.labels" (list $ "component") */}}
{{- define "phoneagent.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
{{ include "phoneagent.selectorLabels" . }}
{{- end -}}

{{- define "phoneagent.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "phoneagent.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* image: include "phoneagent.image" (list $ .Values.livekit.image); an empty one is phoneagent's */}}
{{- define "phoneagent.image" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 | default dict -}}
{{- $repo := $img.repository | default $root.Values.image.repository -}}
{{- $tag := $img.tag | default $root.Values.image.tag -}}
image: {{ printf "%s:%s" $repo $tag | quote }}
imagePullPolicy: {{ $img.pullPolicy | default $root.Values.image.pullPolicy }}
{{- end -}}

{{- define "phoneagent.redisHost" -}}
{{- if .Values.redis.enabled -}}
{{- include "phoneagent.fullname" . }}-redis
{{- else -}}
{{- required "redis.external.host is needed when redis.enabled is false" .Values.redis.external.host -}}
{{- end -}}
{{- end -}}

{{- define "phoneagent.redisPort" -}}
{{- if .Values.redis.enabled }}{{ .Values.redis.port }}{{ else }}{{ .Values.redis.external.port }}{{ end -}}
{{- end -}}

{{/* an env entry read from the Secret: include "phoneagent.secretEnv" (list $ "NAME" "key") */}}
{{- define "phoneagent.secretEnv" -}}
{{- $root := index . 0 -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.secrets.existingSecret }}
      key: {{ index . 2 }}
{{- end -}}

{{/* LiveKit's key and secret, then Redis's password: the references in the rendered configs */}}
{{- define "phoneagent.livekitSecretEnv" -}}
{{ include "phoneagent.secretEnv" (list . "LIVEKIT_API_KEY" .Values.secrets.keys.livekitApiKey) }}
{{ include "phoneagent.secretEnv" (list . "LIVEKIT_API_SECRET" .Values.secrets.keys.livekitApiSecret) }}
{{ include "phoneagent.secretEnv" (list . "REDIS_PASSWORD" .Values.secrets.keys.redisPassword) }}
{{- end -}}

{{/* NODE_IP: the address a hostNetwork pod's media is reached on: include ... (list $ .Values.sip.externalIP) */}}
{{- define "phoneagent.nodeIPEnv" -}}
{{- $ip := index . 1 -}}
- name: NODE_IP
{{- if $ip }}
  value: {{ $ip | quote }}
{{- else }}
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
{{- end }}
{{- end -}}

{{/* The database URL for phoneagent processes (none with sqlite: the state directory's file). */}}
{{- define "phoneagent.databaseEnv" -}}
{{- if eq .Values.database.mode "bundled" }}
{{ include "phoneagent.secretEnv" (list . "POSTGRES_PASSWORD" .Values.secrets.keys.postgresPassword) }}
- name: PHONEAGENT_DATABASE_URL
  value: "postgresql://{{ .Values.postgresql.user }}:$(POSTGRES_PASSWORD)@{{ include "phoneagent.fullname" . }}-postgresql:5432/{{ .Values.postgresql.database }}"
{{- else if eq .Values.database.mode "external" }}
{{ include "phoneagent.secretEnv" (list . "PHONEAGENT_DATABASE_URL" .Values.secrets.keys.databaseUrl) }}
{{- end }}
{{- end -}}

{{/* What every phoneagent process (control plane, worker, migrations) gets from the Secret. */}}
{{- define "phoneagent.appSecretEnv" -}}
{{ include "phoneagent.secretEnv" (list . "LIVEKIT_API_KEY" .Values.secrets.keys.livekitApiKey) }}
{{ include "phoneagent.secretEnv" (list . "LIVEKIT_API_SECRET" .Values.secrets.keys.livekitApiSecret) }}
{{ include "phoneagent.secretEnv" (list . "PHONEAGENT_WORKER_SECRET" .Values.secrets.keys.workerSecret) }}
{{ include "phoneagent.secretEnv" (list . "PHONEAGENT_SESSION_SECRET" .Values.secrets.keys.sessionSecret) }}
{{- if eq .Values.recordings.storage "s3" }}
{{ include "phoneagent.secretEnv" (list . "PHONEAGENT_S3_ACCESS_KEY" .Values.secrets.keys.s3AccessKey) }}
{{ include "phoneagent.secretEnv" (list . "PHONEAGENT_S3_SECRET_KEY" .Values.secrets.keys.s3SecretKey) }}
{{- end }}
{{- range $name, $key := .Values.secretEnv }}
{{ include "phoneagent.secretEnv" (list $ $name $key) }}
{{- end }}
{{- include "phoneagent.databaseEnv" . }}
{{- end -}}

{{/* Refusals: settings that cannot work together. */}}
{{- define "phoneagent.validate" -}}
{{- if not (has .Values.database.mode (list "bundled" "external" "sqlite")) -}}
{{- fail (printf "database.mode %q: use bundled, external or sqlite" .Values.database.mode) -}}
{{- end -}}
{{- if and (gt (int .Values.controlPlane.replicas) 1) (eq .Values.database.mode "sqlite") -}}
{{- fail "controlPlane.replicas > 1 needs PostgreSQL (database.mode bundled or external): replicas elect their leader on it, and SQLite is one process's file" -}}
{{- end -}}
{{- if not (has .Values.recordings.storage (list "s3" "local")) -}}
{{- fail (printf "recordings.storage %q: use s3 or local" .Values.recordings.storage) -}}
{{- end -}}
{{- if .Values.sip.tls.enabled -}}
{{- fail "sip.tls.enabled: livekit-sip's template has no TLS settings yet; keep it false" -}}
{{- end -}}
{{- range $name, $_ := .Values.env -}}
{{- if regexMatch "(?i)(KEY|SECRET|PASSWORD|TOKEN)" $name -}}
{{- fail (printf "env.%s looks like a secret: put it in the Secret and name it in secretEnv" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
