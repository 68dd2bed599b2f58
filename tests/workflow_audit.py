"""Static audit of what each pipeline stage uses: its code, its parameter keys, its files.

tests/test_workflow.py checks every dvc.yaml stage against it, so `dvc status` names
exactly the stages an edit invalidates. `python tests/workflow_audit.py [stage ...]` prints
what each stage should declare.

- Code: the stage module and every dkp module it imports, transitively (CORE excluded).
- Parameters: from the stage's `run` function, every function, class and constant it can
  reach (calls resolved through imports), the subscript chains on an argument named `p` or
  `params` (`p["sweep"]["s1"]`), through local aliases (`s = p["sweep"]`), loops over literal
  key tuples and `.get("key")`. A chain used whole (passed on) reads its whole subtree; a
  computed key is reported as dynamic so it cannot slip by; a read that only feeds an
  `if ...: raise` check shapes no output and is not counted.
- Files: the data/, models/ and results/ paths its reachable code names.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dkp.cli import PIPELINE

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
ROOT_NAMES = {"p", "params"}
PROJECT_PATH = re.compile(r"^(data|models|results)(/[^\s,:;]*)?$")
# Run by the CLI before every stage, helpers every module uses, or process plumbing (dkp.workers:
# which worker runs a task, and that workers stop with their stage): they shape no stage's output.
CORE = {"dkp", "dkp.cli", "dkp.params", "dkp.errors", "dkp.atomic", "dkp.workers"}
# Keys a stage reads that cannot change its output, with the reason (not listed in dvc.yaml).
NOT_TRACKED = {
    "frames.workers": (
        "number of decoding processes; each video is decoded by one process either way"
    ),
}
PIPELINE_STAGES = list(PIPELINE)


def module_path(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def _resolve_from(module: str, is_pkg: bool, level: int, target: str | None) -> str:
    parts = module.split(".")
    if not is_pkg:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts + ([target] if target else []))


def imports(name: str) -> set[str]:
    """dkp modules that module `name` imports anywhere (top level or inside functions)."""
    path = module_path(name)
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dkp"}
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_from(name, is_pkg, node.level, node.module)
                if node.level
                else node.module or ""
            )
            if base.split(".")[0] != "dkp":
                continue
            found.add(base)
            for alias in node.names:  # `from . import framestore` names a module
                if module_path(f"{base}.{alias.name}"):
                    found.add(f"{base}.{alias.name}")
    # importing dkp.a.b runs dkp.a/__init__ too
    closed = set(found)
    for mod in found:
        parts = mod.split(".")
        closed |= {".".join(parts[:i]) for i in range(1, len(parts))}
    return closed


def closure(name: str) -> set[str]:
    """`name` and every dkp module it imports, transitively, minus the CORE modules."""
    seen, todo = set(), [name]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        if module_path(mod) is None:
            raise FileNotFoundError(f"module {mod} not found under {SRC}")
        seen.add(mod)
        todo += sorted(imports(mod) - seen)
    return seen - CORE


@dataclass
class ModuleInfo:
    """Per top-level definition (function or class) of one module: what it reads and names."""

    reads: dict[str, set[str]] = field(default_factory=dict)  # owner -> dotted keys
    refs: dict[str, set[tuple]] = field(default_factory=dict)  # owner -> (name,) or (name, attr)
    dynamic: dict[str, set[str]] = field(default_factory=dict)  # owner -> "module:line prefix[?]"
    # imported name -> ("mod", m) | ("attr", m, a)
    names: dict[str, tuple] = field(default_factory=dict)
    paths: dict[str, set[str]] = field(default_factory=dict)  # owner -> project paths it names
    consts: dict[str, str] = field(default_factory=dict)  # module constant -> project path


class _ModuleScan(ast.NodeVisitor):
    """Paths are sets of key tuples: `for net in ("teacher", "student"): p[net]` reads two."""

    def __init__(self, module: str, is_pkg: bool):
        self.module, self.is_pkg = module, is_pkg
        self.info = ModuleInfo()
        self.owner = "<module>"
        # per scope: (root names, aliases name -> paths, loop names -> constant string values)
        self.scopes: list[tuple[set[str], dict[str, set], dict[str, tuple[str, ...]]]] = [
            (set(), {}, {})
        ]

    def _own(self, kind: str) -> set:
        return getattr(self.info, kind).setdefault(self.owner, set())

    # -- imports: one name map per module (lazy imports inside functions included)
    def visit_Import(self, node):
        for a in node.names:
            if a.name.split(".")[0] == "dkp":
                self.info.names[a.asname or a.name.split(".")[0]] = (
                    "mod",
                    a.asname and a.name or "dkp",
                )

    def visit_ImportFrom(self, node):
        base = (
            _resolve_from(self.module, self.is_pkg, node.level, node.module)
            if node.level
            else node.module or ""
        )
        if base.split(".")[0] != "dkp":
            return
        for a in node.names:
            sub = f"{base}.{a.name}"
            self.info.names[a.asname or a.name] = (
                ("mod", sub) if module_path(sub) else ("attr", base, a.name)
            )

    # -- scopes: roots are arguments named p/params; aliases are local names bound to a chain
    def _enter_def(self, node, body):
        top = self.owner == "<module>"
        if top:
            self.owner = node.name
        roots, aliases, consts = self.scopes[-1]
        args = node.args if hasattr(node, "args") else None
        names = {a.arg for a in (args.posonlyargs + args.args + args.kwonlyargs)} if args else set()
        self.scopes.append(
            (
                (roots - names) | (names & ROOT_NAMES),
                {k: v for k, v in aliases.items() if k not in names},
                {k: v for k, v in consts.items() if k not in names},
            )
        )
        for stmt in body:
            self.visit(stmt)
        self.scopes.pop()
        if top:
            self.owner = "<module>"

    def visit_FunctionDef(self, node):
        for d in node.decorator_list + node.args.defaults + [k for k in node.args.kw_defaults if k]:
            self.visit(d)
        self._enter_def(node, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self._enter_def(node, node.bases + node.decorator_list + node.body)

    def visit_Lambda(self, node):
        self.scopes.append(self.scopes[-1])
        self._enter_def(
            ast.FunctionDef(name="<lambda>", args=node.args, body=[], decorator_list=[]),
            [ast.Expr(node.body)],
        )
        self.scopes.pop()

    def visit_For(self, node):
        it = node.iter
        if (
            isinstance(node.target, ast.Name)
            and isinstance(it, (ast.Tuple, ast.List))
            and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in it.elts)
        ):
            self.scopes[-1][2][node.target.id] = tuple(e.value for e in it.elts)
            for stmt in node.body + node.orelse:
                self.visit(stmt)
            self.scopes[-1][2].pop(node.target.id, None)
            return
        self.generic_visit(node)

    # A key read only to reject a bad value (`if ...: raise`) cannot shape an output.
    def visit_Raise(self, node):
        pass

    def visit_If(self, node):
        if not node.orelse and all(isinstance(b, ast.Raise) for b in node.body):
            return
        self.generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, str) and PROJECT_PATH.match(node.value):
            self._own("paths").add(node.value.rstrip("/"))

    def _const_path(self, node) -> str | None:
        """Evaluate Path("data") / "x" / NAME-style module constants to a path string."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.info.consts.get(node.id)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "Path"
            and len(node.args) == 1
        ):
            return self._const_path(node.args[0])
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            a, b = self._const_path(node.left), self._const_path(node.right)
            return f"{a}/{b}" if a is not None and b is not None else None
        return None

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self._own("refs").add((node.id,))

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name):
            self._own("refs").add((node.value.id, node.attr))
        self.generic_visit(node)

    def _keys(self, node) -> tuple[str, ...] | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return (node.value,)
        if isinstance(node, ast.Name) and node.id in self.scopes[-1][2]:
            return self.scopes[-1][2][node.id]
        return None

    def _path(self, node) -> set | None:
        """The parameter paths an expression denotes, or None if it is not a parameter chain."""
        roots, aliases, _ = self.scopes[-1]
        if isinstance(node, ast.Name):
            if node.id in aliases:
                return aliases[node.id]
            return {()} if node.id in roots else None
        if isinstance(node, ast.Subscript):
            base = self._path(node.value)
            if base is None:
                return None
            keys = self._keys(node.slice)
            if keys is not None:
                return {b + (k,) for b in base for k in keys}
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
                return base  # an item of a list parameter (`p["run"]["seeds"][0]`): reads the list

            for b in base:
                self._own("dynamic").add(f"{self.module}:{node.lineno} {'.'.join(b) or '<all>'}[?]")
            return None
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and self._keys(node.args[0]) is not None
        ):
            base = self._path(node.func.value)
            return (
                None if base is None else {b + (k,) for b in base for k in self._keys(node.args[0])}
            )
        return None

    def _bind(self, target, value) -> bool:
        """Record `target = value` aliases; True if value was a parameter chain."""
        if isinstance(target, ast.Name):
            paths = self._path(value)
            if paths and () not in paths:
                self.scopes[-1][1][target.id] = paths
                return True
            self.scopes[-1][1].pop(target.id, None)
            return False
        if (
            isinstance(target, ast.Tuple)
            and isinstance(value, ast.Tuple)
            and len(target.elts) == len(value.elts)
        ):
            hits = [self._bind(t, v) for t, v in zip(target.elts, value.elts)]
            for v, hit in zip(value.elts, hits):
                if not hit:
                    self.visit(v)
            return True
        return False

    def visit_Assign(self, node):
        if (
            self.owner == "<module>"
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            path = self._const_path(node.value)
            if path is not None and PROJECT_PATH.match(path):
                self.info.consts[node.targets[0].id] = path
                return  # names it is built from (`RESULTS / "x"`) are not used by defining it
        if len(node.targets) == 1 and self._bind(node.targets[0], node.value):
            return
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        if node.value is not None and self._bind(node.target, node.value):
            return
        self.generic_visit(node)

    def generic_visit(self, node):
        for child in ast.iter_child_nodes(node):
            paths = (
                self._path(child)
                if isinstance(child, (ast.Name, ast.Subscript, ast.Call))
                else None
            )
            if paths is not None:
                self._own("reads").update(".".join(p) for p in paths if p)
                if isinstance(child, ast.Call):  # .get(key, default): the default may read too
                    for arg in child.args[1:] + [k.value for k in child.keywords]:
                        self.visit(arg)
                continue
            self.visit(child)


_INFO: dict[str, ModuleInfo] = {}


def module_info(name: str) -> ModuleInfo:
    if name not in _INFO:
        path = module_path(name)
        visitor = _ModuleScan(name, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), str(path)))
        _INFO[name] = visitor.info
    return _INFO[name]


