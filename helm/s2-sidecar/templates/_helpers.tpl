{{/*
=====================================================================================================
Public named templates: include them in your own pod templates (see README.md, "Using the templates").

  initContainers:
    {{- include "s2-sidecar.initContainer" . | nindent 8 }}    # the sidecar when sidecar.native=true
  containers:
    {{- include "s2-sidecar.container" . | nindent 8 }}        # the sidecar when sidecar.native=false
    - name: app                                                 # (keep the sidecar FIRST in the list)
      env:
        {{- include "s2-sidecar.appEnv" . | nindent 12 }}
      volumeMounts:
        {{- include "s2-sidecar.appVolumeMounts" . | nindent 12 }}
  volumes:
    {{- include "s2-sidecar.volumes" . | nindent 8 }}

Each renders YAML list items (or nothing). The context is the chart's root context `.`: in this
chart the values are .Values; from a parent chart that depends on s2-sidecar they are taken from
.Values "s2-sidecar" (the subchart's values, defaults merged in by Helm).
=====================================================================================================
*/}}

{{/* s2-sidecar.initContainer: the sidecar as a native sidecar (restartPolicy: Always), or nothing
when sidecar.native is false. */}}
{{- define "s2-sidecar.initContainer" -}}
{{- $v := .Values -}}
{{- if hasKey .Values "s2-sidecar" }}{{ $v = index .Values "s2-sidecar" }}{{ end -}}
{{- if $v.sidecar.native -}}
- {{ include "s2-sidecar.containerSpec" (dict "v" $v "native" true) | indent 2 | trim }}
{{- end -}}
{{- end -}}

{{/* s2-sidecar.container: the sidecar as a regular container, or nothing when sidecar.native is
true. List it before the app container (legacy mode holds the app until the sidecar is ready). */}}
{{- define "s2-sidecar.container" -}}
{{- $v := .Values -}}
{{- if hasKey .Values "s2-sidecar" }}{{ $v = index .Values "s2-sidecar" }}{{ end -}}
{{- if not $v.sidecar.native -}}
- {{ include "s2-sidecar.containerSpec" (dict "v" $v "native" false) | indent 2 | trim }}
{{- end -}}
{{- end -}}

{{/* s2-sidecar.volumes: the sidecar's /tmp emptyDir, and the socket emptyDir in unix-socket mode. */}}
{{- define "s2-sidecar.volumes" -}}
{{- $v := .Values -}}
{{- if hasKey .Values "s2-sidecar" }}{{ $v = index .Values "s2-sidecar" }}{{ end -}}
- name: {{ $v.sidecar.name }}-tmp
  emptyDir:
    sizeLimit: {{ $v.sidecar.tmpSizeLimit }}
{{- if $v.sidecar.unixSocket.enabled }}
- name: {{ $v.sidecar.name }}-socket
  emptyDir:
    sizeLimit: 1Mi
{{- end }}
{{- with $v.s2.encryptionKeysSecret.name }}
- name: {{ $v.sidecar.name }}-encryption-keys
  secret:
    secretName: {{ . | quote }}
    # Readable by the sidecar whatever its user: only the sidecar container mounts it.
    defaultMode: 0444
{{- end }}
{{- end -}}

{{/* s2-sidecar.appEnv: S2_SIDECAR_ADDRESS for the app container (a gRPC target), and
S2_SIDECAR_APP_TOKEN from s2.appTokenSecret when set (the app sends it as a bearer token). */}}
{{- define "s2-sidecar.appEnv" -}}
{{- $v := .Values -}}
{{- if hasKey .Values "s2-sidecar" }}{{ $v = index .Values "s2-sidecar" }}{{ end -}}
- name: S2_SIDECAR_ADDRESS
  value: {{ include "s2-sidecar.address" $v | quote }}
{{- if $v.s2.appTokenSecret.name }}
- name: S2_SIDECAR_APP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $v.s2.appTokenSecret.name | quote }}
      key: {{ $v.s2.appTokenSecret.key | quote }}
{{- end }}
{{- end -}}

{{/* s2-sidecar.appVolumeMounts: the socket directory for the app container (unix-socket mode),
or nothing. */}}
{{- define "s2-sidecar.appVolumeMounts" -}}
{{- $v := .Values -}}
{{- if hasKey .Values "s2-sidecar" }}{{ $v = index .Values "s2-sidecar" }}{{ end -}}
{{- if $v.sidecar.unixSocket.enabled -}}
- name: {{ $v.sidecar.name }}-socket
  mountPath: {{ dir $v.sidecar.unixSocket.path }}
{{- end -}}
{{- end -}}

{{/*
=====================================================================================================
Internal templates (argument: the chart's values, or a dict noted below).
=====================================================================================================
*/}}

