#!/usr/bin/env python3
"""Checks deploy/ against the binaries it runs (ctest: deploy_config_test).

No Docker engine or Kubernetes cluster runs in CI, so the deployment files are
checked statically, against the real binaries' --helpfull:
  * every flag passed to ingest-gateway, read-service or telemetryctl (compose
    commands, Kubernetes container args, systemd ExecStart) exists;
  * every environment variable given to them is one they read (named in their
    help) or a libpq PG* variable;
  * every port a container listens on is declared, and every probe targets a
    port the service listens on; probes use the plaintext health port;
  * every telemetryctl invocation names a command telemetryctl has (its
    `help` lists them);
  * compose: services it depends on, secrets and mounted files exist; every
    long-running telemetry service has a healthcheck running a telemetryctl
    command, over plaintext to its --health_listen port, and a stop grace
    period longer than its --shutdown_grace; every service has CPU and
    memory limits and no container_name; the gateway publishes no fixed host
    port (so it scales); a service_healthy dependency has a healthcheck;
  * images: third-party images (compose, Kubernetes, Dockerfile FROM) carry
    a version tag or digest, never none or :latest (images compose builds
    itself are exempt);
  * Kubernetes: every pod template (Deployment, StatefulSet, DaemonSet,
    ReplicaSet, Job, CronJob, Pod) is selected by a NetworkPolicy allowing
    egress, which opens DNS and the ports its environment says it uses
    (PostgreSQL for *DATABASE_URL, Redis for REDIS_URL); only ports are
    compared, not destinations; terminationGracePeriodSeconds exceeds
    --shutdown_grace;
  * Dockerfile: COPY sources exist; the runtime stage runs as a non-root user;
  * systemd: each service unit running ingest-gateway or read-service has
    Requires= and After= on the unit that runs `telemetryctl migrate`; the
    units pass `systemd-analyze verify` (with the build's binaries).
Exit status 1 with one line per problem.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

BINARIES = ("ingest-gateway", "read-service", "telemetryctl")
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


# Long-running services: each needs a healthcheck, limits and a stop grace.
SERVICES = ("ingest-gateway", "read-service")
# What a pod's environment says it connects to, and the default port.
DATABASE_ENVS = ("DATABASE_URL", "READ_DATABASE_URL", "MAINTENANCE_DATABASE_URL")
DEFAULT_SHUTDOWN_GRACE = 10.0  # --shutdown_grace's default in both services
DOCKER_STOP_GRACE = 10.0       # compose's stop_grace_period default


def run_help(path, *args):
    out = subprocess.run([path, *args], capture_output=True, text=True, timeout=60)
    return out.stdout + out.stderr


def help_of(path):
    """(flags, environment variables, commands) from a binary's own help.

    Flags come from --helpfull (absl's `  --name (description); default: ...`).
    telemetryctl's commands come from `telemetryctl help` (and --help), one a
    line as `  <name>  <summary>`."""
    text = run_help(path, "--helpfull")
    commands = set()
    if path.endswith("telemetryctl"):
        listing = run_help(path, "help") + run_help(path, "--help")
        commands = set(re.findall(r"^  ([a-z][a-z0-9-]*)\s{2,}\S", listing, re.M))
        text += listing
    flags = set(re.findall(r"^\s+--([a-z0-9_]+) \(", text, re.M))
    flat = " ".join(text.split())
    envs = set(re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", flat))
    envs |= set(re.findall(r"\benv ([A-Z][A-Z0-9_]+)", flat))
    envs |= set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", flat))
    return flags, envs, commands


def seconds(text):
    """Go/absl-style duration ("45s", "1m30s", "500ms", "2h") or a bare number
    of seconds; None when unparsable."""
    if isinstance(text, (int, float)):
        return float(text)
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * units[u] for n, u in parts)


def flag_value(argv, name):
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def shutdown_grace(argv):
    value = flag_value(argv, "shutdown_grace")
    return DEFAULT_SHUTDOWN_GRACE if value is None else seconds(value)


# Tags that move to whatever is newest (alone or joined: lts-alpine).
FLOATING_TAGS = {"latest", "stable", "edge", "lts", "current", "mainline", "rolling",
                 "nightly", "testing", "unstable", "sid", "alpine", "slim"}


def check_image(where, image):
    """Third-party images carry a version (a version number, a release name
    such as bookworm-slim, or a digest), never none or :latest."""
    if "@sha256:" in image:
        return
    name = image.rsplit("/", 1)[-1]
    tag = name.split(":", 1)[1] if ":" in name else ""
    if not tag:
        problem(where, f"image {image} has no tag (that is :latest): pin a version")
    elif all(part in FLOATING_TAGS for part in tag.split("-")):
        problem(where, f"image {image} is not pinned to a version")


def check_invocation(where, argv, env_names, known):
    binary = os.path.basename(argv[0]) if argv else ""
    if binary not in known:
        return None
    flags, envs, commands = known[binary]
    if binary == "telemetryctl":
        command = argv[1] if len(argv) > 1 else ""
        if command.startswith("-") or command not in commands:
            problem(where, f"telemetryctl has no command '{command}' "
                           f"(its help lists {', '.join(sorted(commands)) or 'none'})")
    for arg in argv[1:]:
        if not arg.startswith("--"):
            continue
        name = arg[2:].split("=", 1)[0]
        if name not in flags:
            problem(where, f"{binary} has no flag --{name}")
    for env in env_names:
        if env.startswith("PG") or env in envs:
            continue
        problem(where, f"{binary} does not read environment variable {env}")
    return binary


def listen_ports(argv):
    ports = {}
    for arg in argv:
        m = re.match(r"--([a-z_]*listen)=.*:(\d+)$", arg)
        if m:
            ports[m.group(1)] = int(m.group(2))
    return ports


def check_compose(path, known):
    with open(path) as f:
        doc = yaml.safe_load(f)
    base = os.path.dirname(path)
    services = doc.get("services", {})
    secrets = doc.get("secrets", {})
    for name, svc in services.items():
        where = f"{os.path.relpath(path)} service {name}"
        command = svc.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        env = svc.get("environment", {})
        env_names = list(env.keys()) if isinstance(env, dict) else [e.split("=")[0] for e in env]
        if isinstance(command, list):
            check_invocation(where, command, env_names, known)
        for dep in svc.get("depends_on", {}) or {}:
            if dep not in services:
                problem(where, f"depends on unknown service {dep}")
        for s in svc.get("secrets", []) or []:
            if s not in secrets:
                problem(where, f"uses undeclared secret {s}")
        for vol in svc.get("volumes", []) or []:
            src = vol.split(":")[0]
            if src.startswith(".") and not os.path.exists(os.path.join(base, src)):
                problem(where, f"mounts {src}, which does not exist")
        build = svc.get("build")
        if isinstance(build, dict):
            ctx = os.path.join(base, build.get("context", "."))
            if not os.path.exists(os.path.join(ctx, build.get("dockerfile", "Dockerfile"))):
                problem(where, "build.dockerfile does not exist")
        if "image" in svc and not build:
            check_image(where, svc["image"])
        elif "image" not in svc and not build:
            problem(where, "neither image nor build")
        if "container_name" in svc:
            problem(where, "container_name set: the service cannot be scaled and "
                           "two checkouts cannot run side by side")
        check_compose_limits(where, svc)
        deps = svc.get("depends_on", {}) or {}
        if isinstance(deps, dict):
            for dep, cond in deps.items():
                if (isinstance(cond, dict) and cond.get("condition") == "service_healthy"
                        and dep in services and not services[dep].get("healthcheck")):
                    problem(where, f"waits for {dep} to be service_healthy, "
                                   "which has no healthcheck")
        binary = os.path.basename(command[0]) if isinstance(command, list) and command else ""
        if binary in SERVICES:
            check_compose_service(where, svc, command, known)
    return len(services)


def check_compose_limits(where, svc):
    limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    if not (limits.get("cpus") or svc.get("cpus")):
        problem(where, "no CPU limit (deploy.resources.limits.cpus)")
    if not (limits.get("memory") or svc.get("mem_limit")):
        problem(where, "no memory limit (deploy.resources.limits.memory)")


def published_host_ports(ports):
    """The fixed host ports a compose `ports:` list publishes. Ephemeral ones
    ("50051", or `published` unset) and ranges ("50061-50069:50051": each
    replica takes one port of the range) are not fixed."""
    fixed = []
    for p in ports or []:
        if isinstance(p, dict):
            published = str(p.get("published", "") or "")
        else:
            spec = str(p).split("/", 1)[0]
            # [[ip:]host:]container; an IPv6 ip is bracketed.
            spec = re.sub(r"^\[[^]]*\]:", "", spec)
            fields = spec.split(":")
            published = fields[-2] if len(fields) >= 2 else ""
        if published and "-" not in published:
            fixed.append(published)
    return fixed


def check_compose_service(where, svc, command, known):
    """A long-running telemetry service: healthcheck, grace, scaling."""
    binary = os.path.basename(command[0])
    hc = svc.get("healthcheck")
    health_port = listen_ports(command).get("health_listen")
    if not hc or hc.get("disable"):
        problem(where, "no healthcheck (telemetryctl health against --health_listen)")
    else:
        test = hc.get("test")
        if isinstance(test, str):
            argv = shlex.split(test)
        elif isinstance(test, list) and test and test[0] == "CMD-SHELL":
            argv = shlex.split(" ".join(test[1:]))
        elif isinstance(test, list) and test and test[0] == "CMD":
            argv = list(test[1:])
        else:
            argv = []
        if not argv or os.path.basename(argv[0]) != "telemetryctl":
            problem(where, f"healthcheck runs {argv[:1]}: the image has no probe tool "
                           "but telemetryctl")
        else:
            check_invocation(f"{where} healthcheck", argv, [], known)
            if len(argv) > 1 and argv[1] != "health" and argv[1] in known["telemetryctl"][2]:
                problem(where, f"healthcheck runs telemetryctl {argv[1]}, not health")
            target = flag_value(argv, "target") or ""
            m = re.search(r":(\d+)$", target)
            if health_port is None:
                problem(where, "healthcheck, but no --health_listen (plaintext health port)")
            elif not m or int(m.group(1)) != health_port:
                problem(where, f"healthcheck target {target or '(none)'} is not "
                               f"--health_listen port {health_port}")
            if "--plaintext" not in argv:
                problem(where, "healthcheck without --plaintext: --health_listen serves "
                               "plaintext only")
    grace = shutdown_grace(command)
    stop = svc.get("stop_grace_period")
    stop_s = DOCKER_STOP_GRACE if stop is None else seconds(stop)
    if grace is not None and stop_s is not None and stop_s <= grace:
        problem(where, f"stop_grace_period {stop_s:g}s is not longer than --shutdown_grace "
                       f"{grace:g}s: Docker kills the drain")
    if binary == "ingest-gateway":
        for port in published_host_ports(svc.get("ports")):
            problem(where, f"publishes fixed host port {port}: `--scale ingest-gateway=N` "
                           "would collide (use a balancer, a range or an ephemeral port)")


def pod_template_of(doc):
    """(metadata, spec) of the pods a workload runs, or None."""
    kind = doc.get("kind")
    spec = doc.get("spec", {}) or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        t = spec.get("template", {}) or {}
    elif kind == "CronJob":
        t = ((spec.get("jobTemplate", {}) or {}).get("spec", {}) or {}).get("template", {}) or {}
    elif kind == "Pod":
        t = doc
    else:
        return None
    return t.get("metadata", {}) or {}, t.get("spec", {}) or {}


def containers_of(doc):
    pod = pod_template_of(doc)
    return pod[1].get("containers", []) if pod else []


def selects(selector, labels):
    """Whether a LabelSelector selects a pod with these labels."""
    selector = selector or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_text(selector):
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    parts += [f"{e.get('key')} {e.get('operator')} {e.get('values') or ''}".strip()
              for e in selector.get("matchExpressions") or []]
    return ", ".join(parts) or "every pod"


def egress_policy(doc):
    """Whether a NetworkPolicy restricts egress (policyTypes, or egress rules
    with no policyTypes)."""
    types = doc.get("spec", {}).get("policyTypes")
    if types is None:
        return "egress" in doc.get("spec", {})
    return "Egress" in types


def opens(policy, port, protocol):
    """Whether one of an egress policy's rules allows this port (any
    destination; `to:` is not evaluated)."""
    for rule in policy.get("spec", {}).get("egress") or []:
        ports = rule.get("ports")
        if not ports:
            return True
        for p in ports:
            if p.get("protocol", "TCP") != protocol:
                continue
            if "port" not in p:
                return True
            lo = p["port"]
            if not isinstance(lo, int):
                continue  # a named port: cannot be compared here
            hi = p.get("endPort", lo)
            if lo <= port <= hi:
                return True
    return False


def url_port(value, default):
    m = re.match(r"^[a-z]+://(?:[^@/]*@)?(?:\[[^]]*\]|[^:/?]*):(\d+)", value or "")
    return int(m.group(1)) if m else default


def needed_egress(pod_spec):
    """(port, protocol, why) the pod's containers need to reach."""
    needs = {(53, "UDP", "DNS")}
    for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        for e in c.get("env", []) or []:
            name, value = e.get("name", ""), e.get("value")
            if name in DATABASE_ENVS:
                needs.add((url_port(value, 5432), "TCP", f"PostgreSQL ({name})"))
            elif name == "REDIS_URL":
                needs.add((url_port(value, 6379), "TCP", "Redis (REDIS_URL)"))
    return needs


