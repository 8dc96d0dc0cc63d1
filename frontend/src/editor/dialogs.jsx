import { useEffect, useState } from 'react';

// The canvas's dialogs: the keyboard shortcuts and the publishing confirmation.

function Dialog({ title, children, onClose, labelledBy }) {
  useEffect(() => {
    const onKey = (event) => event.key === 'Escape' && onClose();
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose]);
  return (
    <div className="editor-dialog__backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="editor-dialog" role="dialog" aria-modal="true" aria-labelledby={labelledBy}>
        <h2 id={labelledBy}>{title}</h2>
        {children}
      </div>
    </div>
  );
}

export function ShortcutHelp({ strings, onClose }) {
  const rows = [
    ['Enter', strings['shortcut.add']],
    ['Tab', strings['shortcut.connect']],
    ['Delete / Backspace', strings['shortcut.delete']],
    ['Shift / Ctrl + click', strings['shortcut.multi']],
    ['Ctrl/⌘ + C, Ctrl/⌘ + V', strings['shortcut.copy']],
    ['Ctrl/⌘ + D', strings['shortcut.duplicate']],
    ['Ctrl/⌘ + A', strings['shortcut.all']],
    ['Ctrl/⌘ + Z', strings['shortcut.undo']],
    ['Shift + Ctrl/⌘ + Z', strings['shortcut.redo']],
    ['← ↑ → ↓', strings['shortcut.move']],
    ['?', strings['shortcut.help']],
  ];
  return (
    <Dialog title={strings.help} onClose={onClose} labelledBy="shortcut-help-title">
      <table className="shortcut-table">
        <tbody>
          {rows.map(([keys, text]) => (
            <tr key={keys}>
              <th>
                <kbd>{keys}</kbd>
              </th>
              <td>{text}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="editor-dialog__actions">
        <button type="button" className="button" onClick={onClose}>
          {strings.close}
        </button>
      </div>
    </Dialog>
  );
}

export function PublishDialog({ strings, onPublish, onClose }) {
  const [note, setNote] = useState('');
  return (
    <Dialog title={strings.publishTitle} onClose={onClose} labelledBy="publish-title">
      <p>{strings.publishExplain}</p>
      <label className="field__label" htmlFor="version-note">
        {strings.versionNote}
      </label>
      <textarea id="version-note" rows={3} maxLength={500} value={note} onChange={(e) => setNote(e.target.value)} />
      <div className="editor-dialog__actions">
        <button type="button" className="button" onClick={onClose}>
          {strings.cancel}
        </button>
        <button type="button" className="button button--primary" data-confirm-publish onClick={() => onPublish(note)}>
          {strings.publish}
        </button>
      </div>
    </Dialog>
  );
}
