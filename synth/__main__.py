"""python -m synth --stack <stage|prod> [--out DIR] [--preview]   |   python -m synth check FILE [--stack S]
   |   python -m synth diff OLD.json NEW.json [--approved-by NAME]
   |   python -m synth targets --stack <stack> [--state failed-over]   (the --target list, docs/runbooks.md)

Exit codes: 0 clean, 1 a mandatory policy violation, 2 invalid stack configuration or input,
3 (--preview) a judgement that cannot decide during a first preview.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from synth import policy_runner

if TYPE_CHECKING:
    from synth.export import ReleasePrefetch

EXIT_OK, EXIT_VIOLATION, EXIT_INVALID, EXIT_UNDECIDED = 0, 1, 2, 3


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        return _check(argv[1:])
    if argv[:1] == ["diff"]:
        from synth import diff

        return diff.main(argv[1:])
    if argv[:1] == ["targets"]:
        from synth import targets

        return targets.main(argv[1:])
    return _synth(argv)


def _synth(argv: list[str]) -> int:
    from synth import engine

    parser = argparse.ArgumentParser(prog="python -m synth", description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--stack", required=True, help=f"one of: {', '.join(engine.known_stacks())}")
    parser.add_argument("--out", type=Path, help="output directory (default build/<stack>)")
    parser.add_argument("--stack-file", type=Path,
                        help="stack config to use instead of Pulumi.<stack>.yaml (try a change offline)")
    parser.add_argument("--preview", action="store_true",
                        help="run as a new stack's first `pulumi preview` (every computed output unknown) and "
                             "fail on any judgement that cannot decide (default out build/<stack>/preview)")
    parser.add_argument("--verbose", action="store_true", help="list every resource of a repeated advisory")
    args = parser.parse_args(argv)

    import yaml

    from synth import export as exporter

    try:
        config = engine.stack_config(args.stack, args.stack_file)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"synth: cannot read the stack file: {exc}", file=sys.stderr)
        return EXIT_INVALID
    # a preview's release values hold unknowns: nothing to render, so nothing to start early
    prefetch = None if args.preview else exporter.ReleasePrefetch()
    try:
        return _synthesized(args, config, prefetch)
    finally:
        if prefetch is not None:
            prefetch.close()


def _synthesized(args: argparse.Namespace, config: dict[str, str], prefetch: "ReleasePrefetch | None") -> int:
    """Synthesize, render, judge and write one stack (``_synth`` after its arguments)."""
    import settings
    from synth import engine, helm, stateful
    from synth import export as exporter

    monitor = engine.new_monitor(config, args.preview)
    if prefetch is not None:
        monitor.constructing.append(prefetch.constructed)
        monitor.listeners.append(prefetch)
    try:
        synthesis = engine.synthesize(args.stack, config, preview=args.preview, monitor=monitor)
    except settings.SettingsError as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return EXIT_INVALID
    stale = stateful.stale_retirements(settings.validate(config, args.stack).retire, synthesis)
    if stale:  # known only once the program ran: still a config error, caught before any deploy
        print("synth: " + str(settings.SettingsError(stale)), file=sys.stderr)
        return EXIT_INVALID
    out = args.out or Path("build") / args.stack / ("preview" if args.preview else "")
    document = exporter.to_export(synthesis)
    try:
        # judged as the engine sees the stack (secret values readable, never written to disk), plus
        # what its Helm releases render, rendered once from the written export: written and judged.
        # A preview's values hold unknowns: only the release-values rule judges them then.
        rendered = [] if args.preview else exporter.render_releases(document, prefetch)
        shown = exporter.with_rendered(exporter.to_export(synthesis, show_secrets=True), rendered)
        report = _judge(shown, args.stack, None)
    except helm.HelmError as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except ValueError as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.preview:  # a preview's objects hold unknowns: no manifests, only what the pack saw
        out.mkdir(parents=True, exist_ok=True)
        (out / "stack.json").write_text(json.dumps(document, indent=2) + "\n")
        _write_report(report, out)
        print(f"synth {args.stack} --preview: {len(synthesis.resources)} resources -> {out}/")
        code = _print_report(report, args.verbose)
        return code or (EXIT_UNDECIDED if report.undecided else EXIT_OK)
    manifests = exporter.write(synthesis, out, document, rendered)
    _write_report(report, out)

    print(f"synth {args.stack}: {len(synthesis.resources)} resources, "
          f"{len(manifests)} Kubernetes manifests -> {out}/")
    _print_components(synthesis)
    for warning in synthesis.warnings:
        print(f"\nWARNING: {warning}")
    _print_dr_budget(document)
    return _print_report(report, args.verbose)


def _check(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth check",
                                     description="Run the policy pack over a stack export.")
    parser.add_argument("file", type=Path, help="stack.json or the output of `pulumi stack export`")
    parser.add_argument("--stack", help="stack whose policy/config/<stack>.json applies")
    parser.add_argument("--policy-pack-config", type=Path, metavar="FILE",
                        help="the pack config file, as `pulumi preview --policy-pack-config` takes it")
    parser.add_argument("--verbose", action="store_true", help="list every resource of a repeated advisory")
    args = parser.parse_args(argv)
    try:
        document = _read_export(args.file)
        config = policy_runner.load_config(args.policy_pack_config) if args.policy_pack_config else None
        report = _judge(_with_rendered(document), args.stack, None, config)
    except (OSError, ValueError) as exc:
        print(f"synth check: {args.file}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"synth check {args.file}: {len(document['deployment']['resources'])} resources")
    _print_dr_budget(document)
    return _print_report(report, args.verbose)


def _read_export(path: Path) -> dict:
    """A `pulumi stack export` document, or a ValueError saying what is wrong with it."""
    document = json.loads(path.read_text())
    resources = document.get("deployment", {}).get("resources") if isinstance(document, dict) else None
    if not isinstance(resources, list):
        raise ValueError("no deployment.resources list; is this a `pulumi stack export` file?")
    for i, entry in enumerate(resources):
        if not isinstance(entry, dict) or not isinstance(entry.get("urn"), str) or not isinstance(entry.get("type"), str):
            raise ValueError(f"deployment.resources[{i}] has no urn and type; the export is damaged")
    return document


def _with_rendered(document: dict) -> dict:
    """An export plus what its Helm releases render from the values in it (an edited export is
    judged as edited); a chart that refuses the values, or no helm, is a ValueError (exit 2)."""
    from synth import export as exporter
    from synth import helm

    try:
        return exporter.with_rendered(document)
    except helm.HelmError as exc:
        raise ValueError(str(exc)) from exc


def _judge(document: dict, stack: str | None, out: Path | None, config: dict | None = None):
    report = policy_runner.evaluate(document, stack, config=config)
    if out is not None:
        _write_report(report, out)
    return report


def _write_report(report, out: Path) -> None:
    (out / "policy-report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")


def _print_components(synthesis) -> None:
    by_urn = {r.urn: r for r in synthesis.resources}
    root = synthesis.root.urn

    def top(resource):
        while resource.parent and resource.parent != root and resource.parent in by_urn:
            resource = by_urn[resource.parent]
        return resource

    counts = Counter()
    for r in synthesis.resources:
        if r.urn == root:
            continue
        owner = top(r)
        label = f"{owner.type.rsplit(':', 1)[-1]} {owner.name}" if not owner.custom else "providers & top level"
        counts[label] += 1
    print("\nResources per component:")
    for label, count in sorted(counts.items()):
        print(f"  {count:4d}  {label}")


def _print_dr_budget(document: dict) -> None:
    stack = next((r for r in document["deployment"]["resources"] if r["type"] == "pulumi:pulumi:Stack"), {})
    budget = (stack.get("outputs") or {}).get("drBudget")
    if not isinstance(budget, list):
        return
    print("\nDR budget (seconds):")
    print(f"  {'datastore':<14} {'objective':<9} {'target':>7} {'bound':>7}  verdict  terms")
    for row in budget:
        verdict = "met" if row["met"] else "MISSED"
        terms = " + ".join(f"{k} {v}" for k, v in row["terms"].items())
        print(f"  {row['datastore']:<14} {row['objective']:<9} {row['targetSeconds']:>7} "
              f"{row['boundSeconds']:>7}  {verdict:<7}  {terms}")
    for row in budget:
        if not row["met"]:
            print(f"  ! {row['datastore']} {row['objective']} target {row['targetSeconds']}s cannot be met: "
                  f"the deployed settings bound it at {row['boundSeconds']}s. Raise the target or "
                  "shorten the terms above (health-check interval/threshold, promotion, schedule).")


def _where(finding) -> str:
    return finding.urn.rsplit("::", 1)[-1] if finding.urn else "stack"


def _advisory_lines(advisory, verbose: bool) -> list[str]:
    """Advisories grouped by policy and by message with the resource's own words taken out (a
    container name, a quoted image): one line with a count, an example and the resources, or all
    of them with --verbose. Mandatory violations are always listed one by one."""
    if verbose:
        return [f"  [advisory] {policy} on {_where(f)}: {f.message}" for policy, f in advisory]
    groups: dict[tuple[str, str], list] = {}
    for policy, finding in advisory:
        shape = re.sub(r"'[^']*'", "'…'", re.sub(r"^container [^:]+: ", "container …: ", finding.message))
        groups.setdefault((policy, shape), []).append(finding)
    lines = []
    for (policy, _), found in groups.items():
        if len(found) == 1:
            lines.append(f"  [advisory] {policy} on {_where(found[0])}: {found[0].message}")
            continue
        names = sorted({_where(f) for f in found})
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"  [advisory] {policy} x{len(found)} ({shown}; --verbose lists each), e.g. on "
                     f"{_where(found[0])}: {found[0].message}")
    return lines


def _print_report(report, verbose: bool = False) -> int:
    mandatory, advisory = report.mandatory_violations, report.advisory_violations
    print(f"\nPolicy pack {report.pack}: {len(report.verdicts)} policies, "
          f"{len(mandatory)} mandatory and {len(advisory)} advisory violations")
    for policy, finding in mandatory:
        print(f"  [MANDATORY] {policy} on {_where(finding)}: {finding.message}")
    for line in _advisory_lines(advisory, verbose):
        print(line)
    if report.undecided:
        print(f"{len(report.undecided)} judgements cannot decide:")
        for policy, finding in report.undecided:
            print(f"  [cannot decide] {policy} on {_where(finding)}: {finding.message}")
    return EXIT_VIOLATION if mandatory else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
