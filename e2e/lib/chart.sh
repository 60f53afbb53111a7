# The Helm chart charts/budgetgate with real helm (built by e2e/build from its Go module):
# lint and render with default and non-default values, the kustomize manifests equal to
# its render, and its objects through the apiserver's dry run. Sourced by e2e/run, part of
# the default run; `e2e/run chart` runs these alone.

CHART=(
  chart_lints_and_renders_every_value
  chart_renders_exactly_the_kustomize_manifests
  chart_objects_pass_the_apiservers_dry_run
)

# helm with its cache, config and data under the run directory, never the user's.
helm() {
  HELM_CACHE_HOME=$RUN/helm/cache HELM_CONFIG_HOME=$RUN/helm/config HELM_DATA_HOME=$RUN/helm/data \
    command helm "$@"
}
objects() { python3 "$E2E_DIR/lib/chart_objects.py" "$@"; }
# render OUT [helm template args...]: the chart as release "budgetgate" in budgetgate-system.
render() {
  local out=$1; shift
  helm template budgetgate "$ROOT/charts/budgetgate" -n budgetgate-system "$@" >"$out" 2>"$out.err" ||
    fail "helm template $*: $(cat "$out.err")"
}
# expect_field WHAT FILE KIND NAME PATH WANT
expect_field() { expect_eq "$1" "$(objects field "$2" "$3" "$4" "$5")" "$6"; }

# The groups `budgetgate rules` makes for the samples, as chart values.
rule_values() {
  "${E2E_BUDGETGATE_BIN:-$ROOT/target/debug/budgetgate}" rules --policy "$ROOT/manifests/samples" --format prometheusrule |
    python3 -c 'import sys, yaml; r = yaml.safe_load(sys.stdin); print(yaml.safe_dump({"monitoring": {"prometheusRule": {"groups": r["spec"]["groups"]}}}))'
}

