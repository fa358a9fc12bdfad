"""The group view's decisions: label, noise or mixed for the shown group (or the selected
items), split and merge. Mixed into GroupView, whose grid, model and session it uses."""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtWidgets import QInputDialog

from ui.session import GROUP_DECISION, GROUPS, LABELS


def merge_choice(group: Any, topic: Optional[str]) -> str:
    """How "merge with" names a group: its id, size, decision and topic words."""
    text = f"group {group.group_id} · {group.size} items · {group.label or group.status}"
    return text + (f" · {topic}" if topic else f" · topic {group.topic}")


class GroupDecisions:
    """Deciding what GroupView shows (it sets `source`, `model`, `grid`, `session`, …)."""

    # --- decisions ------------------------------------------------------------------------

    def decide(self, action: str, label: Optional[str] = None) -> None:
        """Decide the shown group (minus exclusions): assign a label, noise or mixed."""
        if self.source is None:
            self.message.emit("open a group first")
            return
        excluded = sorted(self.model.excluded)
        what = label if action == "assign" else action
        if self.source.group_id is None:
            items = [i for i in self.model.ids() if i not in self.model.excluded]
            if not items:
                self.message.emit("every item is excluded; nothing to label")
                return
            if len(items) > self.BULK_GUARD and not self._confirm_bulk(items, what, label):
                self.message.emit("nothing labelled")
                return
            self.session.write(
                lambda p: p.label_items(items, label, action=action, source="manual",
                                        note=f"{self.source.kind}: {self.source.title}"),
                changes=LABELS, name="label items",
                on_result=lambda ev: self._after_temp_decision(len(items), what))
            return
        gid = self.source.group_id
        status = {"assign": "labelled", "noise": "noise", "mixed": "mixed"}.get(action, action)
        self.session.write(lambda p: p.label_group(gid, label, action=action, exclude=excluded),
                           changes=GROUP_DECISION, name="label group",
                           on_result=lambda ev: self._after_decision(gid, what, excluded,
                                                                     status, label or ""))

    def _confirm_bulk(self, items: list[int], what: Optional[str],
                      label: Optional[str]) -> bool:
        """Ask once before a temporary group (search, lasso) of many items is labelled."""
        from PySide6.QtWidgets import QMessageBox

        other = self.model.carrying_other(label, items)
        text = (f"Label all {len(items)} items of “{self.source.title}” as {what}?"
                + (f"\n\n{other} of them already carry another label or decision and would "
                   "be relabelled." if other else "")
                + "\n\nExclude items with X first to leave them out.")
        answer = QMessageBox.question(self, f"Label {len(items)} items?", text,
                                      QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _after_decision(self, gid: int, what: Optional[str], excluded: list[int], status: str,
                        label: str) -> None:
        extra = f", {len(excluded)} excluded" if excluded else ""
        self.message.emit(f"group {gid} → {what}{extra} (Ctrl+Z undoes)")
        self.decided.emit(gid, status, label)
        self._moved_on = self.group_id != gid

    def _after_temp_decision(self, count: int, what: Optional[str]) -> None:
        self.message.emit(f"{count} items → {what} (Ctrl+Z undoes)")
        self.model.excluded.clear()
        self.grid.viewport().update()
        self._update_title()

    def label_selection(self, label: Optional[str] = None) -> None:
        """Label only the selected items (a label name, or asks which; noise/mixed allowed)."""
        items = self.selected_items()
        if not items:
            self.message.emit("select items first (click, Shift+click, Ctrl+A)")
            return
        action = "assign"
        if label is None:
            choices = [lab.path for lab in self.labels] + ["(noise)", "(mixed)", "(clear)"]
            label, ok = QInputDialog.getItem(self, "Label selected items",
                                             f"Label for {len(items)} selected item(s):",
                                             choices, 0, False)
            if not ok:
                return
        if label in ("(noise)", "(mixed)", "(clear)"):
            action, label = label.strip("()"), None
        self.session.write(lambda p: p.label_items(items, label, action=action, source="manual"),
                           changes=LABELS, name="label selection",
                           on_result=lambda ev: self.message.emit(
                               f"{len(items)} selected items → {label or action} (Ctrl+Z undoes)"))

    def split(self, k: Optional[int] = None) -> None:
        """Split the shown group into k sub-groups (asks, default 2) and show the first."""
        if self.group_id is None:
            self.message.emit("only a group of the clustering can be split")
            return
        if k is None:
            k, ok = QInputDialog.getInt(self, "Split group",
                                        f"Split group {self.group_id} into how many groups?",
                                        2, 2, 8)
            if not ok:
                return
        gid = self.group_id
        self.session.write(lambda p: p.split(gid, k), changes=GROUPS, name="split",
                           on_result=lambda new: self._created(new, f"group {gid} split into "
                                                               f"{', '.join(map(str, new))}"))

    def merge_with(self, other: Optional[int] = None) -> None:
        """Merge the shown group with another one (asks which) and show the result.

        The choices name each group's size, decision and topic words; topics the queue has not
        named yet are read first, in the background."""
        if self.group_id is None:
            self.message.emit("only a group of the clustering can be merged")
            return
        gid = self.group_id
        if other is not None:
            self._merge(gid, other)
            return
        space = self.info.get("space")
        rows = [g for g in (self.queue_model.groups() if self.queue_model is not None else [])
                if g.group_id != gid and (space is None or g.space == space)]
        if not rows:
            self.message.emit("no other group of this embedding space to merge with")
            return
        names = self.queue_model.topic_names
        missing = [g.group_id for g in rows if g.group_id not in names]
        if not missing:
            self._ask_merge(gid, rows)
            return
        run_id = rows[0].run_id

        def named(found: dict[int, str]) -> None:
            self.queue_model.set_topic_names(found)
            self._ask_merge(gid, rows)

        self.message.emit("naming the groups to merge with…")
        self.session.read(lambda p: {g: f.topic_text() for g, f in
                                     p.group_facts(missing, run_id).items()},
                          key="merge-topics", name="merge topics", priority=1, on_result=named,
                          on_error=lambda err: self._ask_merge(gid, rows))

    def _ask_merge(self, gid: int, rows: list[Any]) -> None:
        if self.group_id != gid:  # the user moved on while the topics were read
            return
        names = self.queue_model.topic_names
        choices = [(g.group_id, merge_choice(g, names.get(g.group_id))) for g in rows]
        text, ok = QInputDialog.getItem(self, "Merge with", f"Merge group {gid} with:",
                                        [t for _, t in choices], 0, False)
        if ok:
            self._merge(gid, next(g for g, t in choices if t == text))

    def _merge(self, gid: int, other: int) -> None:
        self.session.write(lambda p: p.merge([gid, other]), changes=GROUPS, name="merge",
                           on_result=lambda new: self._created([new], f"groups {gid} and {other} "
                                                               f"merged into {new}"))

    def _created(self, new_ids: list[int], text: str) -> None:
        self.message.emit(text)
        if new_ids:
            self.group_created.emit(int(new_ids[0]))

