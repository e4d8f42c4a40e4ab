{{- define "switchboard.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "switchboard.labels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "switchboard.secretName" -}}
{{- if .Values.apiKeys.existingSecret -}}
{{- .Values.apiKeys.existingSecret -}}
{{- else -}}
{{- include "switchboard.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* The Redis URL of cluster mode: the given one, or the development Redis. */}}
{{- define "switchboard.redisUrl" -}}
{{- if .Values.cluster.redisUrl -}}
{{ .Values.cluster.redisUrl }}
{{- else if .Values.cluster.sentinel.hosts -}}
redis+sentinel://{{ join "," .Values.cluster.sentinel.hosts }}/{{ required "cluster.sentinel.primaryName" .Values.cluster.sentinel.primaryName }}
{{- else if .Values.cluster.devRedis -}}
redis://{{ include "switchboard.fullname" . }}-redis:6379
{{- else -}}
{{ fail "cluster.enabled needs cluster.redisUrl or cluster.sentinel.hosts (or cluster.devRedis for a trial)" }}
{{- end -}}
{{- end -}}

{{/*
A value of the chart's Secret kept across upgrades: (list $ "key" "new value") gives the
value an earlier release stored under "key", else the new value.
*/}}
{{- define "switchboard.kept" -}}
{{- $ctx := index . 0 -}}
{{- $old := lookup "v1" "Secret" $ctx.Release.Namespace (include "switchboard.fullname" $ctx) -}}
{{- if and $old $old.data (hasKey $old.data (index . 1)) -}}
{{- index $old.data (index . 1) | b64dec -}}
{{- else -}}
{{- index . 2 -}}
{{- end -}}
{{- end -}}

{{/*
The API keys the chart's Secret holds: apiKeys.keys, else those an earlier release
generated (kept across upgrades), else a new random pair. Empty with apiKeys.existingSecret.
*/}}
{{- define "switchboard.apiKeys" -}}
{{- if not .Values.apiKeys.existingSecret -}}
{{- if .Values.apiKeys.keys -}}
{{- .Values.apiKeys.keys -}}
{{- else -}}
{{- include "switchboard.kept" (list . "keys" (printf "generated%s:%s" (randNumeric 6) (randAlphaNum 48))) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A YAML value as TOML: strings quoted, numbers and booleans as they are, lists in
brackets, maps as inline tables (keys quoted, sorted).
*/}}
{{- define "switchboard.toml" -}}
{{- if kindIs "slice" . -}}
[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "switchboard.toml" $v }}{{ end }}]
{{- else if kindIs "map" . -}}
{{- $m := . -}}
{ {{- range $i, $k := keys $m | sortAlpha }}{{ if $i }}, {{ end }}{{ $k | quote }} = {{ include "switchboard.toml" (get $m $k) }}{{ end -}} }
{{- else if kindIs "string" . -}}
{{ . | quote }}
{{- else if kindIs "float64" . -}}
{{ . | int64 }}
{{- else -}}
{{ . }}
{{- end -}}
{{- end -}}

{{/* (list "name" items): each item a `[[name]]` table of TOML key = value lines. */}}
{{- define "switchboard.tomlTables" -}}
{{- $name := index . 0 -}}
{{- range index . 1 }}
[[{{ $name }}]]
{{- range $k, $v := . }}
{{ $k }} = {{ include "switchboard.toml" $v }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The Secret holding sip.toml (trunks and users), or empty when SIP needs none. */}}
{{- define "switchboard.sipSecret" -}}
{{- if .Values.sip.enabled -}}
{{- if .Values.sip.existingSecret -}}
{{ .Values.sip.existingSecret }}
{{- else if or .Values.sip.trunks .Values.sip.users -}}
{{ include "switchboard.fullname" . }}
{{- end -}}
{{- end -}}
{{- end -}}