def check_network_policies(workloads, policies):
    """Every pod template is selected by an egress-allowing NetworkPolicy of
    its namespace that opens what its environment says it connects to."""
    for where, namespace, labels, pod_spec in workloads:
        egress = [(name, p) for name, ns, p in policies if ns == namespace and egress_policy(p)]
        allowing = [(name, p) for name, p in egress if p.get("spec", {}).get("egress")]
        selecting = [(name, p) for name, p in allowing
                     if selects(p["spec"].get("podSelector"), labels)]
        if not selecting:
            wanted = "; ".join(f"{name} selects {selector_text(p['spec'].get('podSelector') or {})}"
                               for name, p in allowing) or "none allows egress"
            shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none"
            problem(where, f"pod template labels ({shown}) are selected by no NetworkPolicy "
                           f"allowing egress in namespace {namespace} ({wanted})")
            continue
        for port, protocol, why in sorted(needed_egress(pod_spec)):
            if not any(opens(p, port, protocol) for _, p in selecting):
                problem(where, f"needs {why} on {protocol} {port}, which no egress "
                               f"NetworkPolicy selecting it ({', '.join(n for n, _ in selecting)}) "
                               "opens")


def kustomize_namespace(directory):
    path = os.path.join(directory, "kustomization.yaml")
    if not os.path.exists(path):
        return None, set()
    with open(path) as f:
        k = yaml.safe_load(f) or {}
    return k.get("namespace"), set(k.get("resources") or [])


