"""The library's other roots are kept up to date while the window is open: checked at
start (what changed while the app was closed) and watched from then on."""

from __future__ import annotations

import shutil

from tests.conftest import distinct_images
from tests.fakes import FakeEncoder, HeldEncoder
from visualsearch.core.calibration import calibration
from visualsearch.core.folder import ModelChoice
from visualsearch.core.library import Library
from visualsearch.core.store import Store, default_store_dir

TIMEOUT_MS = 30_000


def _paths_in_store(root, store_base) -> set[str]:
    with Store(default_store_dir(root, store_base)) as store:
        return {r.path for r in store.image_records()}


def test_other_roots_are_checked_at_start_and_watched(
    qtbot, make_window, tmp_path, app_paths, empty_library
):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    distinct_images(a, 2, size=64)
    photos = distinct_images(b, 3, size=80)
    distinct_images(c, 1, size=72)
    extra = distinct_images(tmp_path / "extra", 6, size=96)
    library = Library(app_paths.data_dir)
    for root in (a, b, c):
        library.add(root)
    library.index(FakeEncoder(), ModelChoice("builtin"))
    shutil.copy2(extra[0], b / "while-closed.jpg")  # changed while the app was closed
    c.rename(tmp_path / "c-unplugged")

    encoder = FakeEncoder()
    window = make_window(encoder=encoder)
    keeper = window.keeper
    base = window.collection.store_base
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=TIMEOUT_MS):
        window.open_folder(a)
    qtbot.waitUntil(lambda: "while-closed.jpg" in _paths_in_store(b, base), timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not keeper.jobs.busy(), timeout=TIMEOUT_MS)
    assert [root for root, _ in keeper.reports] == [b]  # a is the window's; c is offline
    assert keeper.reports[0][1].encoded == 1  # the new one only: a stat for the rest
    assert window.library_status.text() == "Library: 1 new or changed image in b"
    assert set(keeper.watchers) == {b}  # a is open: the window watches it

    shutil.copy2(extra[1], b / "arrived.jpg")  # the watcher sees these
    photos[0].unlink()
    qtbot.waitUntil(
        lambda: (
            _paths_in_store(b, base)
            == {photos[1].name, photos[2].name, "while-closed.jpg", "arrived.jpg"}
        ),
        timeout=TIMEOUT_MS,
    )
    # the store is committed before the run's report comes back (CI once read the first
    # run's report here): wait for the watcher's run to have ended
    qtbot.waitUntil(lambda: len(keeper.reports) > 1 and not keeper.jobs.busy(), timeout=TIMEOUT_MS)
    seen = [report for _, report in keeper.reports[1:]]  # one burst, or two
    assert all(report.scanned <= 2 for report in seen)  # by the paths seen, not a whole scan
    assert sum(report.encoded for report in seen) == 1
    assert encoder.images_seen == 2  # nothing else encoded again
    with qtbot.waitSignal(window.collection.indexing_finished, timeout=TIMEOUT_MS):
        window.open_folder(b)
    assert set(keeper.watchers) == {a}  # b is the window's now, a the keeper's again
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT_MS)
    assert not keeper.watchers


class OtherModel(FakeEncoder):
    id = "other-v1"


def test_a_root_is_kept_with_the_model_it_was_indexed_with(
    qtbot, make_window, tmp_path, app_paths, empty_library
):
    """The window's model is the built-in one; a root indexed with another keeps it: a
    background check never starts encoding a whole drive with a second model."""
    a, b = tmp_path / "a", tmp_path / "b"
    distinct_images(a, 2, size=64)
    distinct_images(b, 3, size=80)
    other_choice = ModelChoice("clip:ViT-B-32")
    library = Library(app_paths.data_dir)
    library.add(b)
    library.index(OtherModel(), other_choice)
    shutil.copy2(distinct_images(tmp_path / "extra", 1, size=96)[0], b / "new.jpg")

    builtin, other = FakeEncoder(), OtherModel()
    # the model's scale, read once per model off 36 reference photos and cached, is not
    # what is counted below (made here, the count no longer depends on the tests before)
    calibration(FakeEncoder(), app_paths.cache_dir)
    window = make_window(encoder=builtin, models={other_choice: other})
    window.open_folder(a)
    base = window.collection.store_base
    qtbot.waitUntil(lambda: "new.jpg" in _paths_in_store(b, base), timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not window.keeper.jobs.busy(), timeout=TIMEOUT_MS)
    assert other.images_seen == 1 and builtin.images_seen == 2  # a's two, by the window
    with Store(default_store_dir(b, base)) as store:
        assert len(store.load_vectors(OtherModel.id)[0]) == 4
        assert not store.has_vectors(FakeEncoder.id)


def test_the_window_closes_while_a_root_is_being_indexed(
    qtbot, make_window, tmp_path, app_paths, empty_library
):
    """Closing waits for the batch in flight (kept) and stops the keeper's run and its
    watchers; it never hangs."""
    a, b = tmp_path / "a", tmp_path / "b"
    distinct_images(a, 2, size=64)
    distinct_images(b, 4, size=80)
    Library(app_paths.data_dir).add(b)
    held = HeldEncoder("embed_images", TIMEOUT_MS / 1000, after=1)  # a's batch goes by
    window = make_window(encoder=held)
    window.open_folder(a)
    qtbot.waitUntil(held.holding.is_set, timeout=TIMEOUT_MS)  # b's first batch: the keeper
    assert window.keeper.jobs.busy() and not window.collection.busy()
    window.close()
    assert window.isVisible()  # waiting for the batch in flight
    held.release.set()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT_MS)
    assert window.keeper.shut and not window.keeper.watchers
    with Store(default_store_dir(b, window.collection.store_base)) as store:
        kept = store.image_records()
        assert kept and len(kept) == len(store.load_vectors(held.id)[0])  # whole batches
