import { describe, expect, it } from 'vitest';
import { createHistory } from './history.js';

describe('the undo stack', () => {
  it('undoes and redoes changes in order', () => {
    const history = createHistory();
    history.record('a');
    history.record('b');
    expect(history.undo('c')).toBe('b');
    expect(history.undo('b')).toBe('a');
    expect(history.undo('a')).toBeNull();
    expect(history.redo('a')).toBe('b');
    expect(history.redo('b')).toBe('c');
    expect(history.redo('c')).toBeNull();
  });

  it('forgets what could be redone once a new change is made', () => {
    const history = createHistory();
    history.record('a');
    expect(history.undo('b')).toBe('a');
    expect(history.canRedo).toBe(true);
    history.record('a');
    expect(history.canRedo).toBe(false);
    expect(history.undo('x')).toBe('a');
  });

  it('makes one step of a run of changes with the same coalesce key, until sealed', () => {
    const history = createHistory();
    history.record('', { coalesce: 'name' });
    history.record('新', { coalesce: 'name' });
    history.record('新客', { coalesce: 'name' });
    history.seal();
    history.record('新客培育', { coalesce: 'name' });
    expect(history.undo('新客培育!')).toBe('新客培育');
    expect(history.undo('新客培育')).toBe('');
    expect(history.canUndo).toBe(false);
  });

  it('keeps at most its limit of steps, dropping the oldest', () => {
    const history = createHistory({ limit: 2 });
    history.record(1);
    history.record(2);
    history.record(3);
    expect(history.undo(4)).toBe(3);
    expect(history.undo(3)).toBe(2);
    expect(history.undo(2)).toBeNull();
  });
});