def _targets(module: str, ref: tuple) -> list[tuple[str, str]]:
    """(module, top-level name) pairs a reference inside `module` may reach."""
    info = module_info(module)
    head = ref[0]
    if head in info.names:
        kind = info.names[head]
        if kind[0] == "attr":
            return [(kind[1], kind[2])]
        if len(ref) == 2:
            return [(kind[1], ref[1])]
        return [(kind[1], "<module>")]
    return [(module, head)]


def reachable(module: str, entry: str = "run") -> tuple[set[str], set[str], set[str]]:
    """Parameter keys, dynamic reads and project paths of everything `module.entry` can reach."""
    keys, dynamic, paths, seen, todo = (
        set(),
        set(),
        set(),
        set(),
        [(module, entry), (module, "<module>")],
    )
    while todo:
        mod, name = todo.pop()
        if (mod, name) in seen or module_path(mod) is None or mod in CORE:
            continue
        seen.add((mod, name))
        info = module_info(mod)
        if name in info.consts:
            paths.add(info.consts[name])
        if name not in info.reads and name not in info.refs:
            if name in info.names:  # re-exported: `from .generate import run`
                todo += _targets(mod, (name,))
            elif name != "<module>" and module_path(f"{mod}.{name}"):  # pkg.submodule attribute
                todo.append((f"{mod}.{name}", "<module>"))
            continue
        keys |= info.reads.get(name, set())
        dynamic |= info.dynamic.get(name, set())
        if name != "<module>":  # a module's own constants count only where they are used
            paths |= info.paths.get(name, set())
        for ref in info.refs.get(name, ()):
            todo += _targets(mod, ref)
    return keys, dynamic, paths


