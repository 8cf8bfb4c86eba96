"""ImageNetHelper on generated devkit files, and the .lst reader/writer."""

from __future__ import annotations

import codecs
from collections import Counter
from pathlib import Path

import pytest
from conftest import TREE_WNIDS, IlsvrcTree, make_ilsvrc_tree, write_config

from pyimagesearch.config import ConfigError, load_config
from pyimagesearch.data.dataset import DatasetError
from pyimagesearch.data.records.lists import ListEntry, make_entries, read_list, write_list
from pyimagesearch.data.sources.imagenethelper import ImageNetHelper


def helper_for(tmp_path: Path, tree: IlsvrcTree, **fields) -> ImageNetHelper:
    fields.setdefault("NUM_CLASSES", len(tree.wnids))
    config = write_config(tmp_path / f"config_{len(list(tmp_path.glob('config_*')))}.py",
                          tree.base, tmp_path / "out", **fields)
    return ImageNetHelper(load_config(str(config)))


@pytest.fixture
def tree(tmp_path: Path) -> IlsvrcTree:
    return make_ilsvrc_tree(tmp_path / "ILSVRC2015", classes=4, train_per_class=7,
                            val_per_class=3, blacklist=(2, 7))


def test_class_labels_in_map_clsloc_order(tmp_path, tree):
    helper = helper_for(tmp_path, tree)
    assert helper.label_order == "map_clsloc"
    assert helper.build_class_labels() == {w: i for i, w in enumerate(tree.wnids)}
    assert [c.wnid for c in helper.classes] == tree.wnids
    assert [c.name for c in helper.classes] == tree.names
    assert [c.class_id for c in helper.classes] == [1, 2, 3, 4]


def test_class_labels_in_sorted_wnid_order(tmp_path, tree):
    helper = helper_for(tmp_path, tree, LABEL_ORDER="sorted_wnid")
    expected = {w: i for i, w in enumerate(sorted(tree.wnids))}
    assert helper.build_class_labels() == expected
    assert expected != {w: i for i, w in enumerate(tree.wnids)}  # the orders really differ
    # The same image gets the sorted-order label in both lists.
    paths, labels = helper.build_training_set()
    wnid_of = dict(tree.train)
    assert all(labels[i] == expected[wnid_of[p]] for i, p in enumerate(paths))
    val_paths, val_labels = helper.build_validation_set()
    wnid_of_val = dict(tree.val)
    assert [expected[wnid_of_val[p]] for p in val_paths] == val_labels


def test_training_set(tmp_path, tree):
    paths, labels = helper_for(tmp_path, tree).build_training_set()
    assert sorted(paths) == sorted(p for p, _ in tree.train)
    assert all(p.startswith("train/") and p.endswith(".JPEG") for p in paths)
    assert all((tree.images / p).is_file() for p in paths)
    wnid_of = dict(tree.train)
    assert [tree.wnids.index(wnid_of[p]) for p in paths] == labels


def test_validation_set_drops_the_blacklist(tmp_path, tree):
    paths, labels = helper_for(tmp_path, tree).build_validation_set()
    kept = [(p, w) for i, (p, w) in enumerate(tree.val, start=1) if i not in (2, 7)]
    assert paths == [p for p, _ in kept]
    assert labels == [tree.wnids.index(w) for _, w in kept]
    assert len(paths) == len(tree.val) - 2


def test_test_split_is_stratified_and_reproducible(tmp_path):
    tree = make_ilsvrc_tree(tmp_path / "ILSVRC2015", classes=3, train_per_class=10,
                            val_per_class=1, blacklist=())
    helper = helper_for(tmp_path, tree, NUM_TEST_IMAGES=6, TEST_SPLIT_SEED=3)
    paths, labels = helper.build_training_set()
    split = helper.split_test_set(paths, labels)
    assert len(split.test_paths) == 6
    assert Counter(split.test_labels) == {0: 2, 1: 2, 2: 2}
    assert sorted(split.train_paths + split.test_paths) == sorted(paths)
    assert not set(split.train_paths) & set(split.test_paths)
    label_of = dict(zip(paths, labels))
    assert all(label_of[p] == lb for p, lb in zip(split.test_paths, split.test_labels))
    assert helper.split_test_set(paths, labels) == split
    others = {tuple(helper.split_test_set(paths, labels, seed=s).test_paths) for s in range(5)}
    assert len(others) > 1  # the seed matters


