"""The Fluent Bit Lua scrubber, run by a real Lua 5.4 interpreter (Debian lua5.4; Fluent Bit embeds
LuaJIT, which runs the same 5.1-compatible patterns; the filter avoids 5.4-only syntax) over sample
records: what the privacy notes name is removed or masked, and ordinary records pass unchanged
(code 0), as the Fluent Bit "Lua" filter contract defines (0 keep, 2 replace record, -1 drop)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.tools import require_tool

FILTER = ROOT / "components" / "scripts" / "scrub.lua"
DRIVER = ROOT / "tests" / "lua" / "run_filter.lua"


def to_lua(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{to_lua(k)}] = {to_lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(to_lua(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for this data


def run(records: list[dict], tmp_path: Path, filter_file: Path = FILTER) -> list[dict]:
    samples = tmp_path / "samples.lua"
    samples.write_text("return {" + ",\n".join(to_lua(r) for r in records) + "}")
    result = subprocess.run([require_tool("lua5.4"), str(DRIVER), str(filter_file), "scrub", str(samples)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


UNCHANGED = [
    # design-notes PR 41's audit record (docs/decisions/010): the audit trail keeps who (an id), what, why and from where
    {"audit": {"ts": "2026-12-01T18:05:46.123Z", "user": "u-81234", "path": "/api/cases/42/export",
               "method": "POST", "status": 200, "reason": "case review INC-2291", "ip": "10.40.12.7"}},
    {"log": "GET /healthz 200 1.2ms", "stream": "stdout", "kubernetes": {"namespace_name": "graph"}},
    {"level": "info", "msg": "query finished", "duration_ms": 1532, "request_id": "123e4567-e89b-12d3-a456-426614174000",
     "time": "2026-12-01 18:05:46", "bolt": "neo4j://graph-1.graph:7687", "order": "ORD-2026-000123"},
    {"log": "2026-12-01T03:00:01Z INFO Backup of database 'neo4j' completed in 184.2s, 1048576 bytes",
     "version": "5.26.16", "tags": ["backup", "neo4j"], "ok": True, "ratio": 0.75},
    # digit runs that are not personal data: offsets, epochs, ports, sizes, a non-Luhn 16-digit id
    {"log": "at 2026-12-01T18:05:46+0000 epoch 1733054400 ports 8080-8090 took +12ms id 4111111111111112",
     "bytes": "1048576", "trace": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
]


def test_records_without_personal_data_pass_unchanged(tmp_path):
    results = run(UNCHANGED, tmp_path)
    assert len(results) == len(UNCHANGED)
    for result, record in zip(results, UNCHANGED, strict=True):
        assert result["code"] == 0, result
        assert result["record"] == record


@pytest.mark.parametrize("record, expected", [
    # fields design-notes PR 43 (pino redact paths) and PR 52 (Fluent Bit Remove_key, OTEL attributes) name
    ({"req": {"headers": {"authorization": "Basic dXNlcjpwYXNz", "accept": "json"}}, "msg": "in"},
     {"req": {"headers": {"accept": "json"}}, "msg": "in"}),
    ({"password": "hunter2", "ssn": "078-05-1120", "email": "ana@example.org", "ok": 1}, {"ok": 1}),
    ({"card": {"number": "4111 1111 1111 1111", "brand": "visa"}}, {"card": {"brand": "visa"}}),
    ({"user.email": "ana@example.org", "user.id": "u-1", "db.statement.parameters": "['ana', 42]",
      "http.request.header.authorization": "Bearer abc", "db.statement": "SELECT 1"},
     {"user.id": "u-1", "db.statement": "SELECT 1"}),
    ({"user": {"email": "ana@example.org", "id": "u-1"}}, {"user": {"id": "u-1"}}),
    ({"Authorization": "Bearer x", "Cookie": "sid=1", "x": "y"}, {"x": "y"}),
    # personal data inside free text
    ({"log": "login failed for ana.lopez+test@mail.example.co.uk from 10.0.0.1"},
     {"log": "login failed for [email] from 10.0.0.1"}),
    ({"log": "call +44 20 7946 0958 or (415) 555-0100 or 415.555.0199"},
     {"log": "call [phone] or [phone] or [phone]"}),
    ({"log": "upstream sent Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln== ok"},
     {"log": "upstream sent Authorization: Bearer [token] ok"}),
    ({"log": "using AKIAIOSFODNN7EXAMPLE with aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
     {"log": "using [aws-key] with aws_secret_access_key=[aws-secret]"}),
    ({"log": "paid with 5500-0000-0000-0004, ssn 078-05-1120"}, {"log": "paid with [card], ssn [ssn]"}),
    ({"items": [{"email": "a@b.io"}, "mail me at a@b.io"]}, {"items": [{}, "mail me at [email]"]}),
])
def test_personal_data_is_removed_or_masked(record, expected, tmp_path):
    [result] = run([record], tmp_path)
    assert result["code"] == 2  # record replaced, timestamp kept
    assert result["timestamp"] == 1733054400.5
    assert result["record"] == expected


def test_a_scrubber_error_drops_the_record_instead_of_shipping_it(tmp_path):
    # a record the rules cannot walk (a table with a metatable that raises) must be dropped (-1)
    samples = tmp_path / "samples.lua"
    samples.write_text('return {setmetatable({}, {__pairs = function() error("boom") end})}')
    result = subprocess.run([require_tool("lua5.4"), str(DRIVER), str(FILTER), "scrub", str(samples)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["code"] == -1


def test_a_non_luhn_digit_run_is_not_a_card(tmp_path):
    [result] = run([{"log": "order 4111 1111 1111 1112 shipped"}], tmp_path)
    assert result["code"] == 0