scenario_chart_lints_and_renders_every_value() {
  local dir=$RUN/chart/render out custom=$ROOT/charts/budgetgate/ci/custom-values.yaml
  mkdir -p "$dir"
  out=$(helm lint --strict "$ROOT/charts/budgetgate" 2>&1) && expect_has "helm lint" "$out" "1 chart(s) linted, 0 chart(s) failed" || fail "helm lint: $out" || return 1
  out=$(helm lint --strict "$ROOT/charts/budgetgate" -f "$custom" 2>&1) && expect_has "helm lint custom" "$out" "1 chart(s) linted, 0 chart(s) failed" || fail "helm lint -f custom-values.yaml: $out" || return 1

  # Defaults: both components, generated certificates, nothing optional.
  render "$dir/default.yaml" || return 1
  expect_eq "default objects" "$(objects list "$dir/default.yaml" | tr '\n' ';')" "ClusterRole budgetgate-controller;ClusterRole budgetgate-exception-approver;ClusterRole budgetgate-viewer;ClusterRole budgetgate-webhook;ClusterRoleBinding budgetgate-controller;ClusterRoleBinding budgetgate-controller-read;ClusterRoleBinding budgetgate-webhook;Deployment budgetgate-system/budgetgate-controller;Deployment budgetgate-system/budgetgate-webhook;MutatingWebhookConfiguration budgetgate;NetworkPolicy budgetgate-system/budgetgate-controller;NetworkPolicy budgetgate-system/budgetgate-webhook;PodDisruptionBudget budgetgate-system/budgetgate-webhook;Role budgetgate-system/budgetgate-controller-lease;RoleBinding budgetgate-system/budgetgate-controller-lease;Secret budgetgate-system/budgetgate-tls;Service budgetgate-system/budgetgate;ServiceAccount budgetgate-system/budgetgate;ServiceAccount budgetgate-system/budgetgate-controller;ValidatingWebhookConfiguration budgetgate;" || return 1
  # The generated serving certificate: signed by the CA every webhook names, for the Service.
  python3 - "$dir/default.yaml" "$dir" <<'PY' || fail "the generated certificate's files" || return 1
import base64, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
secret = next(d for d in docs if d["kind"] == "Secret")
for k in ("ca.crt", "tls.crt", "tls.key"):
    open(f"{sys.argv[2]}/{k}", "wb").write(base64.b64decode(secret["data"][k]))
bundles = {w["clientConfig"]["caBundle"] for d in docs if d["kind"].endswith("WebhookConfiguration") for w in d["webhooks"]}
assert bundles == {secret["data"]["ca.crt"]}, bundles
PY
  out=$(openssl verify -CAfile "$dir/ca.crt" "$dir/tls.crt" 2>&1)
  expect_eq "serving certificate" "$out" "$dir/tls.crt: OK" || return 1
  out=$(openssl x509 -in "$dir/tls.crt" -noout -ext subjectAltName | tail -n 1 | tr -d ' ')
  expect_eq "serving certificate names" "$out" "DNS:budgetgate.budgetgate-system.svc,DNS:budgetgate.budgetgate-system.svc.cluster.local" || return 1
  [[ $(openssl pkey -in "$dir/tls.key" -pubout) == "$(openssl x509 -in "$dir/tls.crt" -noout -pubkey)" ]] || fail "tls.key is not the certificate's key" || return 1
  expect_field "default controller args" "$dir/default.yaml" Deployment budgetgate-controller spec.template.spec.containers.0.args \
    '["controller", "--prometheus=http://prometheus.monitoring.svc:9090", "--interval=30s", "--lease-namespace=budgetgate-system", "--metrics-listen=0.0.0.0:9090", "--dashboard-listen=127.0.0.1:8080", "--log-format=json"]' || return 1

  # Every value changed (charts/budgetgate/ci/custom-values.yaml), with the samples' rules.
  rule_values >"$dir/rules-values.yaml" || fail "budgetgate rules" || return 1
  render "$dir/custom.yaml" -f "$custom" -f "$dir/rules-values.yaml" || return 1
  expect_eq "custom objects" "$(objects list "$dir/custom.yaml" | tr '\n' ';')" "Certificate budgetgate-system/budgetgate-serving;ClusterRole budgetgate-controller;ClusterRole budgetgate-exception-approver;ClusterRole budgetgate-viewer;ClusterRole budgetgate-webhook;ClusterRoleBinding budgetgate-controller;ClusterRoleBinding budgetgate-controller-read;ClusterRoleBinding budgetgate-webhook;Deployment budgetgate-system/budgetgate-controller;Deployment budgetgate-system/budgetgate-webhook;Issuer budgetgate-system/budgetgate-selfsigned;MutatingWebhookConfiguration budgetgate;Namespace budgetgate-system;NetworkPolicy budgetgate-system/budgetgate-controller;NetworkPolicy budgetgate-system/budgetgate-webhook;PodDisruptionBudget budgetgate-system/budgetgate-webhook;PodMonitor budgetgate-system/budgetgate;PrometheusRule budgetgate-system/budgetgate;ReliabilityPolicy platform;Role budgetgate-system/budgetgate-controller-lease;RoleBinding budgetgate-system/budgetgate-controller-lease;Service budgetgate-system/budgetgate;Service budgetgate-system/budgetgate-controller-metrics;ServiceAccount budgetgate-system/budgetgate;ServiceAccount budgetgate-system/budgetgate-controller;ServiceMonitor budgetgate-system/budgetgate;ValidatingWebhookConfiguration budgetgate;" || return 1
  local f=$dir/custom.yaml w=spec.template.spec
  expect_field "webhook replicas" "$f" Deployment budgetgate-webhook spec.replicas 3 &&
    expect_field "webhook image" "$f" Deployment budgetgate-webhook $w.containers.0.image registry.example/platform/budgetgate:0.1.0-rc.1 &&
    expect_field "pull policy" "$f" Deployment budgetgate-webhook $w.containers.0.imagePullPolicy Always &&
    expect_field "pull secrets" "$f" Deployment budgetgate-controller $w.imagePullSecrets '[{"name": "registry-credentials"}]' &&
    expect_field "webhook args" "$f" Deployment budgetgate-webhook $w.containers.0.args '["webhook", "--tls-cert-file=/tls/tls.crt", "--tls-key-file=/tls/tls.key", "--listen=0.0.0.0:8443", "--metrics-listen=0.0.0.0:9090", "--log-format=text", "--max-connections=1024"]' &&
    expect_field "webhook resources" "$f" Deployment budgetgate-webhook $w.containers.0.resources '{"limits": {"memory": "384Mi"}, "requests": {"cpu": "200m", "memory": "128Mi"}}' &&
    expect_field "node selector" "$f" Deployment budgetgate-webhook $w.nodeSelector '{"node-role.kubernetes.io/platform": ""}' &&
    expect_field "tolerations" "$f" Deployment budgetgate-webhook $w.tolerations '[{"effect": "NoSchedule", "key": "platform", "operator": "Exists"}]' &&
    expect_field "priority class" "$f" Deployment budgetgate-webhook $w.priorityClassName system-cluster-critical &&
    expect_field "certificate volume" "$f" Deployment budgetgate-webhook $w.volumes.0.secret.secretName budgetgate-serving &&
    expect_field "controller replicas" "$f" Deployment budgetgate-controller spec.replicas 3 &&
    expect_field "controller args" "$f" Deployment budgetgate-controller $w.containers.0.args '["controller", "--prometheus=http://thanos-query.monitoring.svc:9090", "--interval=1m", "--lease-namespace=budgetgate-system", "--metrics-listen=0.0.0.0:9090", "--dashboard-listen=off", "--log-format=text", "--lease-duration=20s"]' &&
    expect_field "failure policy" "$f" MutatingWebhookConfiguration budgetgate webhooks.0.failurePolicy Fail &&
    expect_field "timeout" "$f" ValidatingWebhookConfiguration budgetgate webhooks.1.timeoutSeconds 5 &&
    expect_field "excluded namespaces" "$f" ValidatingWebhookConfiguration budgetgate webhooks.0.namespaceSelector '{"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["budgetgate-system", "kube-system", "monitoring"]}]}' &&
    expect_field "CA injection" "$f" MutatingWebhookConfiguration budgetgate metadata.annotations '{"cert-manager.io/inject-ca-from": "budgetgate-system/budgetgate-serving"}' &&
    expect_field "certificate" "$f" Certificate budgetgate-serving spec '{"dnsNames": ["budgetgate.budgetgate-system.svc", "budgetgate.budgetgate-system.svc.cluster.local"], "duration": "2160h", "issuerRef": {"kind": "Issuer", "name": "budgetgate-selfsigned"}, "renewBefore": "720h", "secretName": "budgetgate-serving"}' &&
    expect_field "PDB" "$f" PodDisruptionBudget budgetgate-webhook spec.minAvailable 2 &&
    expect_field "metrics from" "$f" NetworkPolicy budgetgate-controller spec.ingress.0.from '[{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}]' &&
    expect_field "controller users" "$f" ReliabilityPolicy platform spec.controllerUsers '["system:serviceaccount:ops:deployer", "system:serviceaccount:budgetgate-system:budgetgate-controller"]' &&
    expect_field "PodMonitor labels" "$f" PodMonitor budgetgate metadata.labels.release kube-prometheus-stack &&
    expect_field "ServiceMonitor interval" "$f" ServiceMonitor budgetgate spec.endpoints.0.interval 15s || return 1
  # The rendered rules are the ones `budgetgate rules` made, and promtool accepts them.
  objects rules "$f" >"$dir/rules.yaml"
  out=$(promtool check rules "$dir/rules.yaml" 2>&1) || fail "promtool check rules: $out" || return 1
  local want
  want=$("${E2E_BUDGETGATE_BIN:-$ROOT/target/debug/budgetgate}" rules --policy "$ROOT/manifests/samples" | grep -c -E '^ *- (record|alert):')
  expect_eq "promtool" "$out" "Checking $dir/rules.yaml
  SUCCESS: $want rules found" || return 1
  # The rendered policy is one budgetgate itself loads (with the samples' namespaces and SLOs).
  mkdir -p "$dir/policy"
  objects without "$f" apps v1 rbac.authorization.k8s.io admissionregistration.k8s.io networking.k8s.io policy cert-manager.io monitoring.coreos.com |
    python3 -c 'import sys, yaml; print(yaml.safe_dump([d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "ReliabilityPolicy"][0]))' >"$dir/policy/policy.yaml"
  cp "$ROOT/manifests/samples/namespaces.yaml" "$ROOT/manifests/samples/slos.yaml" "$dir/policy/"
  out=$("${E2E_BUDGETGATE_BIN:-$ROOT/target/debug/budgetgate}" rules --policy "$dir/policy" 2>&1 >/dev/null) || fail "the rendered policy does not load: $out" || return 1

  # A webhook outside the cluster: the URL replaces the Service in every clientConfig.
  render "$dir/url.yaml" --set webhook.url=https://10.0.0.5:8443/ --set certificates.mode=secret --set certificates.caBundle=Q0E= || return 1
  expect_field "url" "$dir/url.yaml" MutatingWebhookConfiguration budgetgate webhooks.0.clientConfig '{"caBundle": "Q0E=", "url": "https://10.0.0.5:8443/mutate"}' &&
    expect_field "url" "$dir/url.yaml" ValidatingWebhookConfiguration budgetgate webhooks.1.clientConfig '{"caBundle": "Q0E=", "url": "https://10.0.0.5:8443/validate"}' || return 1

  # Wrong values are refused with what to do.
  out=$(helm template budgetgate "$ROOT/charts/budgetgate" --set certificates.mode=vault 2>&1) && { fail "certificates.mode=vault rendered"; return 1; }
  expect_has "bad mode" "$out" 'certificates.mode: "vault" is not one of generate, certManager, secret' || return 1
  out=$(helm template budgetgate "$ROOT/charts/budgetgate" --set monitoring.prometheusRule.enabled=true 2>&1) && { fail "an empty PrometheusRule rendered"; return 1; }
  expect_has "no groups" "$out" 'monitoring.prometheusRule.groups is empty: paste spec.groups of `budgetgate rules --policy <dir> --format prometheusrule`' || return 1
  out=$(helm template budgetgate "$ROOT/charts/budgetgate" --set controller.prometheus= 2>&1) && { fail "no Prometheus rendered"; return 1; }
  expect_has "no Prometheus" "$out" "controller.prometheus: the URL of your Prometheus" || return 1
  out=$(helm template budgetgate "$ROOT/charts/budgetgate" --kube-version 1.29.0 2>&1) && { fail "Kubernetes 1.29 rendered"; return 1; }
  expect_has "old Kubernetes" "$out" "chart requires kubeVersion: >=1.30.0-0 which is incompatible with Kubernetes v1.29.0" || return 1
}

