#!/usr/bin/env python3
"""Renders the Sluice Helm chart (deploy/helm/sluice) without helm, for offline validation.

The chart's templates use only what helm renders the same way: `{{ .Values.a.b }}`,
`{{ .Release.Name }}`, `{{ .Release.Namespace }}`, `{{ .Chart.Name }}`/`Version`/`AppVersion`,
and non-nested `{{- if .Values.x }}` / `{{- else }}` / `{{- end }}` blocks. Anything else is an
error, so the chart stays renderable here.

Usage: render-chart.py CHART_DIR [--name NAME] [--namespace NS] [--set key.path=value ...]
"""
import argparse
import os
import re
import sys

import yaml

EXPR = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def lookup(ctx, path):
    cur = ctx
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(path)
        cur = cur[part]
    return cur


def scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def render(text, ctx, source):
    out, stack = [], []  # stack of (condition, in_else)
    for lineno, line in enumerate(text.splitlines(keepends=True), 1):
        stripped = line.strip()
        m = re.fullmatch(r"\{\{-?\s*(if|else|end)\s*(.*?)\s*-?\}\}", stripped)
        if m:
            kind, arg = m.groups()
            if kind == "if":
                if stack:
                    sys.exit(f"{source}:{lineno}: nested if is not supported")
                if not arg.startswith(".Values."):
                    sys.exit(f"{source}:{lineno}: if needs a .Values path")
                stack.append([bool(lookup(ctx, arg[1:])), False])
            elif kind == "else":
                stack[-1][1] = True
            else:
                stack.pop()
            continue
        if stack and (stack[-1][0] == stack[-1][1]):
            continue

        def sub(m):
            expr = m.group(1)
            if not expr.startswith("."):
                sys.exit(f"{source}:{lineno}: unsupported template expression {expr!r}")
            try:
                return scalar(lookup(ctx, expr[1:]))
            except KeyError:
                sys.exit(f"{source}:{lineno}: no value for {expr}")

        out.append(EXPR.sub(sub, line))
    if stack:
        sys.exit(f"{source}: unterminated if")
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("chart")
    ap.add_argument("--name", default="sluice")
    ap.add_argument("--namespace", default="sluice")
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    with open(os.path.join(a.chart, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    with open(os.path.join(a.chart, "values.yaml")) as f:
        values = yaml.safe_load(f)
    for s in a.set:
        key, _, raw = s.partition("=")
        cur = values
        parts = key.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = yaml.safe_load(raw)
    ctx = {
        "Values": values,
        "Release": {"Name": a.name, "Namespace": a.namespace},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
    }
    tdir = os.path.join(a.chart, "templates")
    docs = []
    for name in sorted(os.listdir(tdir)):
        if not name.endswith(".yaml"):
            continue
        path = os.path.join(tdir, name)
        with open(path) as f:
            body = render(f.read(), ctx, path).strip()
        if body:
            docs.append(f"# Source: sluice/templates/{name}\n{body}\n")
    sys.stdout.write("---\n" + "---\n".join(docs))


if __name__ == "__main__":
    main()
