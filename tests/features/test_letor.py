"""Tests of the LETOR / SVMlight adapter on LightGBM's real sample and on hand-written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shared_data import SHARED_DATASETS

from searchrank.core.errors import InputError
from searchrank.features.adapters.letor import read_letor, write_ranking_dataset

LAMBDARANK = SHARED_DATASETS / "lightgbm-lambdarank"

QID_STYLE = """\
# a whole-line comment, then sparse rows of three queries
2 qid:0 1:0.5 3:1.25 # doc a
0 qid:0 2:0.1
4 qid:0 1:1 2:2 3:3

1 qid:1 3:0.75
3 qid:2 1:0.2
"""

GROUP_STYLE = """\
2 1:0.5 3:1.25
0 2:0.1
4 1:1 2:2 3:3
1 3:0.75
3 1:0.2
"""

GROUP_SIZES = "3\n1\n1\n"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _column(table: pa.Table, name: str) -> list[object]:
    return table.column(name).to_pylist()


@pytest.mark.parametrize(
    ("name", "rows", "queries", "label_counts"),
    [
        ("rank.train", 3005, 201, [645, 1211, 858, 222, 69]),
        ("rank.test", 768, 50, [206, 256, 252, 44, 10]),
    ],
)
def test_lightgbm_sample_with_group_file(
    name: str, rows: int, queries: int, label_counts: list[int]
) -> None:
    if not LAMBDARANK.is_dir():
        pytest.skip(f"{LAMBDARANK} is not available")
    table = read_letor(LAMBDARANK / name)

    assert table.num_rows == rows
    assert np.bincount(table.column("label").to_numpy()).tolist() == label_counts
    search_ids = table.column("search_id").to_numpy()
    assert np.array_equal(np.unique(search_ids), np.arange(queries))
    assert np.all(np.diff(search_ids) >= 0), "rows of one search are contiguous"
    expected_sizes = [int(line) for line in (LAMBDARANK / f"{name}.query").read_text().split()]
    assert np.bincount(search_ids).tolist() == expected_sizes
    item_ids = table.column("item_id").to_numpy()
    assert item_ids.tolist() == [i for size in expected_sizes for i in range(size)]

    features = [c for c in table.column_names if c.startswith("f")]
    assert 0 < len(features) <= 300
    assert features == [f"f{i}" for i in range(1, len(features) + 1)]
    matrix = np.column_stack([table.column(c).to_numpy() for c in features])
    assert matrix.dtype == np.float32
    assert matrix.min() >= 0.0
    assert matrix.max() <= 1.0


def test_qid_style_sparse_file_exact_values(tmp_path: Path) -> None:
    table = read_letor(_write(tmp_path, "small.txt", QID_STYLE))

    assert table.column_names == ["search_id", "item_id", "label", "f1", "f2", "f3"]
    assert table.schema.field("search_id").type == pa.int64()
    assert table.schema.field("item_id").type == pa.int64()
    assert table.schema.field("label").type == pa.int32()
    assert all(table.schema.field(f).type == pa.float32() for f in ("f1", "f2", "f3"))
    assert _column(table, "search_id") == [0, 0, 0, 1, 2]
    assert _column(table, "item_id") == [0, 1, 2, 0, 0]
    assert _column(table, "label") == [2, 0, 4, 1, 3]
    assert _column(table, "f1") == pytest.approx([0.5, 0.0, 1.0, 0.0, 0.2])
    assert _column(table, "f2") == pytest.approx([0.0, 0.1, 2.0, 0.0, 0.0])
    assert _column(table, "f3") == pytest.approx([1.25, 0.0, 3.0, 0.75, 0.0])


def test_integer_qids_become_search_ids_and_others_are_numbered(tmp_path: Path) -> None:
    numeric = read_letor(_write(tmp_path, "a.txt", "1 qid:17 1:1\n0 qid:17 1:0\n2 qid:5 1:1\n"))
    assert _column(numeric, "search_id") == [17, 17, 5]
    named = read_letor(_write(tmp_path, "b.txt", "1 qid:q7 1:1\n0 qid:q3 1:0\n"))
    assert _column(named, "search_id") == [0, 1]


def test_feature_index_zero_starts_the_columns_at_f0(tmp_path: Path) -> None:
    table = read_letor(_write(tmp_path, "zero.txt", "1 qid:1 0:0.5 2:1\n"))
    assert table.column_names == ["search_id", "item_id", "label", "f0", "f1", "f2"]
    assert _column(table, "f1") == [0.0]


def test_group_file_and_qid_styles_give_identical_tables(tmp_path: Path) -> None:
    from_qids = read_letor(_write(tmp_path, "small.txt", QID_STYLE))
    data = _write(tmp_path, "rank.small", GROUP_STYLE)
    explicit = _write(tmp_path, "groups.txt", GROUP_SIZES)
    _write(tmp_path, "rank.small.query", GROUP_SIZES)

    assert read_letor(data).equals(from_qids)  # finds rank.small.query by itself
    assert read_letor(data, explicit).equals(from_qids)
    # both at once are accepted when they agree
    assert read_letor(_write(tmp_path, "both.txt", QID_STYLE), explicit).equals(from_qids)


def test_written_dataset_round_trips(tmp_path: Path) -> None:
    table = read_letor(_write(tmp_path, "small.txt", QID_STYLE))
    out = tmp_path / "out" / "small.parquet"
    write_ranking_dataset(table, out)
    assert pq.read_table(out).equals(table)


def test_writing_without_required_columns_fails(tmp_path: Path) -> None:
    table = pa.table({"search_id": [1], "item_id": [2]})
    with pytest.raises(InputError, match="label"):
        write_ranking_dataset(table, tmp_path / "bad.parquet")
    assert not (tmp_path / "bad.parquet").exists()


@pytest.mark.parametrize(
    ("second_line", "token", "rule"),
    [
        ("x qid:1 1:0.5", "'x'", "label"),
        ("-1 qid:1 1:0.5", "'-1'", "label"),
        ("2.5 qid:1 1:0.5", "'2.5'", "label"),
        ("1 qid:1 1-0.5", "'1-0.5'", "<index>:<value>"),
        ("1 qid:1 a:0.5", "'a:0.5'", "integers"),
        ("1 qid:1 -3:0.5", "'-3:0.5'", "indices must lie"),
        ("1 qid:1 3:abc", "'3:abc'", "numbers"),
        ("1 qid:1 3:nan", "'3:nan'", "finite"),
        ("1 qid:1 3:0.1 3:0.2", "'3:0.2'", "once per line"),
        ("1 2:0.5", "'2:0.5'", "every row has a qid"),
    ],
)
def test_malformed_line_names_file_line_token_and_rule(
    tmp_path: Path, second_line: str, token: str, rule: str
) -> None:
    path = _write(tmp_path, "bad.txt", f"1 qid:1 1:0.5\n{second_line}\n")
    with pytest.raises(InputError) as error:
        read_letor(path)
    message = str(error.value)
    assert f"{path}:2" in message
    assert token in message
    assert rule in message


def test_group_sum_mismatch_names_file_and_both_numbers(tmp_path: Path) -> None:
    data = _write(tmp_path, "rank.small", GROUP_STYLE)
    groups = _write(tmp_path, "rank.small.query", "3\n1\n")
    with pytest.raises(InputError) as error:
        read_letor(data)
    message = str(error.value)
    assert str(groups) in message
    assert "(5)" in message
    assert "not 4" in message


def test_missing_grouping_is_an_error(tmp_path: Path) -> None:
    data = _write(tmp_path, "rank.small", GROUP_STYLE)
    with pytest.raises(InputError, match="grouped into queries") as error:
        read_letor(data)
    assert str(data) in str(error.value)


def test_non_contiguous_qid_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "split.txt", "1 qid:1 1:1\n0 qid:2 1:1\n# comment\n2 qid:1 1:1\n")
    with pytest.raises(InputError, match="contiguous") as error:
        read_letor(path)
    assert error.value.field == f"{path}:4"
    assert error.value.value == "1"


def test_qids_and_group_file_must_agree(tmp_path: Path) -> None:
    data = _write(tmp_path, "small.txt", QID_STYLE)
    groups = _write(tmp_path, "groups.txt", "2\n2\n1\n")
    with pytest.raises(InputError, match="must agree") as error:
        read_letor(data, groups)
    assert str(groups) in str(error.value)
    assert "group 0 has 3 rows by qid and 2 by the group file" in str(error.value)


def test_bad_group_file_line_is_named(tmp_path: Path) -> None:
    data = _write(tmp_path, "rank.small", GROUP_STYLE)
    groups = _write(tmp_path, "rank.small.query", "3\nzero\n")
    with pytest.raises(InputError, match="positive integer") as error:
        read_letor(data)
    assert f"{groups}:2" in str(error.value)


def test_missing_and_empty_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_letor(tmp_path / "absent.txt")
    data = _write(tmp_path, "small.txt", QID_STYLE)
    with pytest.raises(InputError, match="does not exist"):
        read_letor(data, tmp_path / "absent.query")
    with pytest.raises(InputError, match="at least one row"):
        read_letor(_write(tmp_path, "empty.txt", "# only a comment\n\n"))
