// The palette's icon names (journeys/nodes) as glyphs: no icon font to load for one island.
const GLYPHS = {
  bolt: '⚡',
  users: '👥',
  tag: '🏷',
  'tag-off': '⌫',
  clock: '⏱',
  hourglass: '⏳',
  split: '⑂',
  shuffle: '⇄',
  flag: '⚑',
  stop: '⏹',
  send: '✉',
  pencil: '✎',
  star: '★',
  form: '▤',
  qrcode: '▦',
  calendar: '📅',
};

export function iconGlyph(name) {
  return GLYPHS[name] ?? '●';
}