{{/* The address the app dials: a gRPC target. Argument: values. */}}
{{- define "s2-sidecar.address" -}}
{{- if .sidecar.unixSocket.enabled -}}
unix://{{ .sidecar.unixSocket.path }}
{{- else -}}
127.0.0.1:{{ .sidecar.grpcPort | int64 }}
{{- end -}}
{{- end -}}

{{/* S2_SIDECAR_LISTEN. Argument: values. */}}
{{- define "s2-sidecar.listen" -}}
{{- if .sidecar.unixSocket.enabled -}}
unix:{{ .sidecar.unixSocket.path }}
{{- else -}}
127.0.0.1:{{ .sidecar.grpcPort | int64 }}
{{- end -}}
{{- end -}}

{{/* Image reference. Argument: values. */}}
{{- define "s2-sidecar.image" -}}
{{- $ref := .image.repository -}}
{{- if .image.tag }}{{ $ref = printf "%s:%s" $ref .image.tag }}{{ end -}}
{{- if .image.digest }}{{ $ref = printf "%s@%s" $ref .image.digest }}{{ end -}}
{{- $ref -}}
{{- end -}}

{{/* Pull secret lists joined, each name once, in order (a YAML list; [] when none).
Argument: list of lists of {name}. */}}
{{- define "s2-sidecar.mergedPullSecrets" -}}
{{- $seen := dict -}}
{{- $out := list -}}
{{- range $secrets := . }}
{{- range $secrets }}
{{- if not (hasKey $seen .name) }}{{ $_ := set $seen .name true }}{{ $out = append $out . }}{{ end -}}
{{- end }}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* One HTTP probe on the admin port (numeric: named ports of init containers are not usable by
every probe type). Argument: dict "probe" (values of the probe) "port" (admin port). */}}
{{- define "s2-sidecar.probe" -}}
httpGet:
  path: {{ .probe.path }}
  port: {{ .port | int64 }}
  scheme: HTTP
initialDelaySeconds: {{ .probe.initialDelaySeconds | int64 }}
periodSeconds: {{ .probe.periodSeconds | int64 }}
timeoutSeconds: {{ .probe.timeoutSeconds | int64 }}
failureThreshold: {{ .probe.failureThreshold | int64 }}
{{- end -}}

{{/* The sidecar's environment. Argument: values. */}}
{{- define "s2-sidecar.env" -}}
{{- $s2 := .s2 -}}
{{- $sc := .sidecar -}}
{{- if and (contains ".s2.dev" $s2.basinEndpoint) (not $s2.tokenSecret.name) -}}
{{- fail "s2-sidecar: s2.basinEndpoint points at hosted S2 but s2.tokenSecret.name is empty; create a Secret with the access token and set s2.tokenSecret.name/key" -}}
{{- end -}}
- name: S2_SIDECAR_LISTEN
  value: {{ include "s2-sidecar.listen" . | quote }}
- name: S2_SIDECAR_ADMIN_LISTEN
  value: {{ printf "0.0.0.0:%d" ($sc.adminPort | int64) | quote }}
{{- if $sc.unixSocket.enabled }}
- name: S2_SIDECAR_UNIX_SOCKET_MODE
  value: {{ $sc.unixSocket.mode | quote }}
{{- end }}
{{- with $s2.basinEndpoint }}
- name: S2_BASIN_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with $s2.defaultBasin }}
- name: S2_SIDECAR_DEFAULT_BASIN
  value: {{ . | quote }}
{{- end }}
{{- if $s2.tokenSecret.name }}
- name: S2_ACCESS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $s2.tokenSecret.name | quote }}
      key: {{ $s2.tokenSecret.key | quote }}
      {{- if $s2.tokenSecret.optional }}
      optional: true
      {{- end }}
{{- end }}
{{- if $s2.appTokenSecret.name }}
- name: S2_SIDECAR_APP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $s2.appTokenSecret.name | quote }}
      key: {{ $s2.appTokenSecret.key | quote }}
{{- end }}
{{- if $s2.encryptionKeysSecret.name }}
- name: S2_SIDECAR_ENCRYPTION_KEYS_DIR
  value: {{ $s2.encryptionKeysSecret.mountPath | quote }}
{{- end }}
- name: S2_SIDECAR_SESSION_CONNECTIONS
  value: {{ $sc.sessionConnections | int64 | quote }}
- name: S2_SIDECAR_UNARY_CONNECTIONS
  value: {{ $sc.unaryConnections | int64 | quote }}
- name: S2_SIDECAR_LONG_POLL_CONNECTIONS
  value: {{ $sc.longPollConnections | int64 | quote }}
- name: S2_SIDECAR_MAX_PENDING_CALLS
  value: {{ $sc.maxPendingCalls | int64 | quote }}
- name: S2_SIDECAR_GRACE_PERIOD
  value: {{ $sc.gracePeriodSeconds | toString | quote }}
- name: S2_SIDECAR_LOG_LEVEL
  value: {{ $sc.logLevel | quote }}
- name: S2_SIDECAR_LOG_FORMAT
  value: {{ $sc.logFormat | quote }}