# One source of truth: the kustomize manifests are the chart's render with the values that
# match their choices (namespace created, certificate Secret made by hand; or cert-manager).
scenario_chart_renders_exactly_the_kustomize_manifests() {
  local dir=$RUN/chart/kustomize out
  mkdir -p "$dir"
  cmp -s "$ROOT/charts/budgetgate/crds/crds.yaml" "$ROOT/manifests/crds/crds.yaml" || fail "charts/budgetgate/crds/crds.yaml differs from manifests/crds/crds.yaml" || return 1
  kubectl kustomize "$ROOT/manifests" >"$dir/kustomize.yaml" || fail "kubectl kustomize manifests" || return 1
  render "$dir/chart.yaml" --include-crds --set namespace.create=true --set certificates.mode=secret || return 1
  out=$(objects compare "$dir/chart.yaml" "$dir/kustomize.yaml") || fail "chart and manifests/ differ: $(echo "$out" | head -n 5 | tr '\n' ';')" || return 1
  kubectl kustomize "$ROOT/manifests/overlays/cert-manager" >"$dir/kustomize-cm.yaml" || fail "kubectl kustomize manifests/overlays/cert-manager" || return 1
  render "$dir/chart-cm.yaml" --include-crds --set namespace.create=true --set certificates.mode=certManager || return 1
  out=$(objects compare "$dir/chart-cm.yaml" "$dir/kustomize-cm.yaml") || fail "chart and manifests/overlays/cert-manager differ: $(echo "$out" | head -n 5 | tr '\n' ';')" || return 1
  echo "$(objects list "$dir/chart.yaml" | wc -l) objects equal to manifests/, $(objects list "$dir/chart-cm.yaml" | wc -l) to the cert-manager overlay" >"$OUT/detail"
}

