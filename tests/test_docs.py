"""The product is self-contained: nothing a user's clone holds points outside it, and every
document it names is in it."""

from __future__ import annotations

import re
import subprocess

from conftest import REPO

TEXT = (".md", ".py", ".smk", ".yaml", ".yml", ".txt", ".rst", ".cff", ".sh", "")


def tracked_text_files():
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in names.splitlines():
        path = REPO / name
        if path.suffix in TEXT and path.is_file() and path.stat().st_size < 500_000 and "data/" not in name:
            yield path


def test_no_tracked_file_refers_to_a_path_outside_the_repository():
    outside = []
    for path in tracked_text_files():
        text = path.read_text(errors="replace")
        crafted = path.parent.name == "tests"  # the tests spell hostile paths on purpose
        for match in [] if crafted else re.finditer(r"(?<![\w.])((?:\.\./)+)[\w{}.\-]+", text):
            target = (path.parent / match.group(1)).resolve()
            if REPO.resolve() not in (target, *target.parents):
                outside.append(f"{path.relative_to(REPO)}: {match.group(0)}")
        if re.search(r"\bshared/(?:DESIGN|PAPER|STACK|STYLE|DATASETS|data)\b", text):
            outside.append(f"{path.relative_to(REPO)}: names the developers' shared folder")
    assert outside == []


def test_every_document_a_file_names_is_in_the_repository():
    docs = {p.name for p in REPO.rglob("*.md") if ".venv" not in p.parts and "results" not in p.parts}
    missing = []
    for path in (p for p in tracked_text_files() if p.parent.name != "tests"):  # tests make files of their own
        for name in set(re.findall(r"\b([\w.-]+\.md)\b", path.read_text(errors="replace"))):
            if name not in docs:
                missing.append(f"{path.relative_to(REPO)}: {name}")
    assert missing == []


def schema_sections() -> dict[str, dict]:
    """config/README.md's section titles -> the schema's properties they document."""
    import yaml

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    defs, props = schema["$defs"], schema["properties"]

    def resolve(node):
        return defs[node["$ref"].split("/")[-1]] if "$ref" in node else node

    dataset = props["datasets"]["additionalProperties"]["properties"]
    metrics = props["metrics"]["properties"]
    return {
        "Top level": props,
        "demo": props["demo"]["properties"],
        "models.<name>": props["models"]["additionalProperties"]["properties"],
        "models.<name>.finetune": defs["finetune"]["properties"],
        "strategies.<name>": props["strategies"]["additionalProperties"]["properties"],
        "datasets.<name>": dataset,
        "datasets.<name>.generate.<strategy>": dataset["generate"]["additionalProperties"]["properties"],
        "datasets.<name>.beton": resolve(dataset["beton"])["properties"],
        "datasets.<name>.recipe": resolve(dataset["recipe"])["properties"],
        "datasets.<name>.reference": resolve(dataset["reference"])["properties"],
        "test_sets.<name>": props["test_sets"]["additionalProperties"]["properties"],
        "evaluation": props["evaluation"]["properties"],
        "metrics.inception": metrics["inception"]["properties"],
        "metrics.clip": metrics["clip"]["properties"],
        "metrics.classify": metrics["classify"]["properties"],
        "reports.<name>": props["reports"]["additionalProperties"]["properties"],
        "exports": props["exports"]["items"]["properties"],
    }


def _default(value) -> str:
    import json

    if value is None or isinstance(value, (bool, dict)):
        return json.dumps(value)  # null, true, false, {}
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def test_config_readme_documents_every_key_of_the_schema_with_its_default():
    import html

    text = html.unescape((REPO / "config/README.md").read_text())
    documented: dict[str, dict[str, str]] = {}
    section = None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        row = re.match(r"^\| `([\w]+)` \| (.+?) \|", line)
        if row and section:
            documented.setdefault(section, {})[row[1]] = row[2].strip("`")
    sections = schema_sections()
    assert set(documented) == set(sections)
    for name, properties in sections.items():
        assert set(documented[name]) == set(properties), name
        for key, spec in properties.items():
            expected = str(_default(spec["default"])) if "default" in spec else "—"
            if isinstance(spec.get("default"), dict) and spec["default"]:
                expected = "(below)"  # a section's defaults, in its own table
            assert documented[name][key] == expected, (name, key, documented[name][key], expected)


def test_one_version_everywhere():
    import tomllib

    from genrobust import __version__

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    citation = re.search(r"^version: (\S+)$", (REPO / "CITATION.cff").read_text(), re.M)[1]
    changelog = re.search(r"^## (\S+)$", (REPO / "CHANGELOG.md").read_text(), re.M)[1]
    assert __version__ == project == citation == changelog
