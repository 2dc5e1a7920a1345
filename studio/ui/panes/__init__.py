"""One pane per step of the flow; each edits the shared `QtStudioState` and knows no other pane."""