# The apiserver accepts every object of both renders (server-side dry run: schemas, CRD
# validation of the policy, admission), except the kinds of operators this cluster lacks.
scenario_chart_objects_pass_the_apiservers_dry_run() {
  local dir=$RUN/chart/dry-run out n lines
  mkdir -p "$dir"
  render "$dir/default.yaml" || return 1
  out=$(kubectl apply --dry-run=server -f "$dir/default.yaml" 2>&1) || fail "dry run of the default render: $(echo "$out" | grep -v 'server dry run' | head -n 3)" || return 1
  n=$(objects list "$dir/default.yaml" | wc -l)
  lines=$(echo "$out" | grep -c ' (server dry run)$')
  expect_eq "default objects accepted" "$lines" "$n" || return 1
  rule_values >"$dir/rules-values.yaml" || fail "budgetgate rules" || return 1
  render "$dir/custom-all.yaml" -f "$ROOT/charts/budgetgate/ci/custom-values.yaml" -f "$dir/rules-values.yaml" || return 1
  objects without "$dir/custom-all.yaml" cert-manager.io monitoring.coreos.com >"$dir/custom.yaml"
  out=$(kubectl apply --dry-run=server -f "$dir/custom.yaml" 2>&1) || fail "dry run of the custom render: $(echo "$out" | grep -v 'server dry run' | head -n 3)" || return 1
  n=$(objects list "$dir/custom.yaml" | wc -l)
  lines=$(echo "$out" | grep -c ' (server dry run)$')
  expect_eq "custom objects accepted" "$lines" "$n" || return 1
  expect_has "the policy" "$out" "reliabilitypolicy.budgetgate.dev/platform configured (server dry run)" || return 1
  echo "$(objects list "$dir/default.yaml" | wc -l) default and $n custom objects accepted ($(( $(objects list "$dir/custom-all.yaml" | wc -l) - n )) of cert-manager's and the Prometheus Operator's kinds left out)" >"$OUT/detail"
}

