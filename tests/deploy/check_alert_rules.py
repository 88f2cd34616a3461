#!/usr/bin/env python3
"""Checks the alert rules against what ships them, links them and shows them.

promtool checks that deploy/observability/alerts.yml is valid and that its
alerts fire as alerts_test.yml says; this checks what promtool cannot see:
  * deploy/k8s/prometheus-rule.yaml is a PrometheusRule whose spec.groups
    equal alerts.yml's groups, and kustomization.yaml lists it;
  * every alert has a runbook_url whose default is docs/operations.md and
    whose #anchor is a heading of that file's "Alerts and what to do"
    section (GitHub's heading anchors);
  * every alert is named by some panel of the Grafana dashboard (in a
    panel's description or query), every panel has a description, and every
    query is filtered by the dashboard's `instance` variable;
  * alerts_test.yml has, for every alert, a case where it fires and one
    where it stays quiet; it names no alert that does not exist (a typo
    would make `exp_alerts: []` pass vacuously); and every expected alert
    has an instance label (but an absent() alert, about a whole job) and a
    runbook_url.
Exit status 1 with one line per problem.

With --write, rewrites deploy/k8s/prometheus-rule.yaml from alerts.yml
(its header, then alerts.yml from `groups:` on, comments included) and then
checks as usual.
"""
import argparse
import json
import os
import re
import sys

import yaml

ALERTS = "deploy/observability/alerts.yml"
ALERTS_TEST = "deploy/observability/alerts_test.yml"
DASHBOARD = "deploy/observability/grafana/telemetry-dashboard.json"
RULE = "deploy/k8s/prometheus-rule.yaml"
KUSTOMIZATION = "deploy/k8s/kustomization.yaml"
OPERATIONS = "docs/operations.md"
ALERT_SECTION = "Alerts and what to do"
# The runbook_url template: the operator's base URL or the repository path.
RUNBOOK = re.compile(
    r"^\{\{ with \$externalLabels\.runbook_base_url \}\}\{\{ \. \}\}"
    r"\{\{ else \}\}(?P<default>[^{}#]+)\{\{ end \}\}#(?P<anchor>[a-z0-9_-]+)$")

RULE_HEADER = """\
# The alert rules of deploy/observability/alerts.yml for the Prometheus
# Operator: spec.groups is that file's `groups:` as they stand, comments
# included. Do not edit this copy: edit alerts.yml, then regenerate it with
#   python3 tests/deploy/check_alert_rules.py --source . --write
# (tests/deploy/check_alert_rules.py fails while the two differ).
#
# The Prometheus resource loads it only if its ruleSelector (and
# ruleNamespaceSelector) match: kube-prometheus-stack, for one, selects
# `release: <helm release name>`; add that label below if yours does.
# The alerts' runbook_url links to docs/operations.md unless the
# Prometheus resource sets the external label, e.g.
#   spec:
#     externalLabels:
#       runbook_base_url: https://git.example.com/telemetry-gateway/blob/v0.1.0/docs/operations.md
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: telemetry-gateway
  namespace: telemetry
  labels:
    app.kubernetes.io/part-of: telemetry-gateway
spec:
"""

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def load_yaml(root, rel):
    with open(os.path.join(root, rel)) as f:
        return yaml.safe_load(f)


def write_rule(root):
    with open(os.path.join(root, ALERTS)) as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = "".join(f"  {line}\n" if line else "\n" for line in lines[start:])
    with open(os.path.join(root, RULE), "w") as f:
        f.write(RULE_HEADER + body)


def github_anchors(markdown):
    """Heading anchors as GitHub makes them, each with its section (## title)."""
    anchors, seen, section, fence = {}, {}, None, False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        title = m.group(2)
        if len(m.group(1)) == 2:
            section = title
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors[slug if n == 0 else f"{slug}-{n}"] = section
    return anchors


def alerts_of(groups):
    out = {}
    for g in groups:
        for r in g.get("rules", []):
            if "alert" in r:
                if r["alert"] in out:
                    problem(ALERTS, f"alert {r['alert']} is defined twice")
                out[r["alert"]] = r
    return out


def check_prometheus_rule(root, groups):
    with open(os.path.join(root, RULE)) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        problem(RULE, f"{len(rules)} PrometheusRule documents, want 1")
        return
    rule = rules[0]
    if rule.get("apiVersion") != "monitoring.coreos.com/v1":
        problem(RULE, f"apiVersion {rule.get('apiVersion')}, want monitoring.coreos.com/v1")
    theirs = rule.get("spec", {}).get("groups")
    if theirs != groups:
        names = [g.get("name") for g in theirs or []]
        problem(RULE, f"spec.groups differ from {ALERTS}'s groups (groups here: {names}); "
                      "regenerate with --write")
    kustomization = load_yaml(root, KUSTOMIZATION)
    if os.path.basename(RULE) not in kustomization.get("resources", []):
        problem(KUSTOMIZATION, f"resources do not list {os.path.basename(RULE)}")


