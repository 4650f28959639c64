"""Grafana dashboards as ConfigMaps for the Grafana sidecar (kube-prometheus-stack loads every
ConfigMap carrying its dashboard label). Every panel queries a metric the exporters really
export, or one of our recording rules built from them."""

from __future__ import annotations

import json
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel(panel_id: int, title: str, unit: str, exprs: dict[str, str], x: int, y: int) -> dict:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (legend, expr) in enumerate(exprs.items())],
    }


def stores_dashboard(neo4j_namespace: str, redis_namespace: str) -> dict:
    """The "Stores - Neo4j & Redis" dashboard, with working panels (docs/decisions/012-stores-slos-and-dashboard.md)."""
    neo, cache = f'namespace="{neo4j_namespace}"', f'namespace="{redis_namespace}"'
    panels = [
        ("Neo4j p95 query latency", "ms", {"{{service}}": f"neo4j:query_latency_ms:p95{{{neo}}}"}),
        ("Neo4j Bolt mean processing time", "ms", {"{{service}}": f"neo4j:bolt_processing_ms:mean5m{{{neo}}}"}),
        ("Neo4j transactions committed / s", "ops",
         {"{{service}}": f"sum by (service) (rate(neo4j_database_neo4j_transaction_committed_total{{{neo}}}[5m]))"}),
        ("Neo4j page cache hit ratio", "percentunit",
         {"{{service}}": f"neo4j_dbms_page_cache_hit_ratio{{{neo}}}"}),
        ("Redis ops / s", "ops", {"{{pod}}": f"redis:ops_per_s:rate1m{{{cache}}}"}),
        ("Redis evictions / s", "ops", {"{{pod}}": f"redis:evictions_per_s:rate1m{{{cache}}}"}),
        ("Redis memory used vs maxmemory", "bytes", {
            "used {{pod}}": f"redis_memory_used_bytes{{{cache}}}",
            "max {{pod}}": f"redis_memory_max_bytes{{{cache}}}"}),
        ("Redis connected clients", "short", {"{{pod}}": f"redis_connected_clients{{{cache}}}"}),
    ]
    return {
        "title": "Stores — Neo4j & Redis",
        "uid": "intelgraph-stores",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["intelgraph", "neo4j", "redis"],
        "templating": {"list": [{
            "name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0,
        }]},
        "panels": [_panel(i + 1, title, unit, exprs, x=12 * (i % 2), y=8 * (i // 2))
                   for i, (title, unit, exprs) in enumerate(panels)],
    }


def dashboard_configmap(name: str, *, namespace: str, label: str, dashboard: dict,
                        opts: pulumi.ResourceOptions, object_name: Optional[str] = None) -> k8s.core.v1.ConfigMap:
    return k8s.core.v1.ConfigMap(
        name,
        metadata={"name": object_name or name, "namespace": namespace, "labels": {label: "1"}},
        data={f"{dashboard['uid']}.json": json.dumps(dashboard, indent=2, ensure_ascii=False)},
        opts=opts,
    )