# ---- the chart installed into the control plane ------------------------------------------
# kwok runs no containers, so the chart's two Deployments run on this host instead: their
# exact container args from the installed release (helm get manifest), with only the file
# paths and listen addresses mapped to the host, as the ServiceAccount each Deployment
# names. The webhook configurations are the chart's own, pointed at the host
# (webhook.url) with the e2e CA (certificates.mode=secret). For the scenario the e2e's
# own budgetgate (e2e/cluster up: serve, manifests/ RBAC, its webhook configurations) is
# taken away, and put back after, whatever happens.
CHART+=(helm_install_gates_rollouts_upgrades_and_uninstalls_without_orphans)
NAMESPACES+=(e2e-helm e2e-helm-cy)

e2e_budgetgate_away() {
  "$E2E_DIR/cluster" stop budgetgate >/dev/null 2>&1
  k delete mutatingwebhookconfiguration budgetgate --ignore-not-found >/dev/null
  k delete validatingwebhookconfiguration budgetgate --ignore-not-found >/dev/null
  k delete --ignore-not-found -f "$ROOT/manifests/webhook/rbac.yaml" -f "$ROOT/manifests/controller/rbac.yaml" >/dev/null
}
e2e_budgetgate_back() {
  k apply -f "$ROOT/manifests/webhook/rbac.yaml" -f "$ROOT/manifests/controller/rbac.yaml" >/dev/null
  "$E2E_DIR/cluster" sa-kubeconfig budgetgate-system budgetgate-controller >/dev/null
  "$E2E_DIR/cluster" restart budgetgate >/dev/null 3>&-
  k apply -f "$RUN/webhook/webhook-configurations.yaml" >/dev/null
}