def test_test_split_proportions_with_unequal_classes(tmp_path, tree):
    helper = helper_for(tmp_path, tree)
    labels = [0] * 50 + [1] * 30 + [2] * 15 + [3] * 5
    paths = [f"train/x/{i}.JPEG" for i in range(len(labels))]
    split = helper.split_test_set(paths, labels, num_test=20, seed=0)
    assert Counter(split.test_labels) == {0: 10, 1: 6, 2: 3, 3: 1}
    with pytest.raises(ConfigError, match="NUM_TEST_IMAGES"):
        helper.split_test_set(paths, labels, num_test=97, seed=0)


def test_label_order_is_checked(tmp_path, tree):
    with pytest.raises(ConfigError, match="LABEL_ORDER"):
        helper_for(tmp_path, tree, LABEL_ORDER="alphabetical")


def _rewrite(path: Path, line: int, text: str | None) -> None:
    """Replace (or with None delete) 1-based ``line`` of a file; 0 appends ``text``."""
    lines = path.read_text().splitlines()
    if line == 0:
        lines.append(text)
    elif text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


MAP, TRAIN, VAL, TRUTH, BLACK = ("map_clsloc.txt", "train_cls.txt", "val.txt",
                                 "ground_truth.txt", "blacklist.txt")


@pytest.mark.parametrize(("name", "line", "text", "message"), [
    (MAP, 2, f"{TREE_WNIDS[1]} 2", "expected '<wnid> <class id> <name>'"),
    (MAP, 3, f"{TREE_WNIDS[2]} three name", "class id is not an integer"),
    (MAP, 3, f"{TREE_WNIDS[2]} 9 name", "class id 9 is outside 1..4"),
    (MAP, 3, f"{TREE_WNIDS[2]} 1 name", "class id 1 duplicated (first at line 1)"),
    (MAP, 4, f"{TREE_WNIDS[0]} 4 name", f"WordNet id {TREE_WNIDS[0]} duplicated"),
    (MAP, 2, "dog 2 name", "not a WordNet id"),
    (MAP, 2, "", "blank line"),
    (TRAIN, 5, "n01234567/n01234567_1 5", "unknown WordNet id n01234567"),
    (TRAIN, 5, "just-one-field", "expected '<wnid>/<image id> <running index>'"),
    (TRAIN, 6, None, None),  # placeholder replaced below: duplicated line
    (VAL, 3, "ILSVRC2012_val_00000003 4", "running index 4 where 3 was expected"),
    (TRUTH, 4, "0", "class id 0 is outside 1..4"),
    (TRUTH, 4, "x", "class id is not an integer"),
    (BLACK, 1, "13", "validation index 13 is outside 1..12"),
    (BLACK, 0, "2", "validation index 2 duplicated (first at line 1)"),
])
def test_malformed_devkit_lines_name_file_and_line(tmp_path, tree, name, line, text, message):
    files = {MAP: tree.devkit / "map_clsloc.txt", TRAIN: tree.image_sets / "train_cls.txt",
             VAL: tree.image_sets / "val.txt",
             TRUTH: tree.devkit / "ILSVRC2015_clsloc_validation_ground_truth.txt",
             BLACK: tree.devkit / "ILSVRC2015_clsloc_validation_blacklist.txt"}
    path = files[name]
    if text is None:  # duplicate line 5 as line 6
        text = path.read_text().splitlines()[4]
        message = "duplicated (first at line 5)"
    _rewrite(path, line, text)
    expected_line = line or len(path.read_text().splitlines())
    with pytest.raises(DatasetError) as info:
        helper = helper_for(tmp_path, tree)
        helper.build_training_set()
        helper.build_validation_set()
    assert info.value.path == str(path)
    assert info.value.line == expected_line
    assert f"{path}, line {expected_line}: " in str(info.value)
    assert message in str(info.value)


