{{/* Names and labels shared by every template. The chart keeps to the template subset that
scripts/render-chart.mjs renders (README.md, "Template subset"). */}}

{{- define "srt-gw.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "srt-gw.fullname.untruncated" -}}
{{- if .Values.fullnameOverride -}}
{{ .Values.fullnameOverride }}
{{- else if eq .Release.Name (include "srt-gw.name" .) -}}
{{ .Release.Name }}
{{- else -}}
{{ .Release.Name }}-{{ include "srt-gw.name" . }}
{{- end -}}
{{- end -}}

{{- define "srt-gw.fullname" -}}
{{- include "srt-gw.fullname.untruncated" . | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The pod selector: never changes between upgrades (a Deployment's selector is immutable). */}}
{{- define "srt-gw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "srt-gw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* part-of is the ServiceMonitor's jobLabel: the alert rules select job="srt-gw". */}}
{{- define "srt-gw.labels" -}}
{{ include "srt-gw.selectorLabels" . }}
app.kubernetes.io/part-of: srt-gw
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "srt-gw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Values.serviceAccount.name | default (include "srt-gw.fullname" .) }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end -}}

{{- define "srt-gw.policyConfigMap" -}}
{{ .Values.policy.existingConfigMap | default (printf "%s-policy" (include "srt-gw.fullname" .)) }}
{{- end -}}

{{- define "srt-gw.caSecret" -}}
{{ .Values.ca.existingSecret | default (printf "%s-ca" (include "srt-gw.fullname" .)) }}
{{- end -}}

{{- define "srt-gw.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "srt-gw.agentNamespace" -}}
{{ .Values.networkPolicy.agentNamespace | default .Release.Namespace }}
{{- end -}}

{{/* Both containers: the image's non-root user, nothing to escalate to, a read-only root file
system (the gateway writes only under /var/lib/srt-gw and /tmp, both volumes). */}}
{{- define "srt-gw.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
