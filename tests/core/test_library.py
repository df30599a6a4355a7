"""Several roots searched as one; a root that is unplugged stays searchable and loses
nothing; plugging it back encodes nothing."""

import json
import shutil

import pytest

from tests.test_cli import run_cli
from visualsearch.core.folder import ModelChoice
from visualsearch.core.library import Library, LibraryError
from visualsearch.core.query import TextQuery


@pytest.fixture
def two_roots(tmp_path, photos_dir):
    """Root 'pets' holds the cat photo (chelsea), root 'space' the rest of skimage's."""
    pets, space = tmp_path / "drive" / "pets", tmp_path / "disk" / "space"
    pets.mkdir(parents=True)
    space.mkdir(parents=True)
    shutil.copy2(photos_dir / "chelsea.png", pets / "chelsea.png")
    for name in ("astronaut.png", "rocket.jpg", "coffee.png", "horse.png"):
        shutil.copy2(photos_dir / name, space / name)
    return pets, space


def test_two_roots_searched_as_one_and_an_unplugged_one_stays_searchable(
    tmp_path, two_roots, builtin_encoder
):
    pets, space = two_roots
    library = Library(tmp_path / "data")
    library.add(pets)
    library.add(space)
    model = ModelChoice("builtin")
    first = dict(library.index(builtin_encoder, model))
    assert first[pets].encoded == 1 and first[space].encoded == 4

    hits = library.search(builtin_encoder, TextQuery("a photo of a cat"), k=5)
    assert hits[0].hit.path == pets / "chelsea.png" and not hits[0].offline
    assert {h.hit.path.parent for h in hits} == {pets, space}  # one ranking over both
    assert [h.hit.rank for h in hits] == [1, 2, 3, 4, 5]

    pets.rename(tmp_path / "drive" / "unplugged")  # the drive is gone
    states = {s.path: s for s in library.states(builtin_encoder.id)}
    assert not states[pets].online and states[pets].indexed == 1
    assert states[space].online and states[space].indexed == 4
    hits = library.search(builtin_encoder, TextQuery("a photo of a cat"), k=5)
    assert hits[0].hit.path == pets / "chelsea.png" and hits[0].offline  # from its store
    assert all(not h.offline for h in hits[1:])
    offline = dict(library.index(builtin_encoder, model))
    assert offline[pets] is None and offline[space].encoded == 0  # skipped, not forgotten

    (tmp_path / "drive" / "unplugged").rename(pets)  # plugged back in
    again = dict(library.index(builtin_encoder, model))
    assert again[pets].encoded == 0 and again[pets].unchanged == 1 and again[pets].removed == 0
    assert again[space].encoded == 0
    hits = library.search(builtin_encoder, TextQuery("a photo of a cat"), k=1)
    assert hits[0].hit.path == pets / "chelsea.png" and not hits[0].offline


def test_roots_are_remembered_and_overlaps_refused(tmp_path, two_roots):
    pets, space = two_roots
    library = Library(tmp_path / "data")
    library.add(pets)
    with pytest.raises(LibraryError, match="overlaps"):
        library.add(pets.parent)  # around a root: its images would count twice
    (pets / "sub").mkdir()
    with pytest.raises(LibraryError, match="overlaps"):
        library.add(pets / "sub")
    with pytest.raises(LibraryError, match="not a folder"):
        library.add(tmp_path / "nowhere")
    library.add(space)
    assert Library(tmp_path / "data").roots == [pets, space]  # written to disk
    library.remove(pets)
    assert Library(tmp_path / "data").roots == [space]
    with pytest.raises(LibraryError, match="not a root"):
        library.remove(pets)


@pytest.mark.parametrize("text", ["{not json", "null", "[]", "5", '{"roots": "abc"}'])
def test_a_damaged_library_file_says_what_to_do(tmp_path, text):
    """null, [] or 5 gave a traceback; {"roots": "abc"} became the roots a, b and c."""
    (tmp_path / "library.json").write_text(text)
    with pytest.raises(LibraryError, match="move it away"):
        Library(tmp_path)


def test_a_hand_edited_library_file_never_counts_images_twice(tmp_path, two_roots):
    pets, space = two_roots
    (tmp_path / "library.json").write_text(
        json.dumps({"roots": [str(pets), str(pets), str(pets / ".."), str(space / "x" / "..")]})
    )
    assert Library(tmp_path).roots == [pets, space]  # repeated and nested ones dropped


def test_one_damaged_root_never_hides_the_others(tmp_path, two_roots, builtin_encoder):
    """A damaged catalog in one root's store made search, list and index fail for all."""
    pets, space = two_roots
    library = Library(tmp_path / "data")
    library.add(pets)
    library.add(space)
    library.index(builtin_encoder, ModelChoice("builtin"))
    with library.store(space) as store:
        catalog = store.directory / "catalog.sqlite"
    catalog.write_bytes(b"garbage" * 1000)
    hits = library.search(builtin_encoder, TextQuery("a photo of a cat"), k=3)
    assert hits[0].hit.path == pets / "chelsea.png"  # pets still answers
    states = {s.path: s for s in library.states()}
    assert states[pets].indexed == 1 and not states[pets].problem
    assert "damaged" in states[space].problem
    runs = dict(library.index(builtin_encoder, ModelChoice("builtin")))
    assert runs[pets].encoded == 0 and "damaged" in runs[space]


def test_library_commands(capsys, app_paths, two_roots, tmp_path):
    import json

    pets, space = two_roots
    code, _, err = run_cli(capsys, app_paths, "library", "add", str(pets), str(space))
    assert code == 0 and str(pets) in err
    code, out, _ = run_cli(capsys, app_paths, "library", "index", "--model", "builtin", "--json")
    assert code == 0
    reports = {r["root"]: r for r in json.loads(out)}
    assert reports[str(pets)]["encoded"] == 1 and reports[str(space)]["encoded"] == 4
    pets.rename(tmp_path / "away")
    code, out, _ = run_cli(capsys, app_paths, "library", "list")
    assert code == 0 and "OFFLINE" in out and str(pets) in out
    code, out, _ = run_cli(
        capsys, app_paths, "library", "search", "a photo of a cat", "-k", "2", "--model", "builtin"
    )
    assert code == 0
    first = out.splitlines()[1]
    assert "chelsea.png" in first and "(offline)" in first
    code, _, err = run_cli(capsys, app_paths, "library", "remove", str(pets))
    assert code == 0 and "kept" in err


def test_a_root_whose_name_is_not_utf8_is_a_root_like_any_other(tmp_path, two_roots):
    """Such a folder (an old drive's Latin-1 name) was refused: 'cannot be a root yet'."""
    import os

    from tests.fakes import FakeEncoder

    pets, _ = two_roots
    odd = tmp_path / os.fsdecode(b"Ferienfotos-Sch\xf6nbrunn")
    shutil.copytree(pets, odd)
    library = Library(tmp_path / "data")
    assert library.add(odd) == odd
    assert Library(tmp_path / "data").roots == [odd]  # remembered exactly
    encoder = FakeEncoder()
    reports = dict(library.index(encoder, ModelChoice("builtin")))
    assert reports[odd].encoded == 1
    hits = library.search(encoder, TextQuery("anything"), k=3)
    assert [h.hit.path for h in hits] == [odd / "chelsea.png"] and not hits[0].offline
    assert library.thumbnails(hits)[0] is not None
    odd.rename(tmp_path / "unplugged")
    hits = library.search(encoder, TextQuery("anything"), k=3)
    assert hits[0].hit.path == odd / "chelsea.png" and hits[0].offline
    assert library.states(encoder.id)[0].indexed == 1
