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
    "cluster-redis-with-password": {
        "replicas": 2,
        "cluster": {"enabled": True, "redisUrl": "redis://:hunter2@redis.media:6379"},
    },
    "cluster-existing-secrets": {
        "replicas": 2,
        "apiKeys": {"existingSecret": "sb-keys"},
        "cluster": {"enabled": True, "existingSecret": "sb-redis"},
    },
    "cluster-sentinel": {
        "replicas": 3,
        "cluster": {"enabled": True, "sentinel": {"hosts": ["s0.redis:26379", "s1.redis:26379"], "primaryName": "sb"}},
    },
    "sip-trunks-in-values": {
        "kind": "DaemonSet",
        "hostNetwork": True,
        "sip": {"enabled": True, "port": 5070, "rtpPorts": "40000-40999", "maxCalls": 20,
                "outboundHosts": ["pbx.example.com"],
                "rules": [{"numbers": ["+15550100"], "room": "lobby"},
                          {"pins": {"1234": "board", "5678": "sales"}, "pin_tries": 2}],
                "trunks": [{"name": "carrier", "networks": ["192.0.2.0/24"], "numbers": ["+15550100"],
                            "username": "carrier-user", "password": "trunk-password-1",
                            "outbound_address": "192.0.2.10:5060", "outbound_number": "+15550199", "outbound_allow": ["+1555"]}],
                "users": [{"username": "alice", "password": "alice-password-1"}]},
    },
    "sip-existing-secret": {
        "hostNetwork": True,
        "sip": {"enabled": True, "existingSecret": "sb-sip"},
    },
    "ingress": {
        "replicas": 2,
        "cluster": {"enabled": True, "redisUrl": "rediss://:pw@redis.media:6380"},
        "ingress": {"enabled": True, "className": "nginx", "host": "meet.example.com", "tlsSecret": "meet-tls"},
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
    "cluster-redis-with-password": '"redis://:<redacted>@redis.media:6379"',
    "cluster-existing-secrets": '"redis://existing-redis:6379"',
    "ingress": '"rediss://:<redacted>@redis.media:6380"',
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


# What an existing Secret's keys stand for in the checks.
EXISTING = {"keys": "existing:0123456789abcdef0123", "turn-secret": "from-the-secret",
            "redis-url": "redis://existing-redis:6379",
            "sip.toml": '[[sip_trunks]]\nname = "existing-trunk"\nnetworks = ["198.51.100.0/24"]\n'}


def pod_env(docs):
    """The switchboard container's environment as the pod would get it: plain values and
    Secret references (the rendered Secret's data, or EXISTING for a Secret not rendered);
    fieldRefs (node and pod addresses) are left out."""
    work = next(d for d in docs if d["kind"] in ("Deployment", "DaemonSet") and not d["metadata"]["name"].endswith("-redis"))
    secrets = {d["metadata"]["name"]: d.get("stringData", {}) for d in docs if d["kind"] == "Secret"}
    env = {}
    for e in work["spec"]["template"]["spec"]["containers"][0].get("env", []):
        if "value" in e and "$(" not in e["value"]:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["secretKeyRef"]
            rendered = secrets.get(ref["name"])
            if rendered is not None and ref["key"] not in rendered:
                fail(f"{e['name']}: Secret {ref['name']} has no {ref['key']}")
            env[e["name"]] = rendered[ref["key"]] if rendered is not None else EXISTING[ref["key"]]
    return env


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
        # The rendered server configuration, with the environment the pod gets (values and
        # Secrets; an existing Secret stands in with a value of its kind), is one the
        # binary accepts. No secret is in the ConfigMap.
        cm = next(d for d in docs if d["kind"] == "ConfigMap")
        toml_text = cm["data"]["switchboard.toml"]
        for secret_key in ("redis_url", "keys", "turn_secret", "password"):
            if secret_key in toml_text:
                fail(f"{case}: {secret_key} in the ConfigMap")
        toml = os.path.join(tmp, "switchboard.toml")
        with open(toml, "w") as f:
            f.write(toml_text)
        env = {k: val for k, val in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update(pod_env(docs))
        # The files SWITCHBOARD_CONFIG names, from the ConfigMap and the SIP Secret (its
        # rendered data, or a stand-in for an existing one) as the pod mounts them.
        files = [toml]
        for path in env.pop("SWITCHBOARD_CONFIG").split(",")[1:]:
            if path != "/etc/switchboard-sip/sip.toml":
                fail(f"{case}: an unexpected config file {path}")
            sip_secret = v["sip"]["existingSecret"]
            text = EXISTING["sip.toml"] if sip_secret else next(
                d["stringData"]["sip.toml"] for d in docs if d["kind"] == "Secret")
            files.append(os.path.join(tmp, "sip.toml"))
            with open(files[-1], "w") as f:
                f.write(text)
        if v["sip"]["enabled"] and (v["sip"]["trunks"] or v["sip"]["existingSecret"]) and len(files) != 2:
            fail(f"{case}: the SIP Secret's file is not in SWITCHBOARD_CONFIG")
        r = subprocess.run([BIN, "--config", ",".join(files), "config", "print"], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            fail(f"{case}: the binary refuses the rendered switchboard.toml: {r.stderr}")
        printed = dict(line.split(" = ", 1) for line in r.stdout.splitlines() if " = " in line)
        if printed["workers"] != str(v["config"]["workers"]) or printed["drain_timeout"] != str(v["config"]["drainTimeout"]):
            fail(f"{case}: config not carried: {printed}")
        if v["cluster"]["enabled"] and printed.get("redis_url") != REDIS_URLS[case]:
            fail(f"{case}: redis_url not carried: {printed.get('redis_url')}")
        if printed.get("rtc_tcp_port") != str(v["config"]["rtcTcpPort"]) or printed.get("rtc_tcp_advertise_port") != (str(v["config"]["rtcTcpAdvertisePort"]) if v["config"]["rtcTcpAdvertisePort"] else None):
            fail(f"{case}: ICE-TCP settings not carried: {printed}")
        if v["sip"]["enabled"]:
            if printed.get("sip_listen") != f'"0.0.0.0:{v["sip"]["port"]}"' or printed.get("sip_rtp_ports") != f'"{v["sip"]["rtpPorts"]}"':
                fail(f"{case}: SIP settings not carried: {printed}")
            want_trunks = [t["name"] for t in v["sip"]["trunks"]] or (["existing-trunk"] if v["sip"]["existingSecret"] else [])
            if any(f'name = "{n}"' not in r.stdout for n in want_trunks):
                fail(f"{case}: trunks not carried: {r.stdout}")
            if any(u["password"] in r.stdout for u in v["sip"]["trunks"] + v["sip"]["users"]):
                fail(f"{case}: a SIP password printed")
            if len(v["sip"]["rules"]) != r.stdout.count("[[sip_rules]]"):
                fail(f"{case}: rules not carried: {r.stdout}")
        if v["ingress"]["enabled"] and printed.get("http_max_per_ip") != "0":
            fail(f"{case}: behind the Ingress the per-address limit would count the controller: {printed.get('http_max_per_ip')}")
        if printed.get("log_format") != f'"{v["config"]["logFormat"]}"':
            fail(f"{case}: log_format {printed.get('log_format')}")
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
    udp = sorted(p["containerPort"] for p in c["ports"] if p["protocol"] == "UDP" and p["name"].startswith("rtc-"))
    want = list(range(v["config"]["rtcPort"], v["config"]["rtcPort"] + v["config"]["workers"]))
    if udp != want:
        fail(f"{case}: UDP ports {udp}, want {want}")
    tcp_port = v["config"]["rtcTcpPort"]
    if [p["containerPort"] for p in c["ports"] if p["name"] == "rtc-tcp"] != ([tcp_port] if tcp_port else []):
        fail(f"{case}: the ICE-TCP container port")
    if pod["hostNetwork"] != v["hostNetwork"]:
        fail(f"{case}: hostNetwork")
    envs = {e["name"]: e for e in c["env"]}
    # The server never starts keyless: given, existing or generated keys, always from a Secret.
    if "SWITCHBOARD_KEYS" not in envs:
        fail(f"{case}: no SWITCHBOARD_KEYS: the pod would start in development mode")
    ref = envs["SWITCHBOARD_KEYS"]["valueFrom"]["secretKeyRef"]["name"]
    own = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    if v["apiKeys"]["existingSecret"]:
        if ref != v["apiKeys"]["existingSecret"] or any("keys" in d for d in own.values()):
            fail(f"{case}: existing secret")
    elif ref not in own or "keys" not in own[ref]:
        fail(f"{case}: secret {ref} not rendered")
    elif v["apiKeys"]["keys"] and own[ref]["keys"] != v["apiKeys"]["keys"]:
        fail(f"{case}: the given keys are not the Secret's")
    elif not v["apiKeys"]["keys"]:
        again = chart.render(values, name="sb", namespace="media", is_install=True)
        other = [d for path, text in again.items() if path.endswith("secret.yaml") for d in yaml.safe_load_all(text) if d]
        if other[0]["stringData"]["keys"] == own[ref]["keys"]:
            fail(f"{case}: two renders generated the same keys")
        print(f"{case}: keys generated into Secret {ref} ({own[ref]['keys'].split(':')[0]}:<{len(own[ref]['keys'].split(':')[1])} characters>)")
    if v["cluster"]["enabled"]:
        rref = envs["SWITCHBOARD_REDIS_URL"]["valueFrom"]["secretKeyRef"]
        if rref["key"] != "redis-url" or (rref["name"] in own and "redis-url" not in own[rref["name"]]):
            fail(f"{case}: the Redis URL does not come from a Secret: {rref}")
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
        # /metrics on the HTTP port needs the token: the pod has it, Prometheus sends it.
        auth = sm["spec"]["endpoints"][0].get("authorization")
        if not v["config"]["metricsPort"]:
            token_ref = envs.get("SWITCHBOARD_METRICS_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef")
            if not auth or auth["credentials"] != token_ref or not own.get(token_ref["name"], {}).get("metrics-token"):
                fail(f"{case}: the metrics token is not wired: {auth} {token_ref}")
    if v["rtcService"]["enabled"]:
        rtc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-rtc"))
        if sorted(p["port"] for p in rtc["spec"]["ports"] if p["protocol"] == "UDP") != want:
            fail(f"{case}: rtc service ports")
        tcp = [p for p in rtc["spec"]["ports"] if p["protocol"] == "TCP"]
        advertised = v["config"]["rtcTcpAdvertisePort"] or v["config"]["rtcTcpPort"]
        if [(p["port"], p["targetPort"]) for p in tcp] != [(advertised, v["config"]["rtcTcpPort"])]:
            fail(f"{case}: the ICE-TCP service port {tcp}")
    if v["sip"]["enabled"]:
        sip_ports = sorted((p["protocol"], p["containerPort"]) for p in c["ports"] if p["name"].startswith("sip-"))
        if sip_ports != [("TCP", v["sip"]["port"]), ("UDP", v["sip"]["port"])]:
            fail(f"{case}: SIP container ports {sip_ports}")
        if envs.get("SWITCHBOARD_SIP_ADVERTISE", {}).get("value") != "$(SWITCHBOARD_RTC_ADVERTISE)":
            fail(f"{case}: SIP does not advertise the media address")
        vols = {vol["name"]: vol for vol in pod["volumes"]}
        want_secret = v["sip"]["existingSecret"] or "sb-switchboard"
        if vols.get("sip", {}).get("secret", {}).get("secretName") != want_secret:
            fail(f"{case}: the SIP Secret is not mounted: {vols}")
        if v["sip"]["existingSecret"] and any("sip.toml" in d.get("stringData", {}) for d in docs if d["kind"] == "Secret"):
            fail(f"{case}: sip.toml rendered beside an existing Secret")
    if v["ingress"]["enabled"]:
        ing = next((d for d in docs if d["kind"] == "Ingress"), None)
        if not ing:
            fail(f"{case}: no Ingress")
        rule = ing["spec"]["rules"][0]
        backend = rule["http"]["paths"][0]["backend"]["service"]
        if rule["host"] != v["ingress"]["host"] or backend != {"name": "sb-switchboard", "port": {"name": "http"}}:
            fail(f"{case}: Ingress rule {rule}")
        if ing["spec"].get("tls") != [{"hosts": [v["ingress"]["host"]], "secretName": v["ingress"]["tlsSecret"]}]:
            fail(f"{case}: Ingress TLS {ing['spec'].get('tls')}")
        if ing["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/proxy-read-timeout") != "3600":
            fail(f"{case}: the WebSocket timeout annotation")
    elif "Ingress" in kinds:
        fail(f"{case}: an Ingress nobody asked for")
    print(f"{case}: lint clean, {len(docs)} manifests valid for Kubernetes {KUBE}: {', '.join(kinds)}")

# A bad value is refused at render time.
try:
    chart.render({"kind": "StatefulSet"}, name="sb")
    fail("kind StatefulSet rendered")
except helm.HelmError as e:
    print(f"kind StatefulSet refused: {str(e).splitlines()[0][:100]}")
try:
    chart.render({"ingress": {"enabled": True}}, name="sb")
    fail("an Ingress without a host rendered")
except helm.HelmError as e:
    print(f"Ingress without a host refused: {str(e).splitlines()[0][:100]}")
try:
    chart.render({"cluster": {"enabled": True}}, name="sb")
    fail("cluster without Redis rendered")
except helm.HelmError as e:
    print(f"cluster without Redis refused: {str(e).splitlines()[0][:100]}")
