"""src.azure_search: the Azure AI Search index definition, built and checked with the real SDK, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.search.documents._utils.model_base import SdkJSONEncoder  # what the client PUTs
from azure.search.documents.indexes.models import HnswAlgorithmConfiguration, LexicalAnalyzerName, SearchIndex

from src import azure_search
from src.azure_search import CHUNK_FIELDS, SchemaError, index_schema, main, validate_schema

INDEX_JSON = {
    "format": 1,
    "chunk_tokens": 128,
    "overlap_tokens": 16,
    "tables": {"model": {"table": "chunks", "name": "outputs/pipeline/model", "fingerprint": "0f3a", "dim": 384,
                         "backend": "torch", "sparse": False, "version": 7}},
    "files": {},
}  # fmt: skip


def index_dir(tmp_path: Path, content: str | dict | None = INDEX_JSON) -> Path:
    """An index folder with ``content`` as its index.json (a dict as JSON, a string as is, None: none)."""
    folder = tmp_path / "index"
    folder.mkdir()
    if content is not None:
        text = json.dumps(content) if isinstance(content, dict) else content
        (folder / "index.json").write_text(text, encoding="utf-8")
    return folder


def test_the_schema_fields_are_columns_of_the_index_table():
    from src.index import schema

    assert set(CHUNK_FIELDS) <= set(schema(384, sparse=False).names)


def test_schema_has_the_chunk_fields_the_analyzer_and_the_vector_width():
    schema = index_schema("my-docs", 384)
    fields = {f["name"]: f for f in schema["fields"]}
    assert schema["name"] == "my-docs" and tuple(fields) == CHUNK_FIELDS
    assert [n for n, f in fields.items() if f.get("key")] == ["chunk_id"]
    assert fields["chunk_id"]["type"] == "Edm.String"
    for name in ("file", "folder", "page"):
        assert fields[name]["filterable"] and fields[name]["facetable"], name
    assert fields["page"]["type"] == fields["start"]["type"] == fields["end"]["type"] == "Edm.Int32"
    for name in ("heading", "text"):
        assert fields[name]["searchable"] and fields[name]["analyzer"] == "ko.microsoft", name
    vector = fields["vector"]
    assert vector["type"] == "Collection(Edm.Single)" and vector["dimensions"] == 384
    profiles = {p["name"]: p for p in schema["vectorSearch"]["profiles"]}
    algorithms = {a["name"]: a for a in schema["vectorSearch"]["algorithms"]}
    algorithm = algorithms[profiles[vector["vectorSearchProfile"]]["algorithm"]]
    assert algorithm["kind"] == "hnsw" and algorithm["hnswParameters"]["metric"] == "cosine"
    assert "semantic" not in schema
    assert index_schema("my-docs", 1024, "ko.lucene")["fields"][5]["analyzer"] == "ko.lucene"


def test_schema_is_the_sdk_json_and_survives_a_round_trip():
    schema = index_schema("my-docs", 384, semantic=True)
    index = SearchIndex(schema)
    assert index == SearchIndex(json.loads(json.dumps(schema)))
    assert index.as_dict(exclude_readonly=True) == schema
    # the same body SearchIndexClient.create_or_update_index serializes and sends
    assert json.loads(json.dumps(index, cls=SdkJSONEncoder, exclude_readonly=True)) == schema
    # the algorithm's "kind" discriminator reads back as the HNSW class
    assert isinstance(index.vector_search.algorithms[0], HnswAlgorithmConfiguration)
    assert index.fields[-1].vector_search_dimensions == 384
    config = index.semantic_search.configurations[0]
    assert index.semantic_search.default_configuration_name == config.name
    assert config.prioritized_fields.title_field.field_name == "heading"
    assert [f.field_name for f in config.prioritized_fields.content_fields] == ["text"]


def test_validation_refuses_a_schema_that_does_not_match():
    schema = index_schema("my-docs", 384)
    with pytest.raises(SchemaError, match="width 768"):
        validate_schema(schema, 768, "ko.microsoft")
    with pytest.raises(SchemaError, match="analyzer ko.lucene"):
        validate_schema(schema, 384, "ko.lucene")
    cosine = json.loads(json.dumps(schema).replace('"cosine"', '"dotProduct"'))
    with pytest.raises(SchemaError, match="cosine"):
        validate_schema(cosine, 384, "ko.microsoft")


@pytest.mark.parametrize("analyzer, message", [
    ("en.lucene", "a LexicalAnalyzerName but not a Korean one"),
    ("ko.nori", "not a known LexicalAnalyzerName"),
    ("", "not a known LexicalAnalyzerName"),
])  # fmt: skip
def test_a_bad_analyzer_is_refused(analyzer, message):
    assert {"ko.microsoft", "ko.lucene"} <= {a.value for a in LexicalAnalyzerName}
    with pytest.raises(SchemaError, match=message):
        index_schema("my-docs", 384, analyzer)


@pytest.mark.parametrize("dim", [0, 1, -3, 384.0, True, "384"])
def test_a_bad_width_is_refused(dim):
    with pytest.raises(SchemaError, match="whole number >= 2"):
        index_schema("my-docs", dim)


@pytest.mark.parametrize("name, message", [
    ("a", "is 1 characters long"),
    ("x" * 129, "is 129 characters long"),
    ("My-Docs", "'MD', not allowed"),
    ("my_docs", "'_', not allowed"),
    ("문서", "not allowed"),
    ("my docs", "' ', not allowed"),
    ("-docs", "starts or ends with a dash"),
    ("docs-", "starts or ends with a dash"),
    ("my--docs", "two dashes in a row"),
])  # fmt: skip
def test_a_bad_index_name_is_refused(name, message):
    with pytest.raises(SchemaError, match=message):
        index_schema(name, 384)


@pytest.mark.parametrize("name", ["ab", "my-docs", "docs-2024-v2", "0docs9", "x" * 128])
def test_good_index_names_pass(name):
    assert index_schema(name, 384)["name"] == name


def test_cli_writes_the_schema_of_an_index_folder(tmp_path, capsys):
    out = tmp_path / "azure" / "schema.json"
    argv = ["--index", str(index_dir(tmp_path)), "--name", "my-docs", "--output", str(out)]
    assert main([*argv, "--analyzer", "ko.lucene", "--semantic"]) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written == index_schema("my-docs", 384, "ko.lucene", semantic=True)
    assert f"api-version={azure_search.API_VERSION}" in capsys.readouterr().out
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert main([*argv[:-2], "--output-dir", str(out)]) == 0  # the shared spelling of the output flag
    assert json.loads(out.read_text(encoding="utf-8")) == index_schema("my-docs", 384)


@pytest.mark.parametrize("content, message", [
    (None, "index.json: file not found"),
    ("{broken", "index.json: not an index record (JSONDecodeError"),
    ("[1, 2]", "index.json: not an index record"),
    (json.dumps({**INDEX_JSON, "format": 2}), "index.json: index format 2, this toolkit reads 1"),
    (json.dumps({**INDEX_JSON, "tables": {}}), "index.json: no table 'model'"),
    (json.dumps({**INDEX_JSON, "tables": {"model": {"dim": "384"}}}), "index.json: tables.model.dim must be"),
])  # fmt: skip
def test_cli_refuses_a_missing_or_malformed_index_json_in_one_line(tmp_path, capsys, content, message):
    folder = index_dir(tmp_path, content)
    out = tmp_path / "schema.json"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["--index", str(folder), "--name", "my-docs", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(folder / "index.json") in err and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


@pytest.mark.parametrize("flags, message", [
    (["--name", "My_Docs"], "index name 'My_Docs'"),
    (["--name", "my-docs", "--analyzer", "en.lucene"], "argument --analyzer: invalid choice: 'en.lucene'"),
])  # fmt: skip
def test_cli_refuses_a_bad_name_or_analyzer_in_one_line(tmp_path, capsys, flags, message):
    folder, out = index_dir(tmp_path), tmp_path / "schema.json"
    assert main(["--index", str(folder), "--output", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_cli_refuses_a_folder_as_output(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    argv = ["--index", str(index_dir(tmp_path)), "--name", "my-docs", "--output", str(tmp_path / "taken")]
    assert main(argv) == 2
    assert "taken: is a folder" in capsys.readouterr().err
