{{/* Labels on every object: the name the kustomize manifests use, plus Helm's own. */}}
{{- define "budgetgate.labels" -}}
app.kubernetes.io/name: budgetgate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Selector labels of a component (webhook or controller); fixed, one release per cluster. */}}
{{- define "budgetgate.selector" -}}
app.kubernetes.io/name: budgetgate
app.kubernetes.io/component: {{ . }}
{{- end }}

{{- define "budgetgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The controller's ServiceAccount as the apiserver names the user. */}}
{{- define "budgetgate.controllerUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:budgetgate-controller
{{- end }}

{{/* Pod scheduling and security shared by both Deployments; arg: dict "root" . "c" component-values "name" component. */}}
{{- define "budgetgate.podSpecCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