def check_runbooks(root, alerts):
    with open(os.path.join(root, OPERATIONS)) as f:
        anchors = github_anchors(f.read())
    for name, rule in alerts.items():
        url = rule.get("annotations", {}).get("runbook_url")
        if not url:
            problem(ALERTS, f"{name} has no runbook_url annotation")
            continue
        m = RUNBOOK.match(url)
        if not m:
            problem(ALERTS, f"{name}: runbook_url {url!r} is not the runbook_base_url template")
            continue
        if m.group("default") != OPERATIONS:
            problem(ALERTS, f"{name}: runbook_url defaults to {m.group('default')}, not {OPERATIONS}")
        anchor = m.group("anchor")
        if anchor not in anchors:
            problem(ALERTS, f"{name}: runbook anchor #{anchor} is no heading of {OPERATIONS}")
        elif anchors[anchor] != ALERT_SECTION:
            problem(ALERTS, f"{name}: #{anchor} is under '{anchors[anchor]}', "
                            f"not '{ALERT_SECTION}' of {OPERATIONS}")


def panels_of(panels):
    for p in panels:
        yield p
        yield from panels_of(p.get("panels", []))


def check_dashboard(root, alerts):
    with open(os.path.join(root, DASHBOARD)) as f:
        dashboard = json.load(f)
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    instance = variables.get("instance")
    if not instance:
        problem(DASHBOARD, "no `instance` template variable")
    else:
        query = instance.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        if not re.search(r"label_values\(.*,\s*instance\)", query):
            problem(DASHBOARD, f"variable instance: query {query!r} is not label_values(..., instance)")
        if not (instance.get("multi") and instance.get("includeAll")):
            problem(DASHBOARD, "variable instance is not multi-value with All")
    texts = []
    for p in panels_of(dashboard.get("panels", [])):
        where = f"panel {p.get('id')} '{p.get('title')}'"
        if not p.get("description", "").strip():
            problem(DASHBOARD, f"{where} has no description")
        texts.append(p.get("description", ""))
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            texts.append(expr)
            if not re.search(r'instance=~"\$instance"', expr):
                problem(DASHBOARD, f"{where} query {t.get('refId')} is not filtered by $instance")
    for name in alerts:
        if not any(re.search(rf"\b{name}\b", text) for text in texts):
            problem(DASHBOARD, f"no panel's description or query refers to alert {name}")


def check_tests(root, alerts):
    doc = load_yaml(root, ALERTS_TEST)
    fires, quiet = set(), set()
    for test in doc.get("tests", []):
        for case in test.get("alert_rule_test", []):
            name = case.get("alertname")
            where = f"test '{test.get('name')}' at {case.get('eval_time')}"
            if name not in alerts:
                problem(ALERTS_TEST, f"{where}: alert {name} is not in {ALERTS}")
                continue
            expected = case.get("exp_alerts") or []
            (fires if expected else quiet).add(name)
            # absent(...) is about a whole job (no target left): it cannot
            # name an instance.
            fleet_wide = str(alerts[name].get("expr", "")).lstrip().startswith("absent(")
            for e in expected:
                if "instance" not in (e.get("exp_labels") or {}) and not fleet_wide:
                    problem(ALERTS_TEST, f"{where}: {name} expected without an instance label")
                if "runbook_url" not in (e.get("exp_annotations") or {}):
                    problem(ALERTS_TEST, f"{where}: {name} expected without its runbook_url")
    for name in alerts:
        if name not in fires:
            problem(ALERTS_TEST, f"no test where {name} fires")
        if name not in quiet:
            problem(ALERTS_TEST, f"no test where {name} stays quiet")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="the repository's root")
    ap.add_argument("--write", action="store_true", help=f"regenerate {RULE} first")
    args = ap.parse_args()
    root = os.path.abspath(args.source)
    if args.write:
        write_rule(root)
    groups = load_yaml(root, ALERTS).get("groups", [])
    alerts = alerts_of(groups)
    if not alerts:
        problem(ALERTS, "no alerts")
    check_prometheus_rule(root, groups)
    check_runbooks(root, alerts)
    check_dashboard(root, alerts)
    check_tests(root, alerts)
    print(f"checked {len(alerts)} alerts in {len(groups)} groups")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
