"""data.labels: the generic CSV/whitespace label table and the LabelTable type."""

from __future__ import annotations

import pytest

from aqa.data.labels import LabelError, LabelRecord, LabelTable, read_label_table, split_from_filename
from aqa.errors import MissingFileError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_whitespace_file_with_header_and_mixed_tabs_and_spaces(tmp_path):
    path = write(tmp_path, "train.txt", "Video_Name\tDifficulty_Score    Execution_Score Total_Score\n"
                                        "Ball_001\t10.50\t8.30\t18.80\n\nBall_002  7.20 4.20   10.80\n")
    table = read_label_table(path)
    assert table.names == ["Ball_001", "Ball_002"]
    assert table.score_names == ("Difficulty_Score", "Execution_Score", "Total_Score")
    assert table["Ball_002"].scores == {"Difficulty_Score": 7.2, "Execution_Score": 4.2, "Total_Score": 10.8}
    assert table["Ball_001"].difficulty is None and table["Ball_001"].split is None


def test_file_without_header_needs_column_names(tmp_path):
    path = write(tmp_path, "test_dataset.txt", "1 28.71 29.36 1\n3 28.79 27.89 1\n")
    with pytest.raises(LabelError, match="no header line.*--columns"):
        read_label_table(path)
    table = read_label_table(path, columns=["id", "TES", "PCS", "ded"], split="test")
    assert table.names == ["1", "3"]
    assert table["3"].scores == {"TES": 28.79, "PCS": 27.89, "ded": 1.0}
    assert table.splits == ["test"]


def test_columns_replace_a_header(tmp_path):
    path = write(tmp_path, "rg.txt", "Video_Name Difficulty_Score Execution_Score\nHoop_001 9.1 7.6\n")
    table = read_label_table(path, columns=("name", "D", "E"))
    assert table["Hoop_001"].scores == {"D": 9.1, "E": 7.6}


def test_csv_with_difficulty_and_split_columns(tmp_path):
    path = write(tmp_path, "labels.csv", "# comment\nvideo,score,Difficulty,split\ndive_1,80.5,3.2,train\n"
                                         "dive_2,45,2.0,test\n")
    table = read_label_table(path)
    assert table["dive_1"] == LabelRecord("dive_1", {"score": 80.5}, 3.2, "train")
    assert table.select("test").names == ["dive_2"]
    assert read_label_table(path, split="all").splits == ["all"]  # an explicit split wins


def test_a_text_split_column_does_not_make_a_data_line_look_like_a_header(tmp_path):
    path = write(tmp_path, "labels.txt", "a 1.5 train\nb 2.5 test\n")
    table = read_label_table(path, columns=["name", "score", "split"])
    assert table.names == ["a", "b"] and table["b"].split == "test"


@pytest.mark.parametrize(("text", "message"), [
    ("name score\na 1.0\nb x\n", r"labels.txt:3: column 'score' holds 'x', not a number"),
    ("name score\na 1.0 2.0\n", r"labels.txt:2: 3 fields, expected 2"),
    ("name score\na 1.0\na 2.0\n", "'a' is labelled more than once"),
    ("name score\na nan\n", "is 'nan', not a finite number"),
    ("name score\na inf\n", "is 'inf', not a finite number"),  # accepted before (issue 24, defect 8)
    ("name score\na -Infinity\n", "is '-Infinity', not a finite number"),
    ("name\na\n", "at least one score column"),
    ("name score Score\na 1 2\n", "repeated column names"),
    ("\n# only a comment\n", "no label lines"),
])
def test_malformed_files_raise_errors_naming_file_and_line(tmp_path, text, message):
    path = write(tmp_path, "labels.txt", text)
    with pytest.raises(LabelError, match=message):
        read_label_table(path)


def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match="label file not found"):
        read_label_table(tmp_path / "nope.txt")


@pytest.mark.parametrize(("name", "split"), [("train.txt", "train"), ("test_dataset.txt", "test"),
                                             ("Val-2.csv", "val"), ("train_split_0.pkl", "train")])
def test_split_from_filename(name, split):
    assert split_from_filename(f"/some/folder/{name}") == split


def test_table_lookup_merge_and_duplicates():
    train = LabelTable((LabelRecord("a", {"total": 1.0}, split="train"),), "train.txt")
    test = LabelTable((LabelRecord("b", {"total": 2.0, "E": 1.0}, split="test"),), "test.txt")
    both = train.merged(test)
    assert len(both) == 2 and "b" in both and both.get("zzz") is None
    assert both.score_names == ("total", "E")
    assert [r.name for r in both] == ["a", "b"]
    with pytest.raises(LabelError, match="no labels for video 'zzz'"):
        both["zzz"]
    with pytest.raises(LabelError, match="'a' is labelled more than once"):
        both.merged(train)


def test_a_label_file_that_is_not_utf8_names_its_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"a 1.0\nb\xff 2.0\n")
    with pytest.raises(LabelError, match=r"train.txt: line 2 is not UTF-8 text \(byte 0xff\)"):
        read_label_table(path, columns=["id", "score"])