def check_k8s(directory, known):
    count = 0
    k_namespace, k_resources = kustomize_namespace(directory)
    workloads, policies = [], []
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith(".yaml"):
            continue
        with open(os.path.join(directory, fname)) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            if "apiVersion" not in doc or "kind" not in doc:
                problem(fname, "a document without apiVersion/kind")
                continue
            meta = doc.get("metadata", {}) or {}
            namespace = meta.get("namespace") or (
                k_namespace if fname in k_resources else None) or "default"
            if doc["kind"] == "NetworkPolicy":
                policies.append((meta.get("name"), namespace, doc))
            pod = pod_template_of(doc)
            if pod is not None:
                workloads.append((f"deploy/k8s/{fname} {doc['kind']}/{meta.get('name')}",
                                  namespace, pod[0].get("labels", {}) or {}, pod[1]))
                grace = pod[1].get("terminationGracePeriodSeconds", 30)
            for c in containers_of(doc):
                count += 1
                where = f"deploy/k8s/{fname} {doc['kind']}/{doc['metadata']['name']} {c['name']}"
                check_image(where, c.get("image", ""))
                argv = list(c.get("command", [])) + list(c.get("args", []))
                env_names = [e["name"] for e in c.get("env", [])]
                binary = check_invocation(where, argv, env_names, known)
                if binary is None:
                    problem(where, f"runs {argv[:1]}, not one of {BINARIES}")
                    continue
                if binary in SERVICES:
                    drain = shutdown_grace(argv)
                    if drain is not None and grace <= drain:
                        problem(where, f"terminationGracePeriodSeconds {grace} is not longer "
                                       f"than --shutdown_grace {drain:g}s")
                declared = {p["containerPort"] for p in c.get("ports", [])}
                listening = listen_ports(argv)
                for flag, port in listening.items():
                    if port not in declared:
                        problem(where, f"--{flag} port {port} is not a containerPort")
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    p = c.get(probe)
                    if not p:
                        continue
                    if "grpc" in p:
                        port = p["grpc"]["port"]
                        if listening.get("health_listen") != port:
                            problem(where, f"{probe} gRPC port {port} is not --health_listen "
                                           "(Kubernetes gRPC probes cannot speak TLS)")
                sc = c.get("securityContext", {})
                if sc.get("allowPrivilegeEscalation", True) or not sc.get("readOnlyRootFilesystem"):
                    problem(where, "container not hardened (privilege escalation / writable root)")
            if doc["kind"] in ("Deployment", "Job"):
                pod = doc["spec"]["template"]["spec"]
                if not pod.get("securityContext", {}).get("runAsNonRoot"):
                    problem(f"deploy/k8s/{fname}", f"{doc['metadata']['name']} may run as root")
    check_network_policies(workloads, policies)
    return count