# host_args MANIFEST DEPLOYMENT: the Deployment's container args, one per line, mapped to
# this host.
host_args() {
  local arg
  objects field "$1" Deployment "$2" spec.template.spec.containers.0.args |
    python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)))' |
    while IFS= read -r arg; do
      case $arg in
        --tls-cert-file=/tls/tls.crt) echo "--tls-cert-file=$E2E_PKI_DIR/webhook.crt" ;;
        --tls-key-file=/tls/tls.key) echo "--tls-key-file=$E2E_PKI_DIR/webhook.key" ;;
        --listen=0.0.0.0:8443) echo "--listen=127.0.0.1:$E2E_WEBHOOK_PORT" ;;
        --metrics-listen=0.0.0.0:9090) echo "--metrics-listen=127.0.0.1:0" ;;
        *) echo "$arg" ;;
      esac
    done
}

# run_chart_deployments MANIFEST: both Deployments as host processes (HELM_PIDS), each as
# its ServiceAccount; waits for the webhook's /readyz.
HELM_PIDS=()
run_chart_deployments() {
  local manifest=$1 bin=${E2E_BUDGETGATE_BIN:-$ROOT/target/debug/budgetgate} sa kc i
  local -a wargs cargs
  mapfile -t wargs < <(host_args "$manifest" budgetgate-webhook)
  mapfile -t cargs < <(host_args "$manifest" budgetgate-controller)
  sa=$(objects field "$manifest" Deployment budgetgate-webhook spec.template.spec.serviceAccountName)
  kc=$("$E2E_DIR/cluster" sa-kubeconfig budgetgate-system "$sa")
  KUBECONFIG=$kc setsid "$bin" "${wargs[@]}" >"$RUN/logs/helm-webhook.log" 2>&1 </dev/null 3>&- &
  HELM_PIDS+=($!)
  sa=$(objects field "$manifest" Deployment budgetgate-controller spec.template.spec.serviceAccountName)
  kc=$("$E2E_DIR/cluster" sa-kubeconfig budgetgate-system "$sa")
  KUBECONFIG=$kc POD_NAME=budgetgate-controller-helm setsid "$bin" "${cargs[@]}" >"$RUN/logs/helm-controller.log" 2>&1 </dev/null 3>&- &
  HELM_PIDS+=($!)
  echo "webhook: ${wargs[*]}" >"$RUN/chart/host-args"
  echo "controller: ${cargs[*]}" >>"$RUN/chart/host-args"
  for ((i = 0; i < 100; i++)); do
    curl -fsS --max-time 2 --cacert "$E2E_PKI_DIR/ca.crt" "https://127.0.0.1:$E2E_WEBHOOK_PORT/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "the chart's webhook did not become ready: $(tail -n 3 "$RUN/logs/helm-webhook.log")"
}
stop_chart_deployments() {
  local pid
  for pid in "${HELM_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${HELM_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  HELM_PIDS=()
}

