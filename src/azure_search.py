"""Azure AI Search index definition for the chunks of a document index (src.index), made and checked offline.

    uv run python -m src.azure_search --index outputs/doc_index --name my-docs --output schema.json
    uv run python -m src.azure_search --index outputs/doc_index --name my-docs --output schema.json --analyzer ko.lucene --semantic

Reads ``DIR/index.json`` (the vector width of its ``model`` table), builds the index with the Azure SDK's
own models (azure-search-documents: SearchIndex, SearchField, VectorSearch, ...) and writes the REST JSON
body that ``SearchIndexClient.create_or_update_index`` sends: one field per chunk column (key ``chunk_id``;
``file``, ``folder``, ``page`` filterable and facetable; ``heading`` and ``text`` searchable with a Korean
analyzer; ``start``, ``end``, ``file_sha``) and ``vector`` (Collection(Edm.Single), the model's width,
an HNSW profile with the cosine metric, as the vectors are unit-normalized). ``--semantic`` adds a
semantic ranker configuration (title ``heading``, content ``text``; the service's semantic ranker must be
on). Before writing, the JSON is read back into a SearchIndex and checked (key, analyzer, width, metric),
and the index name against the service's naming rules.

The boundary: our code stops at this file and makes no network call. Creating the index and uploading the
chunks are the user's steps, online, with their service and credentials, for example (the api-version is
the installed SDK's; the command prints it):

    az search admin-key show --service-name SERVICE --resource-group GROUP     # the admin key
    curl -X PUT "https://SERVICE.search.windows.net/indexes/my-docs?api-version=2026-04-01" \\
         -H "Content-Type: application/json" -H "api-key: $KEY" --data @schema.json

(or ``SearchIndexClient(endpoint, credential).create_or_update_index(SearchIndex(json.load(f)))``); then
the chunk rows with the schema's fields (leave out the columns only the local table keeps, such as
``tokens`` or the sparse weights: the service refuses unknown fields), in batches of up to 1000 documents:
``POST /indexes/my-docs/docs/index?api-version=...`` with the body
``{"value": [{"@search.action": "mergeOrUpload", ...row}]}`` (``SearchClient.merge_or_upload_documents``).
Queries must be embedded by the same model (the table's ``name`` and ``fingerprint`` in index.json) with
its query prompt.
"""

from __future__ import annotations

import json
import string
import sys
from pathlib import Path
from typing import Any

from azure.search.documents import DEFAULT_VERSION
from azure.search.documents.indexes.models import (
    HnswAlgorithmConfiguration,
    HnswParameters,
    LexicalAnalyzerName,
    SearchableField,
    SearchField,
    SearchFieldDataType,
    SearchIndex,
    SemanticConfiguration,
    SemanticField,
    SemanticPrioritizedFields,
    SemanticSearch,
    SimpleField,
    VectorSearch,
    VectorSearchAlgorithmMetric,
    VectorSearchProfile,
)

from src import cli
from src.cli import UserError
from src.data import DataError, atomic_path
from src.index import META, read_meta

API_VERSION = str(DEFAULT_VERSION.value)  # the installed SDK's REST api-version (a stable one)
MODEL_TABLE = "model"  # the table in index.json whose width the vector field takes
# The SDK's Korean analyzers: ko.microsoft (the default) and ko.lucene.
KOREAN_ANALYZERS = tuple(a.value for a in LexicalAnalyzerName if a.value.startswith("ko."))
# The chunk row's columns, in the order of the index's fields (src.index's contract).
CHUNK_FIELDS = ("chunk_id", "file", "folder", "page", "heading", "text", "start", "end", "file_sha", "vector")
HNSW_NAME, PROFILE_NAME, SEMANTIC_NAME = "chunks-hnsw", "chunks-vector-profile", "chunks-semantic"
MIN_DIMENSIONS = 2  # the service's minimum vector width; it checks its maximum when the index is created
_NAME_CHARS = string.ascii_lowercase + string.digits + "-"  # what an index name may hold


class SchemaError(UserError, ValueError):
    """An index definition the service would refuse (name, analyzer, width) or one that does not read back."""


