import { memo, useMemo, useState } from 'react';
import { iconGlyph } from './icons.js';

export const DRAG_TYPE = 'application/x-journey-node-type';

// The node types, grouped as the server groups them, filtered by the search box. A step is dragged
// onto the canvas, or added with Enter after the selected step.
function Palette({ nodeTypes, strings, onAdd, disabled }) {
  const [query, setQuery] = useState('');
  const groups = useMemo(() => {
    const needle = query.trim().toLowerCase();
    const grouped = new Map();
    for (const nodeType of nodeTypes) {
      const haystack = `${nodeType.label} ${nodeType.description} ${nodeType.type}`.toLowerCase();
      if (needle && !haystack.includes(needle)) continue;
      if (!grouped.has(nodeType.group)) grouped.set(nodeType.group, []);
      grouped.get(nodeType.group).push(nodeType);
    }
    return [...grouped.entries()];
  }, [nodeTypes, query]);

  return (
    <aside className="palette" aria-label={strings.palette}>
      <input
        type="search"
        className="palette__search"
        placeholder={strings.paletteSearch}
        aria-label={strings.paletteSearch}
        value={query}
        onChange={(event) => setQuery(event.target.value)}
      />
      <p className="palette__hint muted">{strings.paletteHint}</p>
      {groups.length === 0 && <p className="muted">{strings.noMatch}</p>}
      {groups.map(([group, items]) => (
        <section key={group} className="palette__group">
          <h3 className="palette__group-title">{group}</h3>
          {items.map((nodeType) => (
            <button
              type="button"
              key={nodeType.type}
              className={`palette__item palette__item--${nodeType.kind}`}
              data-palette-type={nodeType.type}
              title={nodeType.description}
              draggable={!disabled}
              disabled={disabled}
              onDragStart={(event) => {
                event.dataTransfer.setData(DRAG_TYPE, nodeType.type);
                event.dataTransfer.effectAllowed = 'move';
              }}
              onClick={() => onAdd(nodeType.type)}
            >
              <span className="palette__icon" aria-hidden="true">
                {iconGlyph(nodeType.icon)}
              </span>
              <span className="palette__label">{nodeType.label}</span>
            </button>
          ))}
        </section>
      ))}
    </aside>
  );
}

export default memo(Palette);