# tls_of_release: ca.crt and tls.crt of the release's Secret, then the caBundle of each webhook.
tls_of_release() {
  echo "$(k -n budgetgate-system get secret budgetgate-tls -o jsonpath='{.data.ca\.crt} {.data.tls\.crt}')" \
    "$(k get mutatingwebhookconfiguration budgetgate -o jsonpath='{.webhooks[*].clientConfig.caBundle}')" \
    "$(k get validatingwebhookconfiguration budgetgate -o jsonpath='{.webhooks[*].clientConfig.caBundle}')"
}

# The objects the release made, by Helm's label, across every kind the chart renders.
release_objects() {
  k get deployments,services,serviceaccounts,secrets,roles,rolebindings,poddisruptionbudgets,networkpolicies -n budgetgate-system \
    -l app.kubernetes.io/instance=budgetgate -o name 2>&1
  k get clusterroles,clusterrolebindings,mutatingwebhookconfigurations,validatingwebhookconfigurations,reliabilitypolicies \
    -l app.kubernetes.io/instance=budgetgate -o name 2>&1
}

scenario_helm_install_gates_rollouts_upgrades_and_uninstalls_without_orphans() {
  mkdir -p "$RUN/chart"
  e2e_budgetgate_away
  helm_install_scenario
  local rc=$?
  stop_chart_deployments
  helm uninstall budgetgate -n budgetgate-system >/dev/null 2>&1
  e2e_budgetgate_back
  return $rc
}

