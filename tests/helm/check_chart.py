"""Lint and render helm/switchboard with a real Helm engine (helm-python-sdk embeds
Helm's Go SDK), validate every rendered manifest against the Kubernetes schemas
(kubernetes-validate, strict), and check what the chart promises: probes, the drain
grace period, the media ports, and a switchboard.toml the binary itself accepts.
Usage: python check_chart.py CHART_DIR SWITCHBOARD_BINARY
"""

import os
import subprocess
import sys
import tempfile

import helm_python as helm
import yaml

CHART, BIN = sys.argv[1], sys.argv[2]
KUBE = "1.30.0"

CASES = {
    "defaults": {},
    "production": {
        "kind": "DaemonSet",
        "hostNetwork": True,
        "config": {"workers": 4, "rtcPort": 50000, "drainTimeout": 900, "metricsPort": 0,
                   "maxTracks": 3000, "maxWorkerPacketRate": 150000, "maxParticipants": 50,
                   "webhookUrls": ["https://hooks.example.com/a", "https://hooks.example.com/b"],
                   "rtcAdvertise": "203.0.113.10", "autoCreate": False},
        "apiKeys": {"existingSecret": "switchboard-keys"},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "podDisruptionBudget": {"enabled": False},
        "service": {"type": "LoadBalancer"},
    },
    "own-secret-and-udp-service": {
        "replicas": 2,
        "apiKeys": {"keys": "prod:0123456789abcdef0123"},
        "rtcService": {"enabled": True},
        "config": {"rtcTcpAdvertisePort": 443},
    },
    "cluster-dev-redis": {
        "replicas": 3,
        "cluster": {"enabled": True, "devRedis": True},
    },
    "cluster-sentinel": {
        "replicas": 3,
        "cluster": {"enabled": True, "sentinel": {"hosts": ["s0.redis:26379", "s1.redis:26379"], "primaryName": "sb"}},
    },
    "turn": {
        "config": {"turnUrls": ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"],
                   "turnTtl": 3600},
        "turnSecret": {"secret": "shared-with-coturn"},
    },
}


# What each cluster case's pods are told to use.
REDIS_URLS = {
    "cluster-dev-redis": '"redis://sb-switchboard-redis:6379"',
    "cluster-sentinel": '"redis+sentinel://s0.redis:26379,s1.redis:26379/sb"',
}


def fail(msg):
    print(f"FAILED: {msg}")
    sys.exit(1)


def merged(case):
    values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))

    def deep(a, b):
        for k, v in b.items():
            a[k] = deep(a.get(k, {}), v) if isinstance(v, dict) else v
        return a
    return deep(values, CASES[case])


