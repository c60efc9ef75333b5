{{/* The run's name: run.name, else the release name. */}}
{{- define "thinkgen.run" -}}
{{- $run := .Values.run.name | default .Release.Name -}}
{{- if gt (len $run) 47 -}}{{- fail (printf "run.name %q: longer than 47 characters (KubeRay derives the RayCluster's name from it)" $run) -}}{{- end -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $run) -}}{{- fail (printf "run.name %q: want a DNS-1035 label (lower-case letters, digits, '-'; a letter first)" $run) -}}{{- end -}}
{{- $run -}}
{{- end -}}

{{/* Labels on every object of the release. */}}
{{- define "thinkgen.labels" -}}
app.kubernetes.io/name: thinkgen
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
thinkgen.io/run: {{ include "thinkgen.run" . }}
{{- end -}}

{{/* Labels of a pod template: (list $root role). */}}
{{- define "thinkgen.podLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: thinkgen
thinkgen.io/role: {{ index . 1 }}
thinkgen.io/run: {{ include "thinkgen.run" $root }}
{{- end -}}

{{- define "thinkgen.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-thinkgen" .Release.Name) -}}
{{- end -}}

{{- define "thinkgen.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}

{{- define "thinkgen.storeURI" -}}
{{- printf "s3://%s/%s" .Values.store.bucket .Values.store.prefix | trimSuffix "/" -}}
{{- end -}}

{{- define "thinkgen.minioName" -}}
{{- printf "%s-minio" .Release.Name -}}
{{- end -}}

{{/* The run configuration: run.config with the store and the cluster keys the chart owns. */}}
{{- define "thinkgen.config" -}}
{{- $cfg := deepCopy (.Values.run.config | default dict) -}}
{{- $run := deepCopy (get $cfg "run" | default dict) -}}
{{- $_ := set $run "name" (include "thinkgen.run" .) -}}
{{- $_ := set $cfg "run" $run -}}
{{- $st := deepCopy (get $cfg "storage" | default dict) -}}
{{- $_ := set $st "uri" (include "thinkgen.storeURI" .) -}}
{{- if .Values.store.minio.enabled -}}
{{- $_ := set $st "endpoint" (printf "%s.%s.svc:9000" (include "thinkgen.minioName" .) .Release.Namespace) -}}
{{- $_ := set $st "insecure" true -}}
{{- else -}}
{{- with .Values.store.external.endpoint }}{{ $_ := set $st "endpoint" . }}{{ end -}}
{{- with .Values.store.external.region }}{{ $_ := set $st "region" . }}{{ end -}}
{{- $_ := set $st "insecure" .Values.store.external.insecure -}}
{{- end -}}
{{- $_ := unset $st "credentials_file" -}}
{{- $_ := set $cfg "storage" $st -}}
{{- $cl := deepCopy .Values.cluster -}}
{{- $_ := set $cl "image" (include "thinkgen.image" .) -}}
{{- $_ := set $cl "namespace" .Release.Namespace -}}
{{- $_ := set $cl "secret" (include "thinkgen.secretName" .) -}}
{{- $_ := set $cfg "cluster" $cl -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Requests = limits of one thinkgen Resources value: (list key resources). */}}
{{- define "thinkgen.resources" -}}
{{- $key := index . 0 -}}
{{- $r := index . 1 | default dict -}}
{{- $list := dict -}}
{{- if gt (float64 ($r.cpus | default 0)) 0.0 }}{{ $_ := set $list "cpu" (toString $r.cpus) }}{{ end -}}
{{- with $r.memory }}{{ $_ := set $list "memory" (toString .) }}{{ end -}}
{{- $gpus := float64 ($r.gpus | default 0) -}}
{{- if gt $gpus 0.0 -}}
{{- if ne $gpus (floor $gpus) }}{{ fail (printf "%s.gpus %v: Kubernetes schedules whole nvidia.com/gpu devices" $key $r.gpus) }}{{ end -}}
{{- $_ := set $list "nvidia.com/gpu" (toString (int64 $gpus)) -}}
{{- end -}}
{{- if $list -}}
resources:
  requests:
    {{- toYaml $list | nindent 4 }}
  limits:
    {{- toYaml $list | nindent 4 }}
{{- end -}}
{{- end -}}

{{- define "thinkgen.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 100
  fsGroup: 100
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "thinkgen.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities:
    drop: [ALL]
{{- end -}}

{{/* Environment from the Secret: (list $root isWorker); a worker finds the token's file through THINKGEN_TOKEN_FILE. */}}
{{- define "thinkgen.env" -}}
{{- $root := index . 0 -}}
{{- $secret := include "thinkgen.secretName" $root -}}
env:
  - name: AWS_ACCESS_KEY_ID
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: aws-access-key-id}
  - name: AWS_SECRET_ACCESS_KEY
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: aws-secret-access-key}
{{- if index . 1 }}
  {{- /* The token is a mounted file, never an environment variable. */}}
  - {name: THINKGEN_TOKEN_FILE, value: /var/run/thinkgen/token}
{{- end }}
{{- end -}}

{{/* Volumes of a Ray pod: (list $root roleResources); /dev/shm is bounded by the role's shm_size, else cluster.shm_size; the token is a file in every Ray pod. */}}
{{- define "thinkgen.volumes" -}}
{{- $root := index . 0 -}}
{{- $r := index . 1 | default dict -}}
volumes:
  - name: config
    configMap:
      name: {{ include "thinkgen.run" $root }}-config
  - name: shm
    emptyDir:
      medium: Memory
      {{- with ($r.shm_size | default $root.Values.cluster.shm_size) }}
      sizeLimit: {{ . }}
      {{- end }}
  - name: token
    secret:
      secretName: {{ include "thinkgen.secretName" $root }}
      items: [{key: token, path: token}]
      defaultMode: 0440
{{- end -}}

{{- define "thinkgen.mounts" -}}
volumeMounts:
  - {name: config, mountPath: /etc/thinkgen, readOnly: true}
  - {name: shm, mountPath: /dev/shm}
  - {name: token, mountPath: /var/run/thinkgen, readOnly: true}
{{- end -}}

{{/* Kubernetes placement of a role's pods, as cluster/kuberay's place: (list key roleResources). */}}
{{- define "thinkgen.placement" -}}
{{- $key := index . 0 -}}
{{- $r := index . 1 | default dict -}}
{{- with $r.node_selector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $match := list -}}
{{- with $r.gpu_products }}
{{- $match = append $match (dict "key" "nvidia.com/gpu.product" "operator" "In" "values" .) -}}
{{- end }}
{{- $mib := int ($r.gpu_memory_mib | default 0) -}}
{{- if lt $mib 0 }}{{ fail (printf "%s.gpu_memory_mib %d: want >= 0" $key $mib) }}{{ end -}}
{{- if gt $mib 0 }}
{{- /* Gt is strict: at least N MiB is more than N-1. */ -}}
{{- $match = append $match (dict "key" "nvidia.com/gpu.memory" "operator" "Gt" "values" (list (toString (sub $mib 1)))) -}}
{{- end }}
{{- if $match }}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            {{- toYaml $match | nindent 12 }}
{{- end }}
{{- with $r.tolerations }}
tolerations:
{{- range . }}
  - operator: {{ .operator | default "Equal" }}
    {{- with .key }}
    key: {{ . | quote }}
    {{- end }}
    {{- with .value }}
    value: {{ . | quote }}
    {{- end }}
    {{- with .effect }}
    effect: {{ . }}
    {{- end }}
{{- end }}
{{- end }}
{{- with $r.priority_class }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}