helm_install_scenario() {
  local out manifest=$RUN/chart/installed.yaml ca i
  ca=$(base64 -w0 <"$E2E_PKI_DIR/ca.crt")
  # The values of an install whose webhook runs outside the cluster; the e2e's platform
  # policy stays (policy.create=false); the controller reads the e2e's snapshot over
  # Prometheus, as the suite's own does.
  cat >"$RUN/chart/values.yaml" <<YAML
webhook: {url: "https://127.0.0.1:$E2E_WEBHOOK_PORT", timeoutSeconds: 5}
certificates: {mode: secret, caBundle: "$ca"}
controller:
  prometheus: "$E2E_PROMETHEUS_URL"
  interval: 2s
  dashboardListen: "off"
  extraArgs: ["--budgets=$SNAP"]
YAML
  # Installed with the defaults: a CA and serving certificate generated into the Secret and
  # both webhook configurations; an upgrade keeps them (read back from the Secret).
  out=$(helm install budgetgate "$ROOT/charts/budgetgate" -n budgetgate-system --set controller.prometheus="$E2E_PROMETHEUS_URL" 2>&1) ||
    fail "helm install: $out" || return 1
  expect_has "helm install" "$out" "STATUS: deployed" || return 1
  local tls before
  tls=$(tls_of_release)
  read -r -a before <<<"$tls"
  expect_eq "caBundles" "${before[*]:2}" "${before[0]} ${before[0]} ${before[0]}" || return 1
  base64 -d <<<"${before[0]}" >"$RUN/chart/generated-ca.crt" && base64 -d <<<"${before[1]}" >"$RUN/chart/generated-tls.crt"
  out=$(openssl verify -CAfile "$RUN/chart/generated-ca.crt" "$RUN/chart/generated-tls.crt" 2>&1)
  expect_eq "generated certificate" "$out" "$RUN/chart/generated-tls.crt: OK" || return 1
  out=$(helm upgrade budgetgate "$ROOT/charts/budgetgate" -n budgetgate-system --reuse-values --set webhook.timeoutSeconds=3 2>&1) ||
    fail "helm upgrade: $out" || return 1
  expect_eq "certificates after an upgrade" "$(tls_of_release)" "$tls" &&
    expect_eq "timeout after an upgrade" "$(k get validatingwebhookconfiguration budgetgate -o jsonpath='{.webhooks[*].timeoutSeconds}')" "3 3" || return 1
  # Then the values of this host's webhook: its URL and the e2e CA.
  out=$(helm upgrade budgetgate "$ROOT/charts/budgetgate" -n budgetgate-system -f "$RUN/chart/values.yaml" 2>&1) ||
    fail "helm upgrade: $out" || return 1
  expect_has "helm upgrade" "$out" "REVISION: 3" || return 1
  helm get manifest budgetgate -n budgetgate-system >"$manifest"
  run_chart_deployments "$manifest" || return 1

  # A denial through the chart's webhook: an exhausted team's rollout is refused.
  team_namespace e2e-helm e2e-helm budgetgate.dev/tier=production
  budget e2e-helm 0.8 && deploy e2e-helm web registry.example/web:v1 || return 1
  budget e2e-helm -0.25 || return 1
  out=$(k -n e2e-helm set image deploy/web web=registry.example/web:v2 2>&1) && { fail "set image passed: $out"; return 1; }
  expect_has "denial" "$out" "admission webhook \"deployments.validate.budgetgate.dev\" denied the request: budgetgate denied the rollout of deployment e2e-helm/web (team e2e-helm, tier production): the error budget is exhausted: team e2e-helm has -25.0% remaining" || return 1

  # A canary driven by the chart's controller (tier canary, healthy band 25,50,100).
  canary_namespace e2e-helm-cy 0.8 || return 1
  k -n e2e-helm-cy set image deploy/web web=registry.example/web:v2 >/dev/null || fail "set image (canary)" || return 1
  out=$(follow e2e-helm-cy Promoted 90) || fail "no promotion: $out" || return 1
  expect_eq "canary stages" "$out" "0/3 1/9 promoting/9 => Promoted" || return 1
  expect_eq "lease holder" "$(k -n budgetgate-system get lease budgetgate-controller -o jsonpath='{.spec.holderIdentity}')" budgetgate-controller-helm || return 1

  # helm upgrade: a changed value reaches the objects; the running processes are untouched.
  out=$(helm upgrade budgetgate "$ROOT/charts/budgetgate" -n budgetgate-system -f "$RUN/chart/values.yaml" --set webhook.failurePolicy=Fail 2>&1) ||
    fail "helm upgrade: $out" || return 1
  expect_has "helm upgrade" "$out" "REVISION: 4" &&
    expect_eq "failure policy after upgrade" "$(k get validatingwebhookconfiguration budgetgate -o jsonpath='{.webhooks[*].failurePolicy}')" "Fail Fail" || return 1
  out=$(k -n e2e-helm set image deploy/web web=registry.example/web:v3 2>&1) && { fail "set image passed after the upgrade: $out"; return 1; }
  expect_has "denial after upgrade" "$out" "the error budget is exhausted" || return 1

  # helm uninstall: nothing of the release is left; the CRDs and what they hold stay.
  stop_chart_deployments
  out=$(helm uninstall budgetgate -n budgetgate-system 2>&1) || fail "helm uninstall: $out" || return 1
  out=$(release_objects)
  expect_eq "objects left by the release" "$(echo "$out" | grep -v -e '^No resources found' -e '^$' | tr '\n' ' ')" "" || return 1
  # The garbage collector removes the Deployments' ReplicaSets and pods.
  for ((i = 0; i < 60; i++)); do
    out=$(k -n budgetgate-system get replicasets,pods -l app.kubernetes.io/name=budgetgate -o name 2>&1)
    [[ -z $out ]] && break
    sleep 0.5
  done
  expect_eq "ReplicaSets and pods left" "$out" "" || return 1
  expect_eq "CRDs kept" "$(k get crd -o name | grep -c 'budgetgate.dev$')" 5 &&
    expect_eq "ledger kept" "$(newest_release e2e-helm-cy '{.status.phase}')" Promoted || return 1
  # With the webhooks gone and failurePolicy Fail in the last revision, applies still work.
  k -n e2e-helm set image deploy/web web=registry.example/web:v4 >/dev/null || fail "set image after uninstall" || return 1
  echo "installed (generated certificate kept by an upgrade), denied, canary promoted, upgraded to revision 4, uninstalled with nothing left (CRDs kept)" >"$OUT/detail"
}
