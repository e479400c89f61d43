"""Augmentation search: the leaderboard of policies tried so far, shown while a search runs."""

from __future__ import annotations

from textual.widgets import DataTable

from vistrain.events import AugmentTrial, Event, StageStarted


def _policy_text(policy) -> str:
    if isinstance(policy, dict):
        return ", ".join(f"{k}={v}" for k, v in policy.items())
    return str(policy)


class AugmentLeaderboard(DataTable):
    """Rank, score and policy of the best trials; hidden until a trial arrives and after the search."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="none", zebra_stripes=True, **kwargs)
        self.trials_seen = 0
        self._done = False

    def on_mount(self) -> None:
        self.add_columns("#", "val top-1", "policy")

    def apply(self, event: Event) -> None:
        """Redraw the table from *event*'s leaderboard; hide it once training moves on."""
        if isinstance(event, AugmentTrial):
            self.trials_seen += 1
            self.display = True
            self._done = event.trial >= event.trials
            self.border_title = f"augment search · trial {event.trial}/{event.trials}"
            board = event.leaderboard or [{"policy": event.policy, "score": event.score}]
            self.clear()
            for rank, entry in enumerate(board, start=1):
                score = entry.get("score")
                score_text = f"{100 * score:.2f}%" if isinstance(score, (int, float)) else "-"
                self.add_row(str(rank), score_text, _policy_text(entry.get("policy", entry)))
        elif isinstance(event, StageStarted) and self._done:
            self.display = False