- name: S2_SIDECAR_READY_REQUIRES_UPSTREAM
  value: {{ $sc.readyRequiresUpstream | toString | quote }}
{{- if $sc.malloc.enabled }}
- name: MALLOC_MMAP_THRESHOLD_
  value: {{ $sc.malloc.mmapThreshold | int64 | quote }}
- name: MALLOC_TRIM_THRESHOLD_
  value: {{ $sc.malloc.trimThreshold | int64 | quote }}
- name: MALLOC_TOP_PAD_
  value: {{ $sc.malloc.topPad | int64 | quote }}
{{- end }}
{{- $otel := .otel -}}
{{- if $otel.enabled }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OTEL_SERVICE_NAME
  value: {{ $otel.serviceName | quote }}
- name: OTEL_TRACES_EXPORTER
  value: {{ $otel.tracesExporter | quote }}
{{- with $otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $otel.protocol | quote }}
{{- $attrs := list "k8s.pod.name=$(K8S_POD_NAME)" "k8s.namespace.name=$(K8S_NAMESPACE_NAME)" (printf "k8s.container.name=%s" $sc.name) -}}
{{- range $k, $val := $otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $val) -}}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $otel.sampler | quote }}
{{- with $otel.samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
{{- else }}
- name: OTEL_SDK_DISABLED
  value: "true"
{{- end }}
{{- with $sc.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The sidecar container (a mapping, no list dash). Argument: dict "v" (values) "native" (bool). */}}
{{- define "s2-sidecar.containerSpec" -}}
{{- $v := .v -}}
{{- $sc := $v.sidecar -}}
{{- $port := $sc.adminPort | int64 -}}
name: {{ $sc.name }}
image: {{ include "s2-sidecar.image" $v | quote }}
imagePullPolicy: {{ $v.image.pullPolicy }}
{{- if .native }}
restartPolicy: Always
{{- end }}
ports:
  - name: s2-admin
    containerPort: {{ $port }}
    protocol: TCP
env:
  {{- include "s2-sidecar.env" $v | nindent 2 }}
volumeMounts:
  - name: {{ $sc.name }}-tmp
    mountPath: /tmp
  {{- if $sc.unixSocket.enabled }}
  - name: {{ $sc.name }}-socket
    mountPath: {{ dir $sc.unixSocket.path }}
  {{- end }}
  {{- if $v.s2.encryptionKeysSecret.name }}
  - name: {{ $sc.name }}-encryption-keys
    mountPath: {{ $v.s2.encryptionKeysSecret.mountPath }}
    readOnly: true
  {{- end }}
startupProbe:
  {{- include "s2-sidecar.probe" (dict "probe" $sc.probes.startup "port" $port) | nindent 2 }}
livenessProbe:
  {{- include "s2-sidecar.probe" (dict "probe" $sc.probes.liveness "port" $port) | nindent 2 }}
readinessProbe:
  {{- include "s2-sidecar.probe" (dict "probe" $sc.probes.readiness "port" $port) | nindent 2 }}
{{- if and (not .native) (or $sc.legacy.holdApplicationUntilReady (gt ($sc.legacy.preStopSleepSeconds | int64) 0)) }}
lifecycle:
  {{- if $sc.legacy.holdApplicationUntilReady }}
  # Blocks until /readyz answers 200: the kubelet starts the next container only after this hook.
  postStart:
    exec:
      command:
        - python
        - -c
        - |
          import sys, time, urllib.request
          url = "http://127.0.0.1:{{ $port }}/readyz"
          deadline = time.monotonic() + {{ $sc.legacy.holdTimeoutSeconds | int64 }}
          opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
          while time.monotonic() < deadline:
              try:
                  with opener.open(url, timeout=1) as r:
                      if r.status == 200:
                          sys.exit(0)
              except Exception:
                  pass
              time.sleep(0.2)
          sys.exit("s2-sidecar not ready after {{ $sc.legacy.holdTimeoutSeconds | int64 }}s")
  {{- end }}
  {{- if gt ($sc.legacy.preStopSleepSeconds | int64) 0 }}
  # Keeps serving while the app (stopped at the same time in legacy mode) shuts down.
  preStop:
    exec:
      command: ["sleep", "{{ $sc.legacy.preStopSleepSeconds | int64 }}"]
  {{- end }}
{{- end }}
resources:
  {{- toYaml $sc.resources | nindent 2 }}
{{- $secctx := dict -}}
{{- range $k, $val := $sc.securityContext }}
{{- if not (kindIs "invalid" $val) }}{{ $_ := set $secctx $k $val }}{{ end }}
{{- end }}
securityContext:
  {{- toYaml $secctx | nindent 2 }}
{{- end -}}

{{/* Chart name, fullname and labels (example Deployment). Argument: root context. */}}
{{- define "s2-sidecar.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "s2-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-example
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "s2-sidecar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "s2-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
