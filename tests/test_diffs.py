import random

import pytest

from autoresearch.domain.diffs import apply_diff, make_diff, parse_diff, recount_hunks, touched_paths
from autoresearch.errors import PatchError

BASE = "".join(f"line {i}\n" for i in range(40))


def test_a_diff_made_from_two_versions_applies_back_to_the_first() -> None:
    rng = random.Random(7)
    for _ in range(500):
        lines = BASE.splitlines(True)
        for _ in range(rng.randint(1, 5)):
            i, edit = rng.randrange(len(lines)), rng.choice(["insert", "delete", "replace"])
            if edit == "insert":
                lines.insert(i, "new\n")
            elif edit == "delete":
                lines.pop(i)
            else:
                lines[i] = "x\n"
        new = "".join(lines)
        if rng.random() < 0.2:
            new = new.rstrip("\n")  # exercises "\ No newline at end of file"
        if new == BASE:
            continue
        assert apply_diff({"f.py": BASE}, make_diff({"f.py": BASE}, {"f.py": new})) == {"f.py": new}


def test_hunks_apply_at_an_offset_when_lines_were_added_above() -> None:
    diff = make_diff({"f.py": BASE}, {"f.py": BASE.replace("line 30\n", "changed\n")})
    shifted = "header\nheader\n" + BASE
    assert apply_diff({"f.py": shifted}, diff)["f.py"] == shifted.replace("line 30\n", "changed\n")


def test_a_diff_whose_context_changed_merges_three_ways_against_its_base() -> None:
    parent = BASE.replace("line 10\n", "parent edit\n")
    diff = make_diff({"f.py": BASE}, {"f.py": BASE.replace("line 12\n", "child edit\n")})
    with pytest.raises(PatchError):
        apply_diff({"f.py": parent}, diff)  # its context line 10 is gone
    merged = apply_diff({"f.py": parent}, diff, base={"f.py": BASE})["f.py"]
    assert "parent edit\nline 11\nchild edit\n" in merged


def test_two_edits_of_the_same_line_conflict() -> None:
    parent = BASE.replace("line 5\n", "mine\n")
    diff = make_diff({"f.py": BASE}, {"f.py": BASE.replace("line 5\n", "theirs\n")})
    with pytest.raises(PatchError, match="conflicts"):
        apply_diff({"f.py": parent}, diff, base={"f.py": BASE})


def test_new_and_deleted_files() -> None:
    diff = make_diff({"a.py": "a\n"}, {"b.py": "b\n"})
    assert touched_paths(diff) == {"a.py", "b.py"}
    assert apply_diff({"a.py": "a\n"}, diff) == {"b.py": "b\n"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a diff at all",
        "--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n line 0\n-line 1\n",
        "--- a/f\n+++ b/f\n@@ bad @@\n",
    ],
)
def test_malformed_diffs_are_refused_with_a_patch_error(text: str) -> None:
    with pytest.raises(PatchError):
        parse_diff(text)


def test_a_diff_against_a_missing_file_is_refused() -> None:
    with pytest.raises(PatchError, match="no such file"):
        apply_diff({}, make_diff({"f.py": "a\n"}, {"f.py": "b\n"}))


def test_hunk_counts_a_model_got_wrong_are_recounted_from_the_body() -> None:
    old = {"train.py": "a = 1\n\nb = 2\nc = 3\n"}
    written = "--- a/train.py\n+++ b/train.py\n@@ -1,9 +1,2 @@\n a = 1\n\n-b = 2\n+b = 20\n c = 3\n"
    with pytest.raises(PatchError):
        apply_diff(old, written)
    fixed = recount_hunks(written)
    assert "@@ -1,4 +1,4 @@" in fixed
    assert apply_diff(old, fixed) == {"train.py": "a = 1\n\nb = 20\nc = 3\n"}


def test_recounting_keeps_a_correct_multi_file_diff_as_it_is() -> None:
    old = {"a.py": "x = 1\ny = 2\n", "b.py": "z = 3\n"}
    new = {"a.py": "x = 1\ny = 5\n", "b.py": "z = 4\n"}
    diff = make_diff(old, new)
    assert parse_diff(recount_hunks(diff)) == parse_diff(diff)
    assert apply_diff(old, recount_hunks(diff)) == new
