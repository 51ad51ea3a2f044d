{{/*
Fixed names, as `cloudtaser target install` renders them: the webhook is
cluster-wide (one MutatingWebhookConfiguration), so one release per cluster.
*/}}
{{- define "cloudtaser.name" -}}cloudtaser-webhook{{- end -}}

{{- define "cloudtaser.labels" -}}
app.kubernetes.io/name: cloudtaser-webhook
app.kubernetes.io/part-of: cloudtaser
{{- end -}}

{{- define "cloudtaser.selector" -}}
app.kubernetes.io/name: cloudtaser-webhook
{{- end -}}

{{/* Namespaces never sent to the webhook: the system ones and the release's own. */}}
{{- define "cloudtaser.namespaceSelector" -}}
{{- with .Values.webhook.namespaceLabels }}
matchLabels:
  {{- toYaml . | nindent 2 }}
{{- end }}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- range .Values.webhook.excludeNamespaces }}
      - {{ . | quote }}
      {{- end }}
      - {{ .Release.Namespace | quote }}
{{- end -}}

{{/* The CEL condition: only pods annotated cloudtaser.io/inject: "true" reach the webhook. */}}
{{- define "cloudtaser.injectExpression" -}}
has(object.metadata.annotations) && 'cloudtaser.io/inject' in object.metadata.annotations && object.metadata.annotations['cloudtaser.io/inject'] == 'true'
{{- end -}}

{{- define "cloudtaser.failurePolicy" -}}
{{- if .Values.sandbox.loopback -}}Ignore{{- else -}}{{ .Values.webhook.failurePolicy }}{{- end -}}
{{- end -}}

{{/*
The port the webhook pod listens on. In production one port; the Service
maps 443 to it. In the sandbox (host network, one node) the pod of a new
revision takes the port the running one does not hold, read from the live
Deployment, so the new pod starts and turns Ready beside the old one.
*/}}
{{- define "cloudtaser.podPort" -}}
{{- if .Values.sandbox.loopback -}}
{{- $live := 0 -}}
{{- $dep := lookup "apps/v1" "Deployment" .Release.Namespace "cloudtaser-webhook" -}}
{{- if $dep -}}
{{- range $dep.spec.template.spec.containers -}}
{{- if eq .name "webhook" -}}{{- range .ports -}}{{- $live = int .containerPort -}}{{- end -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq $live (int .Values.webhook.port) -}}{{ .Values.sandbox.secondPort }}{{- else -}}{{ .Values.webhook.port }}{{- end -}}
{{- else -}}
{{ .Values.webhook.port }}
{{- end -}}
{{- end -}}

{{/* Pod settings shared by the webhook and the pre-delete hook in the sandbox. */}}
{{- define "cloudtaser.loopbackPod" -}}
{{- if .Values.sandbox.loopback }}
hostNetwork: true
# The sandbox has no cluster DNS: the node's resolver.
dnsPolicy: Default
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* There is no kube-proxy in the sandbox: in-cluster clients use the API server on loopback. */}}
{{- define "cloudtaser.loopbackEnv" -}}
{{- if .Values.sandbox.loopback }}
env:
  - name: KUBERNETES_SERVICE_HOST
    value: "127.0.0.1"
  - name: KUBERNETES_SERVICE_PORT
    value: {{ .Values.sandbox.apiServerPort | quote }}
{{- end }}
{{- end -}}

{{- define "cloudtaser.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
