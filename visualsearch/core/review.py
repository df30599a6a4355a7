"""The review queue: proposals a person goes through one by one — accept, reject, give
another label — with every step undoable. No Qt: the window's Sort page drives it
from the keyboard and tests drive it directly."""

from __future__ import annotations

from dataclasses import dataclass, field

from visualsearch.core.labels import LabelBook, Previous
from visualsearch.core.proposals import Proposals


@dataclass(frozen=True)
class Proposal:
    path: str  # catalog path
    hash: str
    label: int  # label id proposed
    confidence: float


@dataclass(frozen=True)
class _Step:
    """One decision, and what undoing it needs."""

    position: int  # where the proposal stood in the queue
    proposal: Proposal
    previous: Previous = field(default_factory=dict)  # labels before an accept or assign
    rejected: bool = False


@dataclass(frozen=True)
class _Batch:
    """Several proposals accepted at once."""

    steps: list[_Step]
    previous: Previous


ORDERS = ("sure", "teach")  # most confident first; "teach me": the most uncertain first


class ReviewQueue:
    """Proposals in review order, for one label or for all (`label` None)."""

    def __init__(self, book: LabelBook) -> None:
        self.book = book
        self.items: list[Proposal] = []
        self.order = "sure"
        self.label: int | None = None
        self._all: list[Proposal] = []
        self._done: list[_Step | _Batch] = []

    def load(self, proposals: Proposals, paths: list[str], hashes: dict[str, str]) -> None:
        """New proposals (after a retrain): `paths` are the rows' catalog paths, `hashes`
        their contents. What was decided stays decided; the undo history is kept."""
        self._all = [
            Proposal(paths[r], hashes[paths[r]], int(label), float(c))
            for r, label, c in zip(
                proposals.rows.tolist(),
                proposals.labels.tolist(),
                proposals.confidence.tolist(),
                strict=True,
            )
            if paths[r] in hashes
        ]
        self._refresh()

    def load_nothing(self) -> None:
        """No proposals can be made (too few examples): the queue is empty."""
        self._all = []
        self._refresh()

    def show(self, label: int | None = None, order: str | None = None) -> None:
        """Review the proposals of `label` (None: every label), in `order`."""
        if order is not None and order not in ORDERS:
            raise ValueError(f"unknown review order {order!r}")
        self.label, self.order = label, order or self.order
        self._refresh()

    def _refresh(self) -> None:
        items = [p for p in self._all if self.label is None or p.label == self.label]
        sure_first = self.order == "sure"
        items.sort(key=lambda p: -p.confidence if sure_first else abs(p.confidence - 0.5))
        self.items = items

    # -- decisions (each one undoable) --------------------------------------------------

    def accept(self, position: int) -> Proposal:
        """The proposal is right: its image gets the label and becomes an example."""
        p = self._take(position)
        previous = self.book.assign([p.hash], p.label, "accepted")
        self._done.append(_Step(position, p, previous))
        return p

    def reject(self, position: int) -> Proposal:
        """The proposal is wrong: that label is not proposed for the image again."""
        p = self._take(position)
        self.book.reject(p.hash, p.label)
        self._done.append(_Step(position, p, rejected=True))
        return p

    def assign(self, position: int, label: int) -> Proposal:
        """The image gets `label`, whatever was proposed."""
        p = self._take(position)
        previous = self.book.assign([p.hash], label, "user")
        self._done.append(_Step(position, p, previous))
        return p

    def undo(self) -> int | None:
        """Take the last decision back: the proposal returns where it stood. Its position
        (None when there was nothing to undo)."""
        if not self._done:
            return None
        step = self._done.pop()
        if isinstance(step, _Batch):
            self.book.restore(step.previous)
            for s in step.steps:  # in the order they stood
                self._all.append(s.proposal)
                self.items.insert(min(s.position, len(self.items)), s.proposal)
            return step.steps[0].position
        if step.rejected:
            self.book.unreject(step.proposal.hash, step.proposal.label)
        else:
            self.book.restore(step.previous)
        self._all.append(step.proposal)
        position = min(step.position, len(self.items))
        self.items.insert(position, step.proposal)
        return position

    def accept_sure(self, threshold: float) -> int:
        """Accept every proposal shown whose confidence reaches `threshold`, as one
        decision (one undo takes them all back). How many."""
        chosen = [i for i, p in enumerate(self.items) if p.confidence >= threshold]
        steps = [_Step(i, self.items[i]) for i in chosen]
        if not steps:
            return 0
        previous: Previous = {}
        for label in {s.proposal.label for s in steps}:
            mine = [s.proposal.hash for s in steps if s.proposal.label == label]
            previous.update(self.book.assign(mine, label, "accepted"))
        for i in reversed(chosen):
            self._all.remove(self.items.pop(i))
        self._done.append(_Batch(steps, previous))
        return len(steps)

    def can_undo(self) -> bool:
        return bool(self._done)

    def _take(self, position: int) -> Proposal:
        if not 0 <= position < len(self.items):
            raise IndexError(f"no proposal at {position} (the queue holds {len(self.items)})")
        p = self.items.pop(position)
        self._all.remove(p)
        return p