def module_files(modules: set[str]) -> set[str]:
    """Repository-relative source files of the modules."""
    return {str(module_path(m).relative_to(REPO)) for m in modules}


@dataclass
class StageAudit:
    files: set[str]  # source files of the modules the stage imports
    keys: set[str]  # parameter keys it reads (minimal: no key under another)
    dynamic: set[str]  # reads with a computed key, "module:line prefix[?]"
    paths: set[str]  # project paths (data/, models/, results/) its code names


def stage_audit(stage: str) -> StageAudit:
    from dkp.cli import STAGES

    mods = closure(STAGES[stage][0])
    keys, dynamic, paths = reachable(STAGES[stage][0])
    keys = {k for k in keys if k not in NOT_TRACKED}
    return StageAudit(module_files(mods), minimal(keys), dynamic, paths)


def minimal(keys: set[str]) -> set[str]:
    """Drop keys already covered by a listed prefix (`sweep` covers `sweep.s1`)."""
    return {k for k in keys if not any(k.startswith(o + ".") for o in keys if o != k)}


def covered(key: str, listed: set[str]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in listed)


if __name__ == "__main__":
    sys.path.insert(0, str(SRC))
    for st in sys.argv[1:] or PIPELINE_STAGES:
        try:
            a = stage_audit(st)
        except FileNotFoundError as exc:
            print(f"{st}: {exc}")
            continue
        print(
            f"{st}:\n  code: {sorted(a.files)}\n  params: {sorted(a.keys)}\n  paths: "
            f"{sorted(a.paths)}" + (f"\n  DYNAMIC: {sorted(a.dynamic)}" if a.dynamic else "")
        )
