{{/*
Injector templates. The injector (`s2-sidecar injector`) builds the sidecar it adds to a pod from
"s2-sidecar.injectorTemplate", which renders the SAME named templates chart authors include
(containerSpec, volumes, appEnv, appVolumeMounts) into JSON, so the injected sidecar cannot drift
from the one a chart author gets.
*/}}

{{- define "s2-sidecar.injectorName" -}}
{{- printf "%s-injector" (include "s2-sidecar.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "s2-sidecar.injectorSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-injector
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "s2-sidecar.injectorLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "s2-sidecar.injectorSelectorLabels" . }}
app.kubernetes.io/component: injector
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The injector's image: injector.image.* where set, else the sidecar image (same binary). */}}
{{- define "s2-sidecar.injectorImage" -}}
{{- $img := deepCopy .Values.image -}}
{{- with .Values.injector.image.repository }}{{ $_ := set $img "repository" . }}{{ end -}}
{{- with .Values.injector.image.tag }}{{ $_ := set $img "tag" . }}{{ end -}}
{{- with .Values.injector.image.digest }}{{ $_ := set $img "digest" . }}{{ end -}}
{{- include "s2-sidecar.image" (dict "image" $img) -}}
{{- end -}}

{{/* One variant of the sidecar (tcp or unix socket) as the named templates render it.
Argument: dict "root" (root context) "unix" (bool). */}}
{{- define "s2-sidecar.injectorVariant" -}}
{{- $v := deepCopy .root.Values -}}
{{- $_ := set $v.sidecar.unixSocket "enabled" .unix -}}
{{- $ctx := dict "Values" $v -}}
{{- $native := $v.sidecar.native -}}
{{- $out := dict
    "container" (include "s2-sidecar.containerSpec" (dict "v" $v "native" $native) | fromYaml)
    "volumes" (include "s2-sidecar.volumes" $ctx | fromYamlArray)
    "appEnv" (include "s2-sidecar.appEnv" $ctx | fromYamlArray)
    "appVolumeMounts" (include "s2-sidecar.appVolumeMounts" $ctx | fromYamlArray) -}}
{{- toJson $out -}}
{{- end -}}

{{/* The injector's template file (JSON): both socket variants, plus what per-pod annotations need. */}}
{{- define "s2-sidecar.injectorTemplate" -}}
{{- $v := .Values -}}
{{- $out := dict
    "version" 1
    "name" $v.sidecar.name
    "native" $v.sidecar.native
    "unixSocketDefault" $v.sidecar.unixSocket.enabled
    "tokenSecret" (dict "key" $v.s2.tokenSecret.key "optional" $v.s2.tokenSecret.optional)
    "imagePullSecrets" ($v.imagePullSecrets | default list)
    "scrapeAnnotations" $v.metrics.podAnnotations
    "variants" (dict
      "tcp" (include "s2-sidecar.injectorVariant" (dict "root" . "unix" false) | fromJson)
      "unix" (include "s2-sidecar.injectorVariant" (dict "root" . "unix" true) | fromJson)) -}}
{{- toPrettyJson $out -}}
{{- end -}}
