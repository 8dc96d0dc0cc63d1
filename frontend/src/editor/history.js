// The editor's undo stack, in plain JS: snapshots of the whole document (nodes and edges), so every
// kind of change (adding, moving, connecting, configuring, deleting, pasting, laying out) is undone
// the same way. A change tagged with a `coalesce` key replaces nothing but merges into the entry
// before it when that entry had the same key (typing into one field is one undo step, not one per
// keystroke).

export function createHistory({ limit = 200 } = {}) {
  let past = []; // [{ snapshot, coalesce }], oldest first
  let future = [];

  return {
    // Call before applying a change, with the document as it was.
    record(snapshot, { coalesce = null } = {}) {
      const last = past[past.length - 1];
      future = [];
      if (coalesce && last && last.coalesce === coalesce) return;
      past.push({ snapshot, coalesce });
      if (past.length > limit) past = past.slice(past.length - limit);
    },
    // Returns the document to show, or null when there is nothing to undo.
    undo(current) {
      const entry = past.pop();
      if (!entry) return null;
      future.push({ snapshot: current, coalesce: null });
      return entry.snapshot;
    },
    redo(current) {
      const entry = future.pop();
      if (!entry) return null;
      past.push({ snapshot: current, coalesce: null });
      return entry.snapshot;
    },
    // Ends a run of coalesced changes (the field lost focus): the next change starts a new entry.
    seal() {
      const last = past[past.length - 1];
      if (last) last.coalesce = null;
    },
    get canUndo() {
      return past.length > 0;
    },
    get canRedo() {
      return future.length > 0;
    },
  };
}