def test_count_mismatches_name_the_files(tmp_path, tree):
    truth = tree.devkit / "ILSVRC2015_clsloc_validation_ground_truth.txt"
    _rewrite(truth, 1, None)
    with pytest.raises(DatasetError, match="has 11 labels but .*val.txt lists 12 images") as info:
        helper_for(tmp_path, tree).build_validation_set()
    assert info.value.path == str(truth)

    _rewrite(tree.devkit / "map_clsloc.txt", 4, None)
    with pytest.raises(DatasetError, match="lists 3 classes but NUM_CLASSES is 4"):
        helper_for(tmp_path, tree)


def test_missing_devkit_file(tmp_path, tree):
    (tree.image_sets / "val.txt").unlink()
    with pytest.raises(DatasetError, match="val.txt: file not found"):
        helper_for(tmp_path, tree).build_validation_set()


def devkit_files(tree: IlsvrcTree) -> list[Path]:
    return [tree.devkit / "map_clsloc.txt", tree.image_sets / "train_cls.txt",
            tree.image_sets / "val.txt",
            tree.devkit / "ILSVRC2015_clsloc_validation_ground_truth.txt",
            tree.devkit / "ILSVRC2015_clsloc_validation_blacklist.txt"]


def read_everything(helper: ImageNetHelper) -> tuple:
    return (helper.classes, helper.build_training_set(), helper.build_validation_set())


def test_a_utf8_byte_order_mark_is_read_as_what_it_is(tmp_path, tree):
    plain = read_everything(helper_for(tmp_path, tree))
    for path in devkit_files(tree):  # as a Windows editor saves them
        path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    assert read_everything(helper_for(tmp_path, tree)) == plain


def test_other_byte_order_marks_are_refused_by_name(tmp_path, tree):
    words = tree.devkit / "map_clsloc.txt"
    text = words.read_text(encoding="utf-8")
    words.write_bytes(text.encode("utf-16"))  # with its byte-order mark
    with pytest.raises(DatasetError) as info:
        helper_for(tmp_path, tree)
    assert str(info.value) == (f"{words}: starts with a UTF-16 byte-order mark (ff fe): the "
                               f"devkit files are UTF-8 text; save it as UTF-8")
    # Two files joined, the second saved with a mark: the mark is named with its line.
    truth = tree.devkit / "ILSVRC2015_clsloc_validation_ground_truth.txt"
    lines = truth.read_text().splitlines()
    truth.write_text("\n".join([*lines[:3], "\ufeff" + lines[3], *lines[4:]]) + "\n")
    words.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 4: a byte-order mark \(U\+FEFF\) inside"):
        helper_for(tmp_path, tree).build_validation_set()


# --- .lst files ---------------------------------------------------------------------------
def test_list_round_trip(tmp_path):
    entries = make_entries(["train/a/a_1.JPEG", "val/b c.JPEG"], [3, 0])
    path = tmp_path / "x.lst"
    assert write_list(path, entries) == 2
    assert path.read_text() == "0\t3\ttrain/a/a_1.JPEG\n1\t0\tval/b c.JPEG\n"
    assert read_list(path) == entries


def test_list_accepts_im2rec_float_labels(tmp_path):
    path = tmp_path / "x.lst"
    path.write_text("7\t2.000000\ta.jpg\n")
    assert read_list(path) == [ListEntry(7, 2, "a.jpg")]


@pytest.mark.parametrize(("text", "line", "message"), [
    ("0\t1\ta.jpg\n0\t2\tb.jpg\n", 2, "index 0 duplicated (first at line 1)"),
    ("0\t1\ta.jpg\n1\t2\ta.jpg\n", 2, "a.jpg duplicated (first at line 1)"),
    ("0\t1\ta.jpg\n1 2 b.jpg\n", 2, "expected 'index<TAB>label<TAB>path'"),
    ("0\t1.5\ta.jpg\n", 1, "label must be a whole number"),
    ("x\t1\ta.jpg\n", 1, "index is not an integer"),
    ("0\t1\ta.jpg\n\n1\t1\tb.jpg\n", 2, "expected"),
])
def test_list_errors_name_the_line(tmp_path, text, line, message):
    path = tmp_path / "bad.lst"
    path.write_text(text)
    with pytest.raises(DatasetError) as info:
        read_list(path)
    assert info.value.line == line
    assert f"{path}, line {line}: " in str(info.value)
    assert message in str(info.value)