chart = helm.Chart.load(CHART)
for case, values in CASES.items():
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE}")
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + report.get("errors", [])
    if problems:
        fail(f"{case}: helm lint: {problems}")
    rendered = chart.render(values, name="sb", namespace="media", is_install=True)
    docs = [d for path, text in rendered.items() if not path.endswith("NOTES.txt") for d in yaml.safe_load_all(text) if d]
    kinds = sorted(d["kind"] for d in docs)
    v = merged(case)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, d in enumerate(docs):
            if d["apiVersion"].startswith("monitoring.coreos.com"):
                continue  # a CRD: not in the Kubernetes schemas; checked below
            p = os.path.join(tmp, f"{i}-{d['kind']}.yaml")
            with open(p, "w") as f:
                yaml.safe_dump(d, f)
            paths.append(p)
        r = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBE, *paths],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"{case}: kubernetes-validate:\n{r.stdout}{r.stderr}")
        # The rendered server configuration is one the binary accepts.
        cm = next(d for d in docs if d["kind"] == "ConfigMap")
        toml = os.path.join(tmp, "switchboard.toml")
        with open(toml, "w") as f:
            f.write(cm["data"]["switchboard.toml"])
        env = {k: val for k, val in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        if v["config"]["turnUrls"]:
            env["SWITCHBOARD_TURN_SECRET"] = "from-the-secret"  # what the pod's env gives
        r = subprocess.run([BIN, "--config", toml, "config", "print"], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            fail(f"{case}: the binary refuses the rendered switchboard.toml: {r.stderr}")
        printed = dict(line.split(" = ", 1) for line in r.stdout.splitlines() if " = " in line)
        if printed["workers"] != str(v["config"]["workers"]) or printed["drain_timeout"] != str(v["config"]["drainTimeout"]):
            fail(f"{case}: config not carried: {printed}")
        if v["cluster"]["enabled"] and printed.get("redis_url") != REDIS_URLS[case]:
            fail(f"{case}: redis_url not carried: {printed.get('redis_url')}")
        if printed.get("rtc_tcp_port") != str(v["config"]["rtcTcpPort"]) or printed.get("rtc_tcp_advertise_port") != (str(v["config"]["rtcTcpAdvertisePort"]) if v["config"]["rtcTcpAdvertisePort"] else None):
            fail(f"{case}: ICE-TCP settings not carried: {printed}")
        if v["config"]["turnUrls"] and (v["config"]["turnUrls"][0] not in printed["turn_urls"]
                                        or printed["turn_ttl"] != str(v["config"]["turnTtl"])):
            fail(f"{case}: TURN settings not carried: {printed}")
    work = next(d for d in docs if d["kind"] in ("Deployment", "DaemonSet") and not d["metadata"]["name"].endswith("-redis"))
    if work["kind"] != v["kind"]:
        fail(f"{case}: kind {work['kind']}")
    pod = work["spec"]["template"]["spec"]
    c = pod["containers"][0]
    if pod["terminationGracePeriodSeconds"] != v["config"]["drainTimeout"] + 15:
        fail(f"{case}: terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']}")
    if c["readinessProbe"]["httpGet"]["path"] != "/readyz" or c["livenessProbe"]["httpGet"]["path"] != "/healthz":
        fail(f"{case}: probes")
    udp = sorted(p["containerPort"] for p in c["ports"] if p["protocol"] == "UDP")
    want = list(range(v["config"]["rtcPort"], v["config"]["rtcPort"] + v["config"]["workers"]))
    if udp != want:
        fail(f"{case}: UDP ports {udp}, want {want}")
    tcp_port = v["config"]["rtcTcpPort"]
    if [p["containerPort"] for p in c["ports"] if p["name"] == "rtc-tcp"] != ([tcp_port] if tcp_port else []):
        fail(f"{case}: the ICE-TCP container port")
    if pod["hostNetwork"] != v["hostNetwork"]:
        fail(f"{case}: hostNetwork")
    envs = {e["name"]: e for e in c["env"]}
    has_keys = bool(v["apiKeys"]["keys"] or v["apiKeys"]["existingSecret"])
    if ("SWITCHBOARD_KEYS" in envs) != has_keys:
        fail(f"{case}: SWITCHBOARD_KEYS")
    if has_keys:
        ref = envs["SWITCHBOARD_KEYS"]["valueFrom"]["secretKeyRef"]["name"]
        secrets = [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
        if v["apiKeys"]["existingSecret"]:
            if ref != v["apiKeys"]["existingSecret"] or secrets:
                fail(f"{case}: existing secret")
        elif ref not in secrets:
            fail(f"{case}: secret {ref} not rendered")
    has_turn = bool(v["turnSecret"]["secret"] or v["turnSecret"]["existingSecret"])
    if ("SWITCHBOARD_TURN_SECRET" in envs) != has_turn:
        fail(f"{case}: SWITCHBOARD_TURN_SECRET")
    if has_turn:
        ref = envs["SWITCHBOARD_TURN_SECRET"]["valueFrom"]["secretKeyRef"]
        own = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == ref["name"]]
        if ref["key"] != "turn-secret" or (not v["turnSecret"]["existingSecret"]
                                           and (not own or "turn-secret" not in own[0]["stringData"])):
            fail(f"{case}: the TURN secret is not wired: {ref}")
    if v["cluster"]["enabled"]:
        if "SWITCHBOARD_NODE_ID" not in envs or "SWITCHBOARD_CLUSTER_URL" not in envs:
            fail(f"{case}: the cluster node's identity and URL")
        redis = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-redis")]
        if v["cluster"]["devRedis"] != bool(redis):
            fail(f"{case}: the development Redis")
    if ("PodDisruptionBudget" in kinds) != v["podDisruptionBudget"]["enabled"]:
        fail(f"{case}: PodDisruptionBudget")
    if v["serviceMonitor"]["enabled"]:
        sm = next((d for d in docs if d["kind"] == "ServiceMonitor"), None)
        if not sm or sm["spec"]["endpoints"][0]["path"] != "/metrics" or sm["metadata"]["labels"].get("release") != "prom":
            fail(f"{case}: ServiceMonitor {sm}")
    if v["rtcService"]["enabled"]:
        rtc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-rtc"))
        if sorted(p["port"] for p in rtc["spec"]["ports"] if p["protocol"] == "UDP") != want:
            fail(f"{case}: rtc service ports")
        tcp = [p for p in rtc["spec"]["ports"] if p["protocol"] == "TCP"]
        advertised = v["config"]["rtcTcpAdvertisePort"] or v["config"]["rtcTcpPort"]
        if [(p["port"], p["targetPort"]) for p in tcp] != [(advertised, v["config"]["rtcTcpPort"])]:
            fail(f"{case}: the ICE-TCP service port {tcp}")
    print(f"{case}: lint clean, {len(docs)} manifests valid for Kubernetes {KUBE}: {', '.join(kinds)}")

# A bad value is refused at render time.
try:
    chart.render({"kind": "StatefulSet"}, name="sb")
    fail("kind StatefulSet rendered")
except helm.HelmError as e:
    print(f"kind StatefulSet refused: {str(e).splitlines()[0][:100]}")
try:
    chart.render({"cluster": {"enabled": True}}, name="sb")
    fail("cluster without Redis rendered")
except helm.HelmError as e:
    print(f"cluster without Redis refused: {str(e).splitlines()[0][:100]}")
