"""Fail on any import cycle inside a package: python scripts/import_cycles.py [--path DIR] [PACKAGE ...]

The import graph comes from grimp (the library import-linter is built on). Every import counts:
module level, inside functions and under ``if TYPE_CHECKING:``. Each elementary cycle is printed as
a chain of modules, each step with the line that makes it; the exit status is 1 when there is any.
The packages are read from their source, never imported. Defaults: ``--path src`` and ``xmodal``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

MAX_CYCLES = 200  # per group of mutually importing modules; a larger group says how many it skipped


def import_graph(packages: Sequence[str]) -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """Direct imports between the packages' modules, and where each import is written."""
    try:
        import grimp
    except ImportError:
        sys.exit("grimp is not installed: pip install -e '.[test]'")
    graph = grimp.build_graph(*packages, cache_dir=None)
    edges = {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    where: dict[tuple[str, str], str] = {}
    for importer, imported_set in edges.items():
        for imported in imported_set:
            details = graph.get_import_details(importer=importer, imported=imported)
            where[importer, imported] = "; ".join(
                f"line {d['line_number']}: {d['line_contents']}"
                for d in sorted(details, key=lambda d: d["line_number"])
            )
    return edges, where


def strongly_connected(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the groups of modules that reach each other, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    groups.append(sorted(group))
    return sorted(groups)


def elementary_cycles(group: Sequence[str], edges: Mapping[str, set[str]], limit: int) -> Iterator[list[str]]:
    """Each simple cycle within one group once, starting at its smallest module (bounded DFS, at most ``limit``)."""
    members = set(group)
    found = 0
    for start in group:  # a cycle is found from its smallest member only
        allowed = {m for m in members if m >= start}
        path = [start]
        todo = [iter(sorted(edges[start] & allowed))]
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                todo.pop()
                path.pop()
            elif nxt == start:
                yield [*path, start]
                found += 1
                if found >= limit:
                    return
            elif nxt not in path:
                path.append(nxt)
                todo.append(iter(sorted(edges[nxt] & allowed)))


def report(packages: Sequence[str]) -> int:
    """Print every import cycle in the packages; the number of cycles found."""
    edges, where = import_graph(packages)
    cycles = 0
    groups = [g for g in strongly_connected(edges) if len(g) > 1 or g[0] in edges[g[0]]]
    for group in groups:
        shown = 0
        for cycle in elementary_cycles(group, edges, MAX_CYCLES):
            shown += 1
            print(f"import cycle: {' -> '.join(cycle)}")
            for importer, imported in zip(cycle, cycle[1:], strict=False):
                print(f"    {importer} -> {imported}  ({where[importer, imported]})")
        if shown >= MAX_CYCLES:
            print(f"  (stopped after {MAX_CYCLES} cycles among {', '.join(group)})")
        cycles += shown
    names = ", ".join(packages)
    if cycles:
        modules = sum(len(g) for g in groups)
        print(
            f"FAILED: {cycles} import cycle(s) among {modules} modules of {names} "
            "(imports inside functions and under TYPE_CHECKING count too); break each one, e.g. by "
            "moving what both sides need into a lower module or by depending on a protocol"
        )
    else:
        print(f"no import cycles in {names}")
    return cycles


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry: exit status 1 when any cycle is found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("packages", nargs="*", default=["xmodal"], help="top-level packages (default: xmodal)")
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--path", default=str(root / "src"), help="folder holding the packages (default: src)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(args.path).resolve()))
    return 1 if report(args.packages) else 0


if __name__ == "__main__":
    sys.exit(main())
