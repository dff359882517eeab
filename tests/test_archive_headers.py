"""Shard headers parsed per recording (aemg.data.archive.split_headers and the lazy header table):
parity with parsing the whole JSON document, odd strings, unexpected layouts, corruption."""
import json

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_archive import assert_same, edge_recordings

from aemg._folder import dumps
from aemg.data.archive import (
    HEADER_BLOCK,
    ArchiveWriter,
    _LazyHeaders,
    _ShardTable,
    open_archive,
    read_shard,
    split_headers,
    verify_archive,
    write_shard,
)
from aemg.errors import DataError

# strings full of what a scanner could trip on: quotes, backslash runs, brackets, commas, the key
TRICKY = st.text(alphabet=st.sampled_from(list('"\\{}[],: a"headers"é日\n\t\x00')), max_size=12)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TRICKY,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY, inner, max_size=4),
                    max_leaves=12)
ENCODINGS = (lambda d: json.dumps(d).encode(), lambda d: json.dumps(d, indent=1).encode(),
             lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8"), lambda d: dumps(d).encode("utf-8"),
             lambda d: json.dumps(d, separators=(",", ":")).encode())


@settings(max_examples=150, deadline=None)
@given(devices=st.lists(st.dictionaries(TRICKY, JSON, max_size=3), max_size=3),
       headers=st.lists(st.dictionaries(TRICKY, JSON, max_size=5), max_size=6),
       headers_first=st.booleans())
def test_split_headers_equals_parsing_the_document(devices, headers, headers_first):
    doc = {"devices": devices, "headers": headers}
    if headers_first:
        doc = {"headers": headers, "devices": devices}
    for encode in ENCODINGS:
        raw = encode(doc)
        split = split_headers(raw)
        assert split is not None, raw
        rest, spans = split
        assert rest == {"devices": devices, "headers": []}
        assert [json.loads(raw[a:b]) for a, b in spans] == json.loads(raw)["headers"]


@pytest.mark.parametrize("raw", [
    b"", b"[]", b'{"devices": []}', b'{"devices": [], "headers": {}}', b'{"devices": [], "headers": 3}',
    b'{"devices": [], "x": "\\"headers\\": [1]"}',        # the key only inside a string
    b'{"devices": [], "headers": [1], "headers": [2]}',     # a second key: parsed whole instead
    b'{"devices": [], "headers": [{"a": 1}',                # truncated
    b'{"devices": [], "headers": [1]} trailing', b'{"devices": [], "headers": ["a]}',
    b'{"devices": 1, "headers": []}', b'{"m": {"headers": [1]}, "devices": []}'])
def test_split_headers_refuses_other_layouts(raw):
    assert split_headers(raw) is None


def test_split_headers_edge_documents():
    assert split_headers(b'{"devices": [], "headers": []}') == ({"devices": [], "headers": []}, [])
    assert split_headers(b'{"devices":[],"headers":[ ]}') == ({"devices": [], "headers": []}, [])
    raw = b'{"devices": [{"n": "\\\\"}], "headers": [{"s": "\\\\\\""}, {"t": "],[{"}]}'
    rest, spans = split_headers(raw)
    assert rest["devices"] == [{"n": "\\"}]
    assert [json.loads(raw[a:b]) for a, b in spans] == [{"s": '\\"'}, {"t": "],[{"}]


def test_a_shard_parses_only_the_headers_it_reads(tmp_path):
    recs = edge_recordings()
    path = tmp_path / "000001.h5"
    write_shard(path, recs)
    with h5py.File(path, "r") as f:
        table = _ShardTable(f, str(path))
        assert isinstance(table.headers, _LazyHeaders) and len(table.headers) == len(recs)
        assert_same(table.read(2, str(path)), recs[2])
        assert all(h is not None for h in table.headers._parsed)   # one block holds all five
        got = table.read_run([0, 1, 2, 3, 4], str(path))
        table.close()
    for a, b in zip(got, recs):
        assert_same(a, b)
    assert [r.meta for r in got] == [r.meta for r in read_shard(path)]
    # a shard of several blocks: reading one recording parses its block only
    many = [recs[i % 5].with_data(recs[i % 5].data, trial=str(i)) for i in range(3 * HEADER_BLOCK + 5)]
    write_shard(path, many)
    with h5py.File(path, "r") as f:
        table = _ShardTable(f, str(path))
        assert_same(table.read(HEADER_BLOCK + 3, str(path)), many[HEADER_BLOCK + 3])
        parsed = [h is not None for h in table.headers._parsed]
        assert parsed == [HEADER_BLOCK <= i < 2 * HEADER_BLOCK for i in range(len(many))]
        got = table.read_run(list(range(len(many))), str(path))
        table.close()
    for a, b in zip(got, many):
        assert_same(a, b)


def _rewrite_headers(path, edit):
    with h5py.File(path, "r+") as f:
        raw = edit(f["headers"][()].tobytes())
        del f["headers"]
        f["headers"] = np.frombuffer(raw, np.uint8)


def test_a_corrupt_header_is_reported_when_its_recording_is_read(tmp_path):
    writer = ArchiveWriter(tmp_path / "a", {"reader": "x", "reader_options": {}, "source_root": None,
                                            "space": {}})
    recs = edge_recordings()
    writer.add("f", recs)
    writer.finish()
    archive = open_archive(tmp_path / "a")
    shard = tmp_path / "a" / archive.index[0]["shard"]
    _rewrite_headers(shard, lambda raw: raw.replace(b'"trial": "strided"', b'"trial": stri"ded"', 1))
    archive = open_archive(tmp_path / "a")
    assert_same(archive[0], recs[0])                                   # the others still read
    with pytest.raises(DataError, match=r"000001\.h5.*unreadable header of recording 1"):
        archive[1]
    problems, _ = verify_archive(tmp_path / "a")                      # (its checksum changed)
    assert any(str(shard) in p for p in problems)
    archive.close()


def test_a_document_the_scanner_refuses_is_parsed_whole(tmp_path):
    recs = edge_recordings()
    path = tmp_path / "000001.h5"
    write_shard(path, recs)
    # a second "headers" key before the real one (json keeps the last): the scan gives up, the
    # whole-document parse reads the shard as before
    _rewrite_headers(path, lambda raw: b'{"headers": [], ' + raw[1:])
    with h5py.File(path, "r") as f:
        table = _ShardTable(f, str(path))
        assert_same(table.read(1, str(path)), recs[1])
        assert table.headers._spans is None and all(h is not None for h in table.headers._parsed)
    for a, b in zip(read_shard(path), recs):
        assert_same(a, b)
    _rewrite_headers(path, lambda raw: raw[:-2])                        # truncated: unreadable
    with pytest.raises(DataError, match="unreadable shard"):
        read_shard(path)
