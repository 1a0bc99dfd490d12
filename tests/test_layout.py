"""The library's layering: no import cycle among ``rag`` modules.

First among module-level imports (an import inside a function, or under ``if TYPE_CHECKING``, is
how a module reaches a later stage without depending on it at import time): a cycle there makes
the import order matter. Then among all imports, those inside functions too: a cycle hidden in a
function still makes the stages impossible to read one at a time, so only the few run-time
edges listed in RUN_TIME_EDGES may close one.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

RAG = REPO / "rag"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The ``rag`` modules ``path`` imports when it is imported itself."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    statements = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        if isinstance(node, ast.Try):
            statements.extend(node.body)
        else:
            statements.append(node)
    for node in statements:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m in modules and m != name}


def _all_imports(path: Path, modules: set[str]) -> set[str]:
    """The ``rag`` modules ``path`` imports anywhere, inside functions too (not for type checking).

    ``from package import name`` counts as an import of ``package.name`` alone when that is a
    module: it runs the package's ``__init__`` at import time only, which the module-level graph
    covers, not the functions in it (``rag.answering``'s lazy ``__getattr__``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for_type_checking = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test)
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in for_type_checking:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            submodules = {f"{module}.{alias.name}" for alias in node.names} & modules
            found.update(submodules or {module})
    return {m for m in found if m in modules and m != name}


def import_graph(inside_functions: bool = False) -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in RAG.rglob("*.py")}
    find = _all_imports if inside_functions else _imports
    return {name: find(path, set(paths)) for name, path in paths.items()}


# Imports inside functions that close a cycle, and why each is allowed to.
RUN_TIME_EDGES = {
    # The leak check (service_instructions) compares an answer with the service's own prompts
    # and reader rules, which are built from this module's patterns: it reads them at run time.
    ("rag.answering.injection", "rag.prompting"),
    ("rag.answering.injection", "rag.answering.reader"),
}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_rag_modules_import_without_a_cycle():
    graph = import_graph()
    assert len(graph) > 40 and "rag.reasoning.stage" in graph  # the walk found the library
    assert cycles(graph) == [], "\n".join(" -> ".join(c) for c in cycles(graph))


def test_rag_modules_import_without_a_cycle_inside_functions_too():
    graph = import_graph(inside_functions=True)
    assert "rag.answering.pipeline" in graph["rag.answering"]  # the walk looked inside functions
    for source, target in RUN_TIME_EDGES:
        assert target in graph[source], f"{source} no longer imports {target}: drop it from RUN_TIME_EDGES"
        graph[source].discard(target)
    assert cycles(graph) == [], "\n".join(" -> ".join(c) for c in cycles(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_the_reasoning_stage_reaches_the_pipeline_only_at_run_time():
    # The stage drives the pipeline, and the pipeline builds the stage per question: the stage
    # may name the pipeline only for type checking, or the two would import each other.
    graph = import_graph()
    assert "rag.answering.pipeline" not in graph["rag.reasoning.stage"]
    assert "rag.reasoning.stage" not in graph["rag.answering.pipeline"]


def test_no_test_module_imports_another():
    # Shared fixtures live in conftest.py and shared helpers in modules that hold no tests
    # (live_server.py, generators.py, ingest_cli.py, docfactory.py, stores/contract.py): a test
    # module imported by another would run its module-level setup twice and tie the two together.
    offenders = []
    for path in (REPO / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                # "from tests.retrieval import test_index" names the module in its alias
                else [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.relative_to(REPO)} imports {n}"
                for n in names
                if n.rpartition(".")[2].startswith("test_") and n.startswith("tests")
            ]
    assert offenders == []


def test_every_folder_of_tests_is_a_package():
    # tests/ mirrors rag/ in folders; each is a package, so pytest imports a test module by its
    # dotted name (tests.retrieval.test_index) and two folders may hold files of the same name.
    folders = {path.parent for path in (REPO / "tests").rglob("test_*.py")}
    assert len(folders) > 10  # the walk found the folders
    assert sorted(str(f.relative_to(REPO)) for f in folders if not (f / "__init__.py").is_file()) == []


# What a newcomer can read in one sitting: modules and functions of the library, its front doors
# and its tests stay under these sizes (benchmark drivers are exempt: they are linear scripts).
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
READ_BY_PEOPLE = ("rag", "api", "eval", "ingest", "tests")


def _python_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in sorted((REPO / folder).rglob("*.py"))]


def test_no_module_or_function_is_too_long_to_read():
    too_long = []
    for path in _python_files(*READ_BY_PEOPLE):
        source = path.read_text(encoding="utf-8")
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(REPO)}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length} lines")
    assert len(_python_files(*READ_BY_PEOPLE)) > 100  # the walk found the code
    assert too_long == []


def _undocumented(body: list[ast.stmt], path: Path, prefix: str = "") -> list[str]:
    """Public functions and classes in ``body`` (and public methods of public classes) without a docstring."""
    missing = []
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            if not ast.get_docstring(node):
                missing.append(f"{path.relative_to(REPO)}:{node.lineno} {prefix}{node.name}")
            if isinstance(node, ast.ClassDef):
                missing += _undocumented(node.body, path, f"{node.name}.")
    return missing


def test_every_public_function_and_class_of_the_library_has_a_docstring():
    missing = [
        name
        for path in _python_files("rag")
        for name in _undocumented(ast.parse(path.read_text(encoding="utf-8")).body, path)
    ]
    assert missing == []


def test_the_import_paths_users_rely_on_still_work():
    # Modules became packages (rag.ingestion, rag.parsing, rag.text, rag.generation.onnx_lm);
    # the names users import from the old paths are still there, and are the same objects.
    from rag.answering import AnswerPipeline
    from rag.answering.pipeline import AnswerPipeline as pipeline_class
    from rag.config import Settings
    from rag.embedding import pick_device
    from rag.generation.onnx_lm import OnnxGenerator
    from rag.index import Index
    from rag.ingestion import ingest_folder, run_ingest
    from rag.ingestion.run import ingest_folder as ingest_function
    from rag.ingestion_ray import ingest_folder_ray
    from rag.lexical import query_terms
    from rag.parsing import parse_file
    from rag.retrieval import query_terms as retrieval_query_terms
    from rag.text import detect_language, split_sentences

    assert AnswerPipeline is pipeline_class and ingest_folder is ingest_function
    assert query_terms is retrieval_query_terms
    assert all(callable(f) for f in (pick_device, run_ingest, ingest_folder_ray, parse_file, detect_language))
    assert split_sentences("第一句。第二句。") == ["第一句。", "第二句。"]
    assert Settings().generator in ("local", "transformers") and Index and OnnxGenerator
