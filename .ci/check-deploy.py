"""Offline checks of deploy/: the compose file and the Kubernetes manifests are what their
schemas allow, and what they configure is a configuration slotgate accepts.

Run by .ci/run after the build: python3 .ci/check-deploy.py <slotgate binary>"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
BINARY = sys.argv[1]
yaml = YAML(typ="safe")
failures = []


def fail(message):
    failures.append(message)
    print(f"  FAIL {message}")


def check_config(toml, env, what):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLOTGATE_", "OTEL_"))}
    clean.update({k: str(v) for k, v in env.items() if k.startswith("SLOTGATE_") and k != "SLOTGATE_CONFIG"})
    result = subprocess.run([BINARY, "check-config", str(toml)], env=clean, capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"{what}: slotgate check-config refused it:\n{result.stdout}{result.stderr}")
    else:
        print(f"  ok   {what}: {result.stdout.strip()}")


# docker-compose.yml
compose = yaml.load((ROOT / "docker-compose.yml").read_text())
services = compose["services"]
for name, service in services.items():
    for target in (service.get("depends_on") or {}):
        if target not in services:
            fail(f"compose: {name} depends on unknown service {target}")
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith(".") and not (ROOT / source).exists():
            fail(f"compose: {name} mounts missing {source}")
replicas = [n for n, s in services.items() if s.get("command") == ["serve"]]
if len(replicas) < 2:
    fail("compose: fewer than two slotgate replicas")
for name in replicas:
    env = services[name]["environment"]
    if env.get("SLOTGATE_STATE__BACKEND") != "redis":
        fail(f"compose: {name} does not share its state in Redis")
    check_config(ROOT / "deploy/demo.toml", env, f"compose {name}")
traefik = yaml.load((ROOT / "deploy/compose/traefik.yml").read_text())
for server in traefik["http"]["services"]["slotgate"]["loadBalancer"]["servers"]:
    host = server["url"].split("//")[1].split(":")[0]
    if host not in replicas:
        fail(f"traefik: balances to {host}, not a slotgate replica")

# deploy/k8s
k8s = ROOT / "deploy/k8s"
kustomization = yaml.load((k8s / "kustomization.yaml").read_text())
for resource in kustomization["resources"]:
    if not (k8s / resource).exists():
        fail(f"kustomization: missing {resource}")
manifests = sorted(str(p) for p in k8s.glob("*.yaml") if p.name != "kustomization.yaml")
result = subprocess.run(
    [str(ROOT / ".venv/bin/kubernetes-validate"), "--strict", "--quiet", "-k", "1.33.0", *manifests],
    capture_output=True, text=True,
)
if result.returncode != 0 or "ERROR" in result.stdout + result.stderr:
    fail(f"kubernetes: manifests do not validate:\n{result.stdout}{result.stderr}")
else:
    print(f"  ok   kubernetes 1.33 schemas (strict): {len(manifests)} manifests")
config = yaml.load((k8s / "configmap.yaml").read_text())["data"]["slotgate.toml"]
secret = yaml.load((k8s / "secret.template.yaml").read_text())["stringData"]
if any(v for v in secret.values()):
    fail("secret.template.yaml carries values")
placeholders = {k: f"placeholder-{k.lower()}-0123456789abcdef0123456789" for k in secret}
placeholders["SLOTGATE_SYNC__CANVAS_WEBHOOK_SECRET"] = "whsec_cGxhY2Vob2xkZXIgd2ViaG9vayBzZWNyZXQ="
with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
    f.write(config)
check_config(f.name, placeholders, "kubernetes ConfigMap + Secret")
os.unlink(f.name)
deployment = yaml.load((k8s / "deployment.yaml").read_text())
container = deployment["spec"]["template"]["spec"]["containers"][0]
probes = {container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]}
if probes != {"/readyz", "/healthz"}:
    fail(f"deployment probes {probes}")
if deployment["spec"]["replicas"] < 2:
    fail("deployment: fewer than two replicas")

sys.exit(1 if failures else 0)
