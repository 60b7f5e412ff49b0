{{/* The namespace every namespaced object goes in: an existing one, or the one the chart creates. */}}
{{- define "concierge.namespace" -}}
{{- .Values.intoNamespace | default .Values.namespace -}}
{{- end -}}

{{/* `concierge.<suffix>`, the tail of every API group (authentication., config., login., identity.). */}}
{{- define "concierge.groups" -}}
concierge.{{ .Values.apiGroupSuffix }}
{{- end -}}

{{/* Every object's labels: the app label the Concierge selects and stamps on what it creates, and the user's. */}}
{{- define "concierge.labels" -}}
app: {{ .Values.appName }}
{{- with .Values.customLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The Concierge's image: by digest when one is given. */}}
{{- define "concierge.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* A subject for the Concierge's ServiceAccount. */}}
{{- define "concierge.subject" -}}
- kind: ServiceAccount
  name: {{ .Values.appName }}
  namespace: {{ include "concierge.namespace" . }}
{{- end -}}
