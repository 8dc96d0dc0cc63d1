import { useEffect, useState } from 'react';
import { ApiError } from './api.js';
import { DurationInput } from './ConfigPanel.jsx';

// The canvas's dialogs: the keyboard shortcuts, the publishing confirmation, the journey's settings.

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

// The API's 400 answer as one message per field.
function messagesByField(error) {
  if (!(error instanceof ApiError) || !error.body || typeof error.body !== 'object') return { '': error.message };
  if (error.status === 409) return { '': error.body.detail ?? error.message };
  return Object.fromEntries(
    Object.entries(error.body).map(([field, messages]) => [field === 'detail' ? '' : field, [messages].flat().join(' ')]),
  );
}

// Name, description and who may enter how often: saved through the journey's API at once, each
// refusal shown under its field.
export function JourneySettingsDialog({ strings, journey, entryPolicies, onSave, onClose }) {
  const [name, setName] = useState(journey.name ?? '');
  const [description, setDescription] = useState(journey.description ?? '');
  const [policy, setPolicy] = useState(journey.entry_policy);
  const [cooldown, setCooldown] = useState(journey.cooldown_seconds ?? null);
  const [keyProperty, setKeyProperty] = useState(journey.entry_key_property ?? '');
  const [errors, setErrors] = useState({});
  const [saving, setSaving] = useState(false);

  const submit = async (event) => {
    event.preventDefault();
    const cooldownSeconds = cooldown > 0 ? cooldown : null;
    if (policy === 'after_cooldown' && !cooldownSeconds) {
      setErrors({ cooldown_seconds: strings.cooldownRequired });
      return;
    }
    setSaving(true);
    setErrors({});
    try {
      await onSave({
        name,
        description,
        entry_policy: policy,
        cooldown_seconds: cooldownSeconds,
        entry_key_property: keyProperty,
      });
    } catch (error) {
      setErrors(messagesByField(error));
      setSaving(false);
    }
  };
  const shown = new Set(['name', 'description', 'entry_policy', 'cooldown_seconds', 'entry_key_property']);
  const other = Object.entries(errors)
    .filter(([field, message]) => !shown.has(field) && message)
    .map(([, message]) => message)
    .join(' ');
  const fieldError = (field) => errors[field] && <span className="field__error">{errors[field]}</span>;

  return (
    <Dialog title={strings.settings} onClose={saving ? () => {} : onClose} labelledBy="journey-settings-title">
      <form className="settings-form" onSubmit={submit} noValidate data-settings-form>
        <div className={`field${errors.name ? ' field--invalid' : ''}`} data-field="name">
          <label className="field__label" htmlFor="settings-name">
            {strings.name}
          </label>
          <input id="settings-name" maxLength={200} value={name} onChange={(e) => setName(e.target.value)} autoFocus />
          {fieldError('name')}
        </div>
        <div className={`field${errors.description ? ' field--invalid' : ''}`} data-field="description">
          <label className="field__label" htmlFor="settings-description">
            {strings.description}
          </label>
          <textarea id="settings-description" rows={3} value={description} onChange={(e) => setDescription(e.target.value)} aria-describedby="settings-description-help" />
          <span className="field__help muted" id="settings-description-help">
            {strings.descriptionHelp}
          </span>
          {fieldError('description')}
        </div>
        <fieldset className="settings-policy" data-field="entry_policy">
          <legend className="field__label">{strings.entryPolicy}</legend>
          {entryPolicies.map((choice) => (
            <div key={choice.value} className={`settings-policy__choice${policy === choice.value ? ' settings-policy__choice--chosen' : ''}`}>
              <label className="settings-policy__label">
                <input type="radio" name="entry_policy" value={choice.value} checked={policy === choice.value} onChange={() => setPolicy(choice.value)} />
                <span>
                  <strong>{choice.label}</strong>
                  <span className="field__help muted">{strings[`entryPolicyHelp.${choice.value}`]}</span>
                </span>
              </label>
              {choice.value === 'after_cooldown' && policy === 'after_cooldown' && (
                <div className={`field settings-policy__extra${errors.cooldown_seconds ? ' field--invalid' : ''}`} data-field="cooldown_seconds">
                  <label className="field__label" htmlFor="settings-cooldown">
                    {strings.cooldown}
                  </label>
                  <DurationInput id="settings-cooldown" value={cooldown} onChange={setCooldown} strings={strings} />
                  {fieldError('cooldown_seconds')}
                </div>
              )}
              {choice.value === 'once_per_key' && policy === 'once_per_key' && (
                <div className={`field settings-policy__extra${errors.entry_key_property ? ' field--invalid' : ''}`} data-field="entry_key_property">
                  <label className="field__label" htmlFor="settings-key">
                    {strings.entryKeyProperty}
                  </label>
                  <input id="settings-key" maxLength={200} placeholder="order_id" value={keyProperty} onChange={(e) => setKeyProperty(e.target.value)} />
                  {fieldError('entry_key_property')}
                </div>
              )}
            </div>
          ))}
          {fieldError('entry_policy')}
        </fieldset>
        {other && (
          <p className="field__error" role="alert">
            {other}
          </p>
        )}
        <div className="editor-dialog__actions">
          <button type="button" className="button" onClick={onClose} disabled={saving}>
            {strings.cancel}
          </button>
          <button type="submit" className="button button--primary" disabled={saving} data-save-settings>
            {strings.save}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