def check_index_name(name: str) -> str:
    """``name`` if Azure AI Search accepts it as an index name: 2-128 lowercase letters, digits and dashes,
    starting and ending with a letter or digit, no two dashes in a row. The service's current rules also take
    underscores; this stricter form is valid under its older rules as well."""
    other = dict.fromkeys(c for c in name if c not in _NAME_CHARS)  # in the order they appear
    problem = (
        f"is {len(name)} characters long" if not 2 <= len(name) <= 128 else
        f"has {''.join(other)!r}, not allowed" if other else
        "starts or ends with a dash" if name.startswith("-") or name.endswith("-") else
        "has two dashes in a row" if "--" in name else None
    )  # fmt: skip
    if problem:
        raise SchemaError(f"index name {name!r} {problem}: use 2-128 lowercase letters, digits and single dashes, "
                          "starting and ending with a letter or digit")  # fmt: skip
    return name


def check_analyzer(analyzer: str) -> str:
    """``analyzer`` if it is one of the SDK's Korean LexicalAnalyzerName values."""
    if analyzer not in KOREAN_ANALYZERS:
        known = analyzer in {a.value for a in LexicalAnalyzerName}
        what = "a LexicalAnalyzerName but not a Korean one" if known else "not a known LexicalAnalyzerName"
        raise SchemaError(f"analyzer {analyzer!r} is {what}: use {' or '.join(KOREAN_ANALYZERS)}")
    return analyzer


def check_dimensions(dim: Any) -> int:
    """``dim`` if it is a whole number the service takes as a vector width."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < MIN_DIMENSIONS:
        raise SchemaError(f"vector width must be a whole number >= {MIN_DIMENSIONS}, got {dim!r}")
    return dim


def build_index(name: str, dim: int, analyzer: str = "ko.microsoft", semantic: bool = False) -> SearchIndex:
    """The SDK's SearchIndex for our chunks: the fields of CHUNK_FIELDS, the vector field ``dim`` wide."""
    check_index_name(name)
    check_analyzer(analyzer)
    check_dimensions(dim)
    text, int32 = SearchFieldDataType.STRING, SearchFieldDataType.INT32
    fields = [
        # the key: "<file-sha-prefix>-<n>" holds only characters a document key may hold
        SimpleField(name="chunk_id", type=text, key=True, filterable=True),
        SimpleField(name="file", type=text, filterable=True, facetable=True),
        SimpleField(name="folder", type=text, filterable=True, facetable=True),
        SimpleField(name="page", type=int32, filterable=True, facetable=True),
        SearchableField(name="heading", analyzer_name=analyzer),
        SearchableField(name="text", analyzer_name=analyzer),
        SimpleField(name="start", type=int32),  # character offsets in the document's extracted text
        SimpleField(name="end", type=int32),
        SimpleField(name="file_sha", type=text, filterable=True),  # find (and delete) a changed file's chunks
        SearchField(
            name="vector",
            type=SearchFieldDataType.Collection(SearchFieldDataType.SINGLE),
            searchable=True,
            retrievable=False,  # searched, not sent back with each result
            vector_search_dimensions=dim,
            vector_search_profile_name=PROFILE_NAME,
        ),
    ]
    vector_search = VectorSearch(
        algorithms=[
            HnswAlgorithmConfiguration(
                name=HNSW_NAME, parameters=HnswParameters(metric=VectorSearchAlgorithmMetric.COSINE)
            )
        ],
        profiles=[VectorSearchProfile(name=PROFILE_NAME, algorithm_configuration_name=HNSW_NAME)],
    )
    semantic_search = None
    if semantic:
        prioritized = SemanticPrioritizedFields(
            title_field=SemanticField(field_name="heading"), content_fields=[SemanticField(field_name="text")]
        )
        semantic_search = SemanticSearch(
            default_configuration_name=SEMANTIC_NAME,
            configurations=[SemanticConfiguration(name=SEMANTIC_NAME, prioritized_fields=prioritized)],
        )
    return SearchIndex(name=name, fields=fields, vector_search=vector_search, semantic_search=semantic_search)


def to_rest(index: SearchIndex) -> dict:
    """The REST JSON body of ``index``: the SDK's serializer, without read-only properties, as
    ``SearchIndexClient.create_or_update_index`` sends it."""
    return index.as_dict(exclude_readonly=True)


