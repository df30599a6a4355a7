"""The sorting commands end to end with the real built-in model (labels, propose, sort,
undo, evaluate, anomalies), including what an adversarial run found: labels whose
folder names clash, copies in two subfolders, a file changed since indexing, output
that --json promised, and messages that blamed the wrong thing."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import distinct_images
from tests.test_cli import run_cli


@pytest.fixture
def sorted_folder(tmp_path) -> Path:
    """Two subfolders of 4 distinct photos each, and the store beside them."""
    folder = tmp_path / "photos"
    images = distinct_images(tmp_path / "src", 8, size=96)
    for i, image in enumerate(images):
        sub = folder / ("red" if i < 4 else "green")
        sub.mkdir(parents=True, exist_ok=True)
        shutil.move(image, sub / image.name)
    return folder


def cli(capsys, app_paths, folder, *argv):
    return run_cli(capsys, app_paths, *argv, "--store", str(folder.parent / "store"))


def test_labels_from_subfolders_then_a_move_and_its_undo(capsys, app_paths, sorted_folder):
    folder = sorted_folder
    code, out, _ = cli(capsys, app_paths, folder, "index", str(folder))
    code, out, err = cli(
        capsys, app_paths, folder, "labels", str(folder), "--from-subfolders", "--json"
    )
    assert code == 0
    assert {(x["name"], x["images"]) for x in json.loads(out)} == {("red", 4), ("green", 4)}
    before = {p: p.read_bytes() for p in folder.rglob("*.jpg")}
    dest = folder.parent / "sorted"
    code, out, _ = cli(
        capsys, app_paths, folder, "sort", str(folder), str(dest), "--move", "--dry-run", "--json"
    )
    assert code == 0 and len(json.loads(out)["steps"]) == 8
    assert {p: p.read_bytes() for p in folder.rglob("*.jpg")} == before  # a dry run
    code, _, err = cli(capsys, app_paths, folder, "sort", str(folder), str(dest), "--move")
    assert code == 1 and "--yes" in err  # not a terminal: moving needs --yes
    code, out, _ = cli(capsys, app_paths, folder, "sort", str(folder), str(dest), "--move", "--yes")
    assert code == 0 and not list(folder.rglob("*.jpg"))
    code, out, _ = run_cli(capsys, app_paths, "undo", "--json")
    assert code == 0 and json.loads(out)["undone"]
    assert {p: p.read_bytes() for p in folder.rglob("*.jpg")} == before


def test_copies_in_two_subfolders_keep_their_label_and_are_counted(
    capsys, app_paths, sorted_folder
):
    """Labels are per content: the subfolder that came last alphabetically won, and the
    counts printed were false."""
    folder = sorted_folder
    copy = next((folder / "red").iterdir())
    shutil.copy2(copy, folder / "green" / "copy.jpg")
    cli(capsys, app_paths, folder, "index", str(folder))
    code, out, err = cli(
        capsys, app_paths, folder, "labels", str(folder), "--from-subfolders", "--json"
    )
    assert code == 0 and "1 images have identical copies" in err
    assert {(x["name"], x["images"]) for x in json.loads(out)} == {("red", 3), ("green", 4)}


def test_a_file_changed_since_indexing_is_not_sorted_by_its_old_label(
    capsys, app_paths, sorted_folder
):
    folder = sorted_folder
    cli(capsys, app_paths, folder, "index", str(folder))
    cli(capsys, app_paths, folder, "labels", str(folder), "--from-subfolders")
    changed = sorted((folder / "red").iterdir())[0]
    shutil.copy2(sorted((folder / "green").iterdir())[0], changed)  # now a green photo
    dest = folder.parent / "sorted"
    code, out, _ = cli(
        capsys, app_paths, folder, "sort", str(folder), str(dest), "--dry-run", "--json"
    )
    assert code == 0
    plan = json.loads(out)
    assert str(changed) not in {s["source"] for s in plan["steps"]}
    (skip,) = [s for s in plan["skipped"] if s["source"] == str(changed)]
    assert "index the folder again" in skip["reason"]


def test_json_output_is_json_and_exports_go_where_asked(capsys, app_paths, sorted_folder):
    folder = sorted_folder
    cli(capsys, app_paths, folder, "index", str(folder))
    cli(capsys, app_paths, folder, "labels", str(folder), "--from-subfolders")
    code, out, _ = cli(
        capsys,
        app_paths,
        folder,
        "labels",
        str(folder),
        "--export",
        str(folder.parent / "l.csv"),
        "--json",
    )
    assert code == 0 and Path(json.loads(out)["written"]).is_file()
    code, out, _ = cli(capsys, app_paths, folder, "labels", str(folder), "--export", "-")
    assert (
        code == 0
        and out.splitlines()[0] == "path,label,colour,source"
        and len(out.splitlines()) == 9
    )
    code, _, err = cli(
        capsys, app_paths, folder, "labels", str(folder), "--export", str(folder.parent)
    )
    assert code == 1 and "is not a file" in err
    assert not list(folder.parent.parent.glob("*(2)"))  # nothing written beside the folder
    code, out, _ = cli(capsys, app_paths, folder, "labels", str(folder), "--xmp", "--json")
    assert code == 0 and len(json.loads(out)["written"]) == 8


def test_names_from_other_disks_and_control_characters_make_usable_labels(
    capsys, app_paths, sorted_folder
):
    """A Latin-1 subfolder name stopped "use my subfolders" halfway ("surrogates not
    allowed"); a control character in a label made a sidecar no XML reader accepts."""
    folder = sorted_folder
    latin = folder / "gr\udce9en"  # the byte 0xE9, not UTF-8
    (folder / "green").rename(latin)
    cli(capsys, app_paths, folder, "index", str(folder))
    code, out, _ = cli(
        capsys, app_paths, folder, "labels", str(folder), "--from-subfolders", "--json"
    )
    assert code == 0 and {x["name"] for x in json.loads(out)} == {"red", "gr\\xe9en"}
    image = sorted((folder / "red").iterdir())[0]
    code, out, _ = cli(
        capsys,
        app_paths,
        folder,
        "labels",
        str(folder),
        "--add",
        "bad\x01<&>",
        str(image),
        "--json",
    )
    assert code == 0 and "bad\\x01<&>" in {x["name"] for x in json.loads(out)}
    code, out, _ = cli(capsys, app_paths, folder, "labels", str(folder), "--xmp", "--json")
    for sidecar in json.loads(out)["written"]:
        ET.parse(sidecar)  # well-formed


def test_evaluate_and_anomalies_refuse_what_they_cannot_measure(capsys, app_paths, sorted_folder):
    folder = sorted_folder
    for extra in list((folder / "green").iterdir())[1:]:
        extra.unlink()  # green: a single image
    cli(capsys, app_paths, folder, "index", str(folder))
    code, _, err = cli(
        capsys,
        app_paths,
        folder,
        "evaluate",
        str(folder),
        "--labels-from-subfolders",
        "--models",
        "builtin",
    )
    assert code == 1 and "2 labels of 2 or more images" in err and "left out" in err
    code, _, err = cli(capsys, app_paths, folder, "anomalies", str(folder))
    assert code == 1 and "--normal LABEL" in err
    code, _, err = cli(capsys, app_paths, folder, "anomalies", str(folder), "--percentile", "200")
    assert code == 1 and "from 0 to 100" in err and "--normal" not in err
    code, _, err = cli(capsys, app_paths, folder, "propose", str(folder), "-k", "-1")
    assert code == 1 and "0 or more" in err


def test_a_sort_that_did_nothing_is_not_the_last_sort(capsys, app_paths, sorted_folder, tmp_path):
    """A sort of files already in their folders became "the last sort": undo then
    undid nothing and the real last sort was out of reach."""
    folder = sorted_folder
    cli(capsys, app_paths, folder, "index", str(folder))
    cli(capsys, app_paths, folder, "labels", str(folder), "--from-subfolders")
    dest = tmp_path / "sorted"
    code, _, _ = cli(capsys, app_paths, folder, "sort", str(folder), str(dest))
    assert code == 0 and len(list(dest.rglob("*.jpg"))) == 8
    code, _, _ = cli(capsys, app_paths, folder, "sort", str(folder), str(folder), "--move", "--yes")
    assert code == 0  # every image is already in its label's folder: nothing done
    code, out, _ = run_cli(capsys, app_paths, "undo", "--json")
    assert code == 0 and len(json.loads(out)["removed"]) == 8 and not list(dest.rglob("*.jpg"))


def test_no_answer_at_the_move_question_moves_nothing(
    capsys, app_paths, sorted_folder, monkeypatch
):
    """Ctrl+D at the question printed an EOFError traceback."""
    folder = sorted_folder
    cli(capsys, app_paths, folder, "index", str(folder))
    cli(capsys, app_paths, folder, "labels", str(folder), "--from-subfolders")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)

    def no_answer(_question):
        raise EOFError

    monkeypatch.setattr("builtins.input", no_answer)
    code, _, err = cli(
        capsys, app_paths, folder, "sort", str(folder), str(folder.parent / "out"), "--move"
    )
    assert code == 1 and "Nothing moved" in err and len(list(folder.rglob("*.jpg"))) == 8
