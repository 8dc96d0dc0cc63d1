import { createRoot } from 'react-dom/client';
import JourneyPreview, { IslandError } from './JourneyPreview.jsx';

function readKindLabels(element) {
  const script = element.dataset.kindLabels && document.getElementById(element.dataset.kindLabels);
  if (!script) return {};
  try {
    return JSON.parse(script.textContent);
  } catch {
    return {};
  }
}

function readGraph(element) {
  const scriptId = element.dataset.graph;
  if (!scriptId) throw new Error('missing data-graph attribute');
  const script = document.getElementById(scriptId);
  if (!script) throw new Error(`no graph data found (#${scriptId})`);
  try {
    return JSON.parse(script.textContent);
  } catch {
    throw new Error(`graph data in #${scriptId} is not valid JSON`);
  }
}

function mountJourneyPreviews() {
  for (const element of document.querySelectorAll('[data-island="journey-preview"]')) {
    const root = createRoot(element);
    try {
      root.render(<JourneyPreview graph={readGraph(element)} kindLabels={readKindLabels(element)} />);
    } catch (error) {
      root.render(<IslandError message={`Cannot show this journey: ${error.message}`} />);
    }
  }
}

function readSetup(element) {
  const script = document.getElementById(element.dataset.setup);
  return JSON.parse(script.textContent);
}

// The editor is loaded only by the pages that have one: the previews stay light.
async function mountJourneyEditors() {
  const elements = document.querySelectorAll('[data-island="journey-editor"]');
  if (!elements.length) return;
  const { default: JourneyEditor } = await import('./editor/JourneyEditor.jsx');
  for (const element of elements) {
    const root = createRoot(element);
    try {
      root.render(<JourneyEditor setup={readSetup(element)} />);
    } catch (error) {
      root.render(<IslandError message={error.message} />);
    }
  }
}

function mountIslands() {
  mountJourneyPreviews();
  mountJourneyEditors();
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', mountIslands, { once: true });
} else {
  mountIslands();
}