def validate_schema(schema: dict, dim: int, analyzer: str) -> SearchIndex:
    """Read ``schema`` back into the SDK's SearchIndex and check it: it serializes to the same JSON, has the
    one key ``chunk_id`` and the chunk fields, its searchable text fields use ``analyzer`` (a Korean
    LexicalAnalyzerName), and ``vector`` is ``dim`` wide with an HNSW cosine profile."""
    index = SearchIndex(schema)
    if to_rest(index) != schema:
        raise SchemaError("the index definition does not survive a round trip through the SDK's SearchIndex")
    check_index_name(index.name)
    check_analyzer(analyzer)
    check_dimensions(dim)
    fields = {f.name: f for f in index.fields}
    if tuple(fields) != CHUNK_FIELDS:
        raise SchemaError(f"fields {list(fields)} are not the chunk fields {list(CHUNK_FIELDS)}")
    if [n for n, f in fields.items() if f.key] != ["chunk_id"] or fields["chunk_id"].type != "Edm.String":
        raise SchemaError("the key must be the one string field chunk_id")
    for name in ("heading", "text"):
        if not fields[name].searchable or fields[name].analyzer_name != analyzer:
            raise SchemaError(f"field {name} must be searchable with the analyzer {analyzer}")
    vector = fields["vector"]
    if vector.type != "Collection(Edm.Single)" or vector.vector_search_dimensions != dim:
        raise SchemaError(f"field vector must be Collection(Edm.Single) of width {dim}")
    profiles = {p.name: p for p in index.vector_search.profiles}
    algorithms = {a.name: a for a in index.vector_search.algorithms}
    profile = profiles.get(vector.vector_search_profile_name)
    algorithm = algorithms.get(profile.algorithm_configuration_name) if profile else None
    if not isinstance(algorithm, HnswAlgorithmConfiguration) or algorithm.parameters.metric != "cosine":
        raise SchemaError("field vector's profile must use an HNSW configuration with the cosine metric")
    return index


def index_schema(name: str, dim: int, analyzer: str = "ko.microsoft", semantic: bool = False) -> dict:
    """The Azure AI Search index definition (REST JSON) for our chunks, validated through the SDK.

    ``name``: the index name; ``dim``: the vector width (floats); ``analyzer``: ko.microsoft or ko.lucene;
    ``semantic``: add a semantic ranker configuration. Raises SchemaError for what the service would refuse.
    """
    schema = to_rest(build_index(name, dim, analyzer, semantic))
    validate_schema(schema, dim, analyzer)
    return schema


def read_index_dim(folder: Path) -> int:
    """The vector width of the ``model`` table recorded in ``folder/index.json`` (src.index.read_meta reads
    it); a one-line error naming the file if it is missing, damaged or without that width."""
    meta = read_meta(folder)
    if meta is None:
        raise DataError(folder / META, "file not found (an index folder of src.index has one)")
    recorded = meta.tables.get(MODEL_TABLE)
    if not isinstance(recorded, dict):
        raise DataError(folder / META, f"no table '{MODEL_TABLE}' in tables (found {sorted(meta.tables)!r})")
    dim = recorded.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < MIN_DIMENSIONS:
        raise DataError(folder / META, f"tables.{MODEL_TABLE}.dim must be a whole number >= {MIN_DIMENSIONS}, "
                                       f"got {dim!r}")  # fmt: skip
    return dim


def write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as indented UTF-8 JSON, atomically (the old file or the new one, never half of it)."""
    if path.is_dir():
        raise DataError(path, "is a folder; --output names the JSON file to write")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(__doc__)
    p.add_argument("--index", type=cli.input_dir, required=True,
                   help="index folder of src.index (has index.json)")  # fmt: skip
    p.add_argument("--name", required=True,
                   help="Azure AI Search index name (lowercase letters, digits, dashes)")  # fmt: skip
    p.add_argument("--output", "--output_dir", dest="output", type=cli.output_path, required=True,
                   help="the JSON file to write (the body of PUT /indexes/NAME)")  # fmt: skip
    p.add_argument("--analyzer", choices=KOREAN_ANALYZERS, default="ko.microsoft",
                   help="Korean analyzer of heading and text")  # fmt: skip
    p.add_argument("--semantic", action="store_true", help="add a semantic ranker configuration")
    return p


@cli.entry_point
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dim = read_index_dim(args.index)
    schema = index_schema(args.name, dim, args.analyzer, args.semantic)
    write_json(args.output, schema)
    print(f"wrote {args.output}: index {args.name!r}, {len(schema['fields'])} fields, vector {dim} floats "
          f"(HNSW, cosine), analyzer {args.analyzer}{', semantic ranker' if args.semantic else ''}")  # fmt: skip
    print(f"create it (network, your credentials): PUT https://SERVICE.search.windows.net/indexes/{args.name}"
          f"?api-version={API_VERSION} with this file as the body")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
