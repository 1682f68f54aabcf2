{{/* Labels of every object: the component's name, part-of raum, and (unless
rendering plain manifests) Helm's own. */}}
{{- define "raum.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: raum
{{- if not .root.Values.plainManifests }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}
{{- end -}}

{{/* Pod selector of a component. */}}
{{- define "raum.selector" -}}
app.kubernetes.io/name: {{ . }}
app.kubernetes.io/part-of: raum
{{- end -}}

{{- define "raum.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "raum.operatorServiceAccount" -}}
{{ if .Values.serviceAccount.create }}raum-operator{{ else }}{{ .Values.operator.serviceAccountName }}{{ end }}
{{- end -}}

{{- define "raum.gatewayServiceAccount" -}}
{{ if .Values.serviceAccount.create }}raum-gateway{{ else }}{{ .Values.gateway.serviceAccountName }}{{ end }}
{{- end -}}

{{/* The restricted Pod Security Standard, for every container. */}}
{{- define "raum.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "raum.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* The TURN URLs participants are offered, one per line: UDP and TCP on 3478 (or
their NodePorts), TLS on 443 when there is a certificate. */}}
{{- define "raum.turnUrls" -}}
{{- $t := .Values.turn -}}
{{- $np := eq $t.service.type "NodePort" -}}
{{- $host := $t.host -}}
{{- if and (contains ":" $host) (not (hasPrefix "[" $host)) }}{{ $host = printf "[%s]" $host }}{{ end -}}
turn:{{ $host }}:{{ ternary $t.service.nodePorts.udp 3478 $np }}?transport=udp
turn:{{ $host }}:{{ ternary $t.service.nodePorts.tcp 3478 $np }}?transport=tcp
{{- if $t.tls.secret }}
turns:{{ $host }}:{{ ternary $t.service.nodePorts.tls 443 $np }}?transport=tcp
{{- end }}
{{- end -}}

{{/* The networks SFU media addresses lie in, one per line: turn.sfuNetworks, or the
advertised IPs as single addresses. */}}
{{- define "raum.turnNetworks" -}}
{{- if .Values.turn.sfuNetworks }}
{{- join "\n" .Values.turn.sfuNetworks }}
{{- else }}
{{- range .Values.operator.advertiseIps }}
{{ ternary (printf "%s/128" .) (printf "%s/32" .) (contains ":" .) }}
{{- end }}
{{- end }}
{{- end -}}