def check_dockerfile(path, root):
    text = open(path).read()
    for m in re.finditer(r"^COPY (?!--from)(.+)$", text, re.M):
        for src in m.group(1).split()[:-1]:
            if not os.path.exists(os.path.join(root, src)):
                problem(os.path.relpath(path), f"COPY source {src} does not exist")
    stage_names = set()
    for m in re.finditer(r"^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I):
        if m.group(1) not in stage_names and m.group(1) != "scratch":
            check_image(os.path.relpath(path), m.group(1))
        if m.group(2):
            stage_names.add(m.group(2))
    stages = re.split(r"^FROM ", text, flags=re.M)
    if not re.search(r"^USER (?!root|0\b)\S+", stages[-1], re.M):
        problem(os.path.relpath(path), "the runtime stage does not switch to a non-root USER")


def unit_settings(path):
    """{(section, key): [values]} of a unit file; list settings split on spaces."""
    settings, section = {}, ""
    for raw in open(path):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault((section, key.strip()), []).append(value.strip())
    return settings


def check_systemd(directory, known, bindir):
    units = [f for f in sorted(os.listdir(directory)) if f.endswith(".service")]
    parsed = {u: unit_settings(os.path.join(directory, u)) for u in units}
    runs = {}
    for unit in units:
        for line in open(os.path.join(directory, unit)):
            if line.startswith("ExecStart="):
                argv = shlex.split(line[len("ExecStart="):].lstrip("-@+!:"))
                check_invocation(f"deploy/systemd/{unit}", argv, [], known)
                runs[unit] = argv
    # The services start only after the migrations, and only if they succeeded.
    migrate = [u for u, argv in runs.items()
               if os.path.basename(argv[0]) == "telemetryctl" and argv[1:2] == ["migrate"]]
    for unit, argv in runs.items():
        if os.path.basename(argv[0]) not in SERVICES:
            continue
        if not migrate:
            problem(f"deploy/systemd/{unit}", "no unit runs `telemetryctl migrate` to depend on")
            continue
        for key in ("Requires", "After"):
            listed = " ".join(parsed[unit].get(("Unit", key), [])).split()
            for m in migrate:
                if m not in listed:
                    problem(f"deploy/systemd/{unit}", f"no {key}={m}")
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("systemd-analyze not installed: unit verification skipped")
        return len(units)
    with tempfile.TemporaryDirectory() as tmp:
        for unit in units:
            text = open(os.path.join(directory, unit)).read()
            for b in BINARIES:
                text = text.replace(f"/usr/local/bin/{b}", bindir[b])
            with open(os.path.join(tmp, unit), "w") as f:
                f.write(text)
        out = subprocess.run([analyze, "verify"] + [os.path.join(tmp, u) for u in units],
                             capture_output=True, text=True, timeout=120)
        for line in (out.stdout + out.stderr).splitlines():
            # Only findings about our units; the host's own units are not ours.
            if any(u in line for u in units) and "Failed to" not in line.split(":", 1)[0]:
                problem("systemd-analyze verify", line)
    return len(units)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    for b in BINARIES:
        ap.add_argument(f"--{b}", required=True)
    args = ap.parse_args()
    bindir = {b: os.path.abspath(getattr(args, b.replace("-", "_"))) for b in BINARIES}
    known = {b: help_of(path) for b, path in bindir.items()}
    for b, (flags, envs, commands) in known.items():
        if len(flags) < 3:
            problem(b, f"--helpfull listed only {len(flags)} flags; the parser is broken")
    if len(known["telemetryctl"][2]) < 3:
        problem("telemetryctl", f"`telemetryctl help` listed only {len(known['telemetryctl'][2])} "
                                "commands; the parser is broken")
    deploy = os.path.join(args.source, "deploy")
    n_compose = check_compose(os.path.join(deploy, "docker", "compose.yaml"), known)
    check_dockerfile(os.path.join(deploy, "docker", "Dockerfile"), args.source)
    n_containers = check_k8s(os.path.join(deploy, "k8s"), known)
    n_units = check_systemd(os.path.join(deploy, "systemd"), known, bindir)
    print(f"checked {n_compose} compose services, {n_containers} Kubernetes containers, "
          f"{n_units} systemd units")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
