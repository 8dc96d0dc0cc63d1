import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import {
  Background,
  BackgroundVariant,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  applyNodeChanges,
  useNodesInitialized,
  useReactFlow,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import './editor.css';
import { api, apiRows, ApiError } from './api.js';
import ConfigPanel from './ConfigPanel.jsx';
import { EditorContext } from './EditorContext.js';
import { createHistory } from './history.js';
import { layoutNodes } from './layout.js';
import {
  STEP,
  connectionProblem,
  copySelection,
  editorToGraph,
  graphToEditor,
  initialConfig,
  makeEdge,
  newNodeId,
  outputHandles,
  pasteClipboard,
  problemsByNode,
} from './model.js';
import { JourneySettingsDialog, PublishDialog, ShortcutHelp } from './dialogs.jsx';
import Palette, { DRAG_TYPE } from './Palette.jsx';
import { fill, problemBranch } from './schema.js';
import StepNode from './StepNode.jsx';
import TestRunPanel from './TestRunPanel.jsx';
import { stepMove, testRunPath, visitAfter } from './testRun.js';
import { useLiveCounts } from './useLiveCounts.js';

const nodeTypesForFlow = { [STEP]: StepNode };
// React Flow hands the props it is given to its store and to every node: the same objects on every
// render, or each frame of a drag would update the store and draw every node again.
const MULTI_SELECTION_KEYS = ['Meta', 'Control', 'Shift'];
const DEFAULT_EDGE_OPTIONS = { type: 'smoothstep' };
const FIT_VIEW_OPTIONS = { maxZoom: 1 };
const PRO_OPTIONS = { hideAttribution: true };
const SAVE_DELAY_MS = 800;
const RETRY_DELAY_MS = 5000;
const SETTINGS = ['name', 'description', 'entry_policy', 'cooldown_seconds', 'entry_key_property', 'priority'];

// What an API error says, in the server's words (its messages are translated there).
function errorText(error) {
  if (!(error instanceof ApiError) || !error.body || typeof error.body !== 'object') return error.message;
  if (typeof error.body.detail === 'string') return error.body.detail;
  return Object.values(error.body).flat().filter((part) => typeof part === 'string').join(' ') || error.message;
}

function isTyping(target) {
  return target instanceof HTMLElement && (target.closest('input, textarea, select, [contenteditable=true]') !== null);
}

function Editor({ setup }) {
  const { strings, urls } = setup;
  const flow = useReactFlow();
  const [loadError, setLoadError] = useState('');
  const [nodeTypes, setNodeTypes] = useState(null);
  const [journey, setJourney] = useState(null);
  const [nodes, setNodes] = useState([]);
  const [edges, setEdges] = useState([]);
  const [name, setName] = useState('');
  const [options, setOptions] = useState({ tags: [], segments: [], templates: [], accounts: [], events: [] });
  const [problems, setProblems] = useState(null); // null: not validated yet
  const [saveState, setSaveState] = useState('saved');
  const [saveError, setSaveError] = useState('');
  const [conflict, setConflict] = useState(null);
  const [versions, setVersions] = useState([]);
  const [view, setView] = useState({ mode: 'draft' }); // draft | version | live
  const [dialog, setDialog] = useState(null); // help | publish | settings
  // Test run: the panel open beside the canvas, the last run's report, the step shown.
  const [testOpen, setTestOpen] = useState(false);
  const [testReport, setTestReport] = useState(null);
  const [testStep, setTestStep] = useState(0);
  const [notice, setNotice] = useState('');
  const [, setHistoryTick] = useState(0);

  const history = useRef(createHistory());
  const doc = useRef({ nodes: [], edges: [], name: '' });
  doc.current = { nodes, edges, name };
  const revision = useRef(0);
  const changeCount = useRef(0);
  const savedCount = useRef(0);
  const saving = useRef(null);
  const clipboard = useRef(null);
  const dragStart = useRef(null);
  const wrapper = useRef(null);
  // Fitting the view is for opening a drawn journey; on an empty canvas the first dropped step
  // must stay where it was dropped.
  const fitOnOpen = useRef(false);
  // Switching to a version fits it once its steps have been measured.
  const fitPending = useRef(false);
  const nodesMeasured = useNodesInitialized();
  // Read by the save loop between awaits, before React has drawn the conflict.
  const conflictRef = useRef(null);
  conflictRef.current = conflict;

  const typesByKey = useMemo(() => Object.fromEntries((nodeTypes ?? []).map((t) => [t.type, t])), [nodeTypes]);
  // While a test run is shown the drawing holds still: its path is what was run.
  const editable = setup.canEdit && view.mode === 'draft' && !testOpen;

  // -- loading ------------------------------------------------------------------------------------
  const loadVersions = useCallback(async () => {
    const rows = await apiRows(urls.versions);
    setVersions(rows);
    return rows;
  }, [urls.versions]);

  useEffect(() => {
    let cancelled = false;
    (async () => {
      try {
        const [types, loaded] = await Promise.all([api(urls.nodeTypes), api(urls.journey)]);
        if (cancelled) return;
        const { nodes: loadedNodes, edges: loadedEdges } = graphToEditor(loaded.draft_graph ?? {});
        setNodeTypes(types);
        setJourney(loaded);
        revision.current = loaded.draft_revision;
        fitOnOpen.current = loadedNodes.length > 0;
        setNodes(loadedNodes);
        setEdges(loadedEdges);
        setName(loaded.name);
      } catch (error) {
        if (!cancelled) setLoadError(fill(strings.loadFailed, { reason: error.message }));
      }
      const published = await loadVersions();
      // Someone who may only look sees what customers go through, with its counts.
      if (!cancelled && !setup.canEdit && published.length) setView({ mode: 'live', version: published[0] });
      const [tags, segments, templates, accounts, vocabulary] = await Promise.all([
        apiRows(urls.tags),
        apiRows(urls.segments),
        apiRows(urls.templates),
        apiRows(urls.accounts),
        api(urls.vocabulary).catch(() => ({ events: [] })),
      ]);
      if (!cancelled) setOptions({ tags, segments, templates, accounts, events: vocabulary?.events ?? [] });
    })();
    return () => {
      cancelled = true;
    };
  }, []); // once, when the island mounts

  const names = useMemo(
    () => ({
      tags: Object.fromEntries(options.tags.map((t) => [t.key, t.name])),
      segments: Object.fromEntries(options.segments.map((s) => [s.key, s.name])),
      templates: Object.fromEntries(options.templates.map((t) => [t.key, t.name])),
      accounts: Object.fromEntries(options.accounts.map((a) => [String(a.id), a.name])),
    }),
    [options],
  );

  // -- changing the document: every change goes through here, so it can be undone and is saved ----
  const change = useCallback((next, { coalesce = null } = {}) => {
    const current = doc.current;
    history.current.record({ nodes: current.nodes, edges: current.edges, name: current.name }, { coalesce });
    if (next.nodes) setNodes(next.nodes);
    if (next.edges) setEdges(next.edges);
    if (next.name !== undefined) setName(next.name);
    changeCount.current += 1;
    setSaveState('dirty');
    setHistoryTick((tick) => tick + 1);
  }, []);

  const restore = useCallback((snapshot) => {
    setNodes(snapshot.nodes.map((node) => ({ ...node, selected: false })));
    setEdges(snapshot.edges);
    setName(snapshot.name);
    changeCount.current += 1;
    setSaveState('dirty');
    setHistoryTick((tick) => tick + 1);
  }, []);

  const undo = useCallback(() => {
    const snapshot = history.current.undo(doc.current);
    if (snapshot) restore(snapshot);
  }, [restore]);

  const redo = useCallback(() => {
    const snapshot = history.current.redo(doc.current);
    if (snapshot) restore(snapshot);
  }, [restore]);

  // -- saving ---------------------------------------------------------------------------------------
  const save = useCallback(async () => {
    if (saving.current) return saving.current;
    if (savedCount.current === changeCount.current) return null;
    const upTo = changeCount.current;
    const { nodes: docNodes, edges: docEdges, name: docName } = doc.current;
    const body = {
      ...Object.fromEntries(SETTINGS.map((key) => [key, journey[key]])),
      name: docName.trim() || journey.name,
      draft_graph: editorToGraph(docNodes, docEdges, typesByKey),
      draft_revision: revision.current,
    };
    setSaveState('saving');
    saving.current = (async () => {
      try {
        const saved = await api(urls.journey, { method: 'PUT', body });
        revision.current = saved.draft_revision;
        savedCount.current = upTo;
        setJourney(saved);
        setSaveError('');
        setSaveState(savedCount.current === changeCount.current ? 'saved' : 'dirty');
      } catch (error) {
        if (error instanceof ApiError && error.status === 409 && error.body?.current) {
          conflictRef.current = error.body.current;
          setConflict(error.body.current);
          setSaveState('conflict');
        } else {
          setSaveError(errorText(error));
          setSaveState('error');
        }
      } finally {
        saving.current = null;
      }
    })();
    return saving.current;
  }, [journey, typesByKey, urls.journey]);

  // Saves until what is shown is saved (a change made while a save runs is saved by the next
  // round); false when a conflict or an error, both shown on the page, stops it.
  const saveAll = useCallback(async () => {
    for (let round = 0; round < 3; round += 1) {
      if (saving.current) await saving.current;
      if (conflictRef.current) return false;
      if (savedCount.current === changeCount.current) return true;
      await save();
    }
    return savedCount.current === changeCount.current && !conflictRef.current;
  }, [save]);

  useEffect(() => {
    // A failed save (the network, the server) is tried again a little later; nothing is dropped.
    if (!['dirty', 'error'].includes(saveState) || !setup.canEdit || conflict) return undefined;
    const timer = setTimeout(save, saveState === 'error' ? RETRY_DELAY_MS : SAVE_DELAY_MS);
    return () => clearTimeout(timer);
  }, [saveState, nodes, edges, name, save, setup.canEdit, conflict]);

  useEffect(() => {
    const warn = (event) => {
      if (savedCount.current !== changeCount.current && setup.canEdit) {
        event.preventDefault();
        event.returnValue = '';
      }
    };
    window.addEventListener('beforeunload', warn);
    return () => window.removeEventListener('beforeunload', warn);
  }, [setup.canEdit]);

  const takeTheirs = useCallback(() => {
    // Ours stays one Undo away: nothing typed is lost.
    const theirs = graphToEditor(conflict.draft_graph ?? {});
    history.current.record({ ...doc.current });
    setNodes(theirs.nodes);
    setEdges(theirs.edges);
    setName(conflict.name);
    setJourney(conflict);
    revision.current = conflict.draft_revision;
    changeCount.current += 1;
    savedCount.current = changeCount.current;
    conflictRef.current = null;
    setConflict(null);
    setSaveState('saved');
    setHistoryTick((tick) => tick + 1);
    setNotice(strings.conflictUndoHint);
  }, [conflict, strings.conflictUndoHint]);

  const keepMine = useCallback(() => {
    revision.current = conflict.draft_revision;
    setJourney((old) => ({ ...conflict, name: old.name }));
    conflictRef.current = null;
    setConflict(null);
    setSaveState('dirty');
  }, [conflict]);

  // -- validating and publishing -------------------------------------------------------------------
  const validate = useCallback(async () => {
    const graph = editorToGraph(doc.current.nodes, doc.current.edges, typesByKey);
    const result = await api(urls.validate, { method: 'POST', body: { graph } });
    setProblems(result.problems);
    return result.problems;
  }, [typesByKey, urls.validate]);

  // Once the marketer has asked for the problems, they follow the drawing as it changes.
  useEffect(() => {
    if (problems === null || view.mode !== 'draft') return undefined;
    const timer = setTimeout(() => validate().catch(() => {}), SAVE_DELAY_MS);
    return () => clearTimeout(timer);
  }, [nodes, edges]); // eslint-disable-line react-hooks/exhaustive-deps -- after a drawing change only

  const publish = useCallback(
    async (note) => {
      setDialog(null);
      if (!(await saveAll())) return; // the conflict or the save's error is on the page
      try {
        const version = await api(urls.publish, { method: 'POST', body: { note } });
        setProblems([]);
        setNotice(fill(strings.published, { number: version.number }));
        setJourney(await api(urls.journey));
        loadVersions();
      } catch (error) {
        if (error instanceof ApiError && error.body?.problems) setProblems(error.body.problems);
        else setNotice(error.message);
      }
    },
    [loadVersions, saveAll, strings.published, urls.journey, urls.publish],
  );

  const setStatus = useCallback(
    async (action) => {
      try {
        setJourney(await api(urls[action], { method: 'POST' }));
      } catch (error) {
        setNotice(errorText(error));
      }
    },
    [urls],
  );

  // -- the journey's settings ----------------------------------------------------------------------
  // Saved at once, with the drawing as it is (saved first, so the revision is the latest); the
  // server's field errors go back to the dialog.
  const saveSettings = useCallback(
    async (settings) => {
      if (!(await saveAll())) throw new Error(conflictRef.current ? strings.conflict : strings.settingsNotSaved);
      const { nodes: docNodes, edges: docEdges } = doc.current;
      const body = {
        ...Object.fromEntries(SETTINGS.map((key) => [key, journey[key]])),
        ...settings,
        draft_graph: editorToGraph(docNodes, docEdges, typesByKey),
        draft_revision: revision.current,
      };
      const request = api(urls.journey, { method: 'PUT', body });
      saving.current = request.catch(() => null);
      try {
        const saved = await request;
        revision.current = saved.draft_revision;
        setJourney(saved);
        setName(saved.name);
        setDialog(null);
        setNotice(strings.settingsSaved);
      } catch (error) {
        if (error instanceof ApiError && error.status === 409 && error.body?.current) {
          conflictRef.current = error.body.current;
          setConflict(error.body.current);
          setSaveState('conflict');
        }
        throw error;
      } finally {
        saving.current = null;
      }
    },
    [journey, saveAll, strings.conflict, strings.settingsNotSaved, strings.settingsSaved, typesByKey, urls.journey],
  );

  // -- test run ------------------------------------------------------------------------------------
  const testPath = useMemo(() => (testReport ? testRunPath(testReport, edges) : null), [testReport, edges]);

  const focusTestStep = useCallback(
    (index) => {
      const step = testPath?.steps[stepMove(index, 0, testPath.steps.length)];
      if (!step) return;
      setTestStep(step.order - 1);
      const shownNode = flow.getNode(step.node);
      const pane = wrapper.current?.querySelector('.react-flow')?.getBoundingClientRect();
      if (!shownNode || !pane) return;
      const width = shownNode.measured?.width ?? 220;
      const height = shownNode.measured?.height ?? 100;
      // A step already in view stays where it is: the path around it keeps its place.
      const topLeft = flow.flowToScreenPosition(shownNode.position);
      const bottomRight = flow.flowToScreenPosition({ x: shownNode.position.x + width, y: shownNode.position.y + height });
      const margin = 24;
      const inView =
        topLeft.x >= pane.left + margin &&
        topLeft.y >= pane.top + margin &&
        bottomRight.x <= pane.right - margin &&
        bottomRight.y <= pane.bottom - margin;
      if (inView) return;
      flow.setCenter(shownNode.position.x + width / 2, shownNode.position.y + height / 2, {
        zoom: Math.max(flow.getZoom(), 0.6),
        duration: 250,
      });
    },
    [flow, testPath],
  );

  // Runs the draft as saved, so the run is of what the canvas shows.
  const runTest = useCallback(
    async (request) => {
      if (!(await saveAll())) throw new Error(strings.testNotSaved);
      const report = await api(urls.test, { method: 'POST', body: request });
      setTestReport(report);
      setTestStep(0);
      setProblems(report.problems);
    },
    [saveAll, strings.testNotSaved, urls.test],
  );

  // A new run's whole path comes into view; its steps are then brought into view one by one.
  useEffect(() => {
    if (!testReport) return;
    const visited = [...new Set(testReport.steps.map((step) => step.node))].map((id) => ({ id }));
    if (visited.length) flow.fitView({ nodes: visited, duration: 250, maxZoom: 1, padding: 0.12 });
  }, [testReport, flow]);

  const openTest = useCallback(() => {
    setNodes((current) => current.map((n) => (n.selected ? { ...n, selected: false } : n)));
    setTestOpen(true);
  }, []);

  const closeTest = useCallback(() => {
    setTestOpen(false);
    setTestReport(null);
  }, []);

  const counts = useLiveCounts({ active: view.mode === 'live', urls, host: wrapper });

  // -- what the canvas shows -----------------------------------------------------------------------
  const shown = useMemo(() => {
    if (view.mode === 'draft') return { nodes, edges };
    const { nodes: versionNodes, edges: versionEdges } = graphToEditor(view.version.graph);
    return { nodes: versionNodes, edges: versionEdges };
  }, [view, nodes, edges]);

  useEffect(() => {
    if (fitPending.current && nodesMeasured) {
      fitPending.current = false;
      flow.fitView({ maxZoom: 1 });
    }
  }, [nodesMeasured, shown.nodes, flow]);

  const problemMap = useMemo(() => (view.mode === 'draft' ? problemsByNode(problems) : new Map()), [problems, view.mode]);
  const selected = view.mode === 'draft' ? nodes.filter((node) => node.selected) : [];
  const [versionSelection, setVersionSelection] = useState(null);
  const panelNode = view.mode === 'draft' ? (selected.length === 1 ? selected[0] : null) : shown.nodes.find((n) => n.id === versionSelection) ?? null;

  // What the panel lists as targets changes when steps are added, removed or renamed, not when
  // they move: keyed by that, the panel is not drawn again on every frame of a drag.
  const targetsKey = shown.nodes.map((n) => `${n.id}\u0000${n.data.nodeType}\u0000${n.data.config?.label ?? ''}`).join('\u0001');
  const targets = useMemo(
    () =>
      shown.nodes.map((n) => ({
        id: n.id,
        nodeType: n.data.nodeType,
        name: n.data.config?.label || typesByKey[n.data.nodeType]?.label || n.data.nodeType,
      })),
    [targetsKey, typesByKey], // eslint-disable-line react-hooks/exhaustive-deps -- keyed by what is listed
  );
  const outgoing = useMemo(
    () => (panelNode ? shown.edges.filter((edge) => edge.source === panelNode.id) : []),
    [panelNode?.id, shown.edges], // eslint-disable-line react-hooks/exhaustive-deps -- the id, not the moving step
  );
  const seal = useCallback(() => history.current.seal(), []);

  const testCurrent = testPath?.steps[testStep] ?? null;
  const flowEdges = useMemo(
    () =>
      shown.edges.map((edge) => {
        if (testPath) {
          const orders = testPath.edges.get(edge.id);
          if (!orders) return { ...edge, className: 'edge--dimmed' };
          // The move that brought the customer to the step shown.
          const current = testCurrent && testPath.steps[testCurrent.order - 2]?.edgeId === edge.id;
          return {
            ...edge,
            label: orders.join(' · '),
            className: `edge--taken${current ? ' edge--current' : ''}`,
            zIndex: 1,
            labelBgPadding: [6, 3],
            labelBgBorderRadius: 9,
          };
        }
        const left = view.mode === 'live' ? counts[edge.source]?.left?.[edge.sourceHandle] : undefined;
        return left ? { ...edge, label: String(left), className: 'edge--counted' } : edge;
      }),
    [shown.edges, counts, view.mode, testPath, testCurrent],
  );

  // -- editing operations --------------------------------------------------------------------------
  const addNode = useCallback(
    (type, position, { connectFrom = null } = {}) => {
      const nodeType = typesByKey[type];
      const { nodes: docNodes, edges: docEdges } = doc.current;
      const id = newNodeId(type, new Set(docNodes.map((n) => n.id)));
      const node = { id, type: STEP, position, data: { nodeType: type, config: initialConfig(nodeType) }, selected: true };
      let nextEdges = docEdges;
      if (connectFrom && nodeType.kind !== 'trigger') {
        const source = docNodes.find((n) => n.id === connectFrom);
        const free = outputHandles(typesByKey[source.data.nodeType], source.data.config).find(
          (handle) => !docEdges.some((e) => e.source === source.id && e.sourceHandle === handle),
        );
        if (free) nextEdges = [...docEdges, makeEdge(source.id, free, id)];
      }
      change({ nodes: [...docNodes.map((n) => ({ ...n, selected: false })), node], edges: nextEdges });
      return id;
    },
    [change, typesByKey],
  );

  const addFromPalette = useCallback(
    (type) => {
      if (!editable) return;
      const after = doc.current.nodes.filter((n) => n.selected);
      let position;
      if (after.length === 1) {
        const source = after[0];
        const below = doc.current.edges.filter((e) => e.source === source.id).length;
        position = { x: source.position.x + 300, y: source.position.y + below * 130 };
      } else {
        const box = wrapper.current.querySelector('.react-flow').getBoundingClientRect();
        position = flow.screenToFlowPosition({ x: box.left + box.width / 2 - 110, y: box.top + box.height / 2 - 40 });
      }
      addNode(type, position, { connectFrom: after.length === 1 ? after[0].id : null });
      // Keyboard users go on with the new step: its settings are next in the tab order.
      setTimeout(() => wrapper.current?.querySelector('.panel input, .panel select, .panel textarea')?.focus());
    },
    [addNode, editable, flow],
  );

  const onDrop = useCallback(
    (event) => {
      event.preventDefault();
      const type = event.dataTransfer.getData(DRAG_TYPE);
      if (!type || !typesByKey[type] || !editable) return;
      addNode(type, flow.screenToFlowPosition({ x: event.clientX - 20, y: event.clientY - 20 }));
    },
    [addNode, editable, flow, typesByKey],
  );

  const onNodesChange = useCallback(
    (changes) => {
      if (view.mode !== 'draft') {
        const picked = changes.find((c) => c.type === 'select' && c.selected);
        if (picked) setVersionSelection(picked.id);
        return;
      }
      // Moves by keyboard (arrows on a focused step) are changes of their own; drags are recorded
      // once, when they end.
      const keyboardMove = changes.some((c) => c.type === 'position' && !c.dragging && !dragStart.current);
      if (keyboardMove && editable) {
        change({ nodes: applyNodeChanges(changes, doc.current.nodes) }, { coalesce: 'keyboard-move' });
        return;
      }
      setNodes((current) => applyNodeChanges(changes, current));
    },
    [change, editable, view.mode],
  );

  const onNodeDragStart = useCallback(() => {
    dragStart.current = { ...doc.current };
  }, []);

  const onNodeDragStop = useCallback(() => {
    const before = dragStart.current;
    dragStart.current = null;
    if (!before) return;
    const moved = doc.current.nodes.some((n) => {
      const old = before.nodes.find((o) => o.id === n.id);
      return old && (old.position.x !== n.position.x || old.position.y !== n.position.y);
    });
    if (moved) {
      history.current.record(before);
      changeCount.current += 1;
      setSaveState('dirty');
      setHistoryTick((tick) => tick + 1);
    }
  }, []);

  const onNodeClick = useCallback(
    (_event, clicked) => {
      // On a test run's path, clicking a visited step shows its visit in the list.
      const visit = testPath?.nodes.get(clicked.id);
      if (visit) focusTestStep(visitAfter(visit.orders, testStep));
    },
    [focusTestStep, testPath, testStep],
  );

  const onEdgesChange = useCallback(
    (changes) => {
      if (view.mode !== 'draft') return;
      setEdges((current) =>
        current.map((edge) => {
          const select = changes.find((c) => c.type === 'select' && c.id === edge.id);
          return select ? { ...edge, selected: select.selected } : edge;
        }),
      );
    },
    [view.mode],
  );

  const isValidConnection = useCallback(
    (connection) => connectionProblem(connection, doc.current.nodes, doc.current.edges, typesByKey) === null,
    [typesByKey],
  );

  const onConnect = useCallback(
    (connection) => {
      if (connectionProblem(connection, doc.current.nodes, doc.current.edges, typesByKey)) return;
      change({ edges: [...doc.current.edges, makeEdge(connection.source, connection.sourceHandle, connection.target)] });
    },
    [change, typesByKey],
  );

  const connectHandle = useCallback(
    (source, handle, target) => {
      const rest = doc.current.edges.filter((e) => !(e.source === source && e.sourceHandle === handle));
      if (!target) {
        change({ edges: rest });
        return;
      }
      if (connectionProblem({ source, sourceHandle: handle, target }, doc.current.nodes, rest, typesByKey)) return;
      change({ edges: [...rest, makeEdge(source, handle, target)] });
    },
    [change, typesByKey],
  );

  const setConfig = useCallback(
    (id, config, coalesce) => {
      const { nodes: docNodes, edges: docEdges } = doc.current;
      const nextNodes = docNodes.map((n) => (n.id === id ? { ...n, data: { ...n.data, config } } : n));
      // A branch removed or renamed takes its edge with it: an edge must leave by a handle that exists.
      const node = nextNodes.find((n) => n.id === id);
      const handles = outputHandles(typesByKey[node.data.nodeType], config);
      const nextEdges = docEdges.filter((e) => e.source !== id || handles.includes(e.sourceHandle));
      change({ nodes: nextNodes, edges: nextEdges.length === docEdges.length ? undefined : nextEdges }, { coalesce });
    },
    [change, typesByKey],
  );

  const deleteSelection = useCallback(() => {
    const { nodes: docNodes, edges: docEdges } = doc.current;
    const gone = new Set(docNodes.filter((n) => n.selected).map((n) => n.id));
    const nextEdges = docEdges.filter((e) => !e.selected && !gone.has(e.source) && !gone.has(e.target));
    if (!gone.size && nextEdges.length === docEdges.length) return;
    change({ nodes: docNodes.filter((n) => !gone.has(n.id)), edges: nextEdges });
  }, [change]);

  const paste = useCallback(
    (source) => {
      if (!source?.nodes.length) return;
      const { nodes: docNodes, edges: docEdges } = doc.current;
      const pasted = pasteClipboard(source, docNodes.map((n) => n.id));
      change({ nodes: [...docNodes.map((n) => ({ ...n, selected: false })), ...pasted.nodes], edges: [...docEdges, ...pasted.edges] });
      clipboard.current = { ...source, nodes: source.nodes.map((n) => ({ ...n, position: { x: n.position.x + 40, y: n.position.y + 40 } })) };
    },
    [change],
  );

  const tidy = useCallback(() => {
    change({ nodes: layoutNodes(doc.current.nodes, doc.current.edges) });
    fitPending.current = true;
  }, [change]);

  useEffect(() => {
    const onKey = (event) => {
      if (dialog) return;
      const mod = event.ctrlKey || event.metaKey;
      const key = event.key.toLowerCase();
      if (isTyping(event.target)) return;
      if (event.key === '?') {
        event.preventDefault();
        setDialog('help');
        return;
      }
      if (!editable) return;
      if (mod && key === 'z') {
        event.preventDefault();
        if (event.shiftKey) redo();
        else undo();
      } else if (mod && key === 'y') {
        event.preventDefault();
        redo();
      } else if (mod && key === 'c') {
        clipboard.current = copySelection(doc.current.nodes, doc.current.edges);
      } else if (mod && key === 'v') {
        event.preventDefault();
        paste(clipboard.current);
      } else if (mod && key === 'd') {
        event.preventDefault();
        paste(copySelection(doc.current.nodes, doc.current.edges));
      } else if (mod && key === 'a') {
        event.preventDefault();
        setNodes((current) => current.map((n) => ({ ...n, selected: true })));
      } else if (event.key === 'Delete' || event.key === 'Backspace') {
        event.preventDefault();
        deleteSelection();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [deleteSelection, dialog, editable, paste, redo, undo]);

  // One value while nothing it holds changes: every step on the canvas reads it, and a new object
  // on each frame of a drag would draw all of them again.
  const testRun = useMemo(
    () => (testPath ? { nodes: testPath.nodes, ending: testPath.ending, current: testCurrent?.node ?? null } : null),
    [testPath, testCurrent],
  );
  const context = useMemo(
    () => ({ typesByKey, strings, names, problems: problemMap, counts, urls, mode: view.mode, testRun }),
    [typesByKey, strings, names, problemMap, counts, urls, view.mode, testRun],
  );

  if (loadError) return <p className="island-error" role="alert">{loadError}</p>;
  if (!nodeTypes || !journey) return <p className="muted">…</p>;

  const liveVersion = versions[0];
  const stepName = (id) => {
    const step = nodes.find((n) => n.id === id);
    return step?.data.config?.label || typesByKey[step?.data.nodeType]?.label || id;
  };
  // A problem's step is selected (its settings open beside it) and brought into view.
  const showStep = (id) => {
    const step = nodes.find((n) => n.id === id);
    setNodes((current) => current.map((n) => ({ ...n, selected: n.id === id })));
    flow.setCenter(step.position.x + 110, step.position.y + 50, { zoom: Math.max(flow.getZoom(), 0.8), duration: 200 });
  };
  const hasSelection = selected.length > 0 || edges.some((edge) => edge.selected);
  const saveText =
    saveState === 'saving' ? strings.saving : saveState === 'dirty' ? strings.unsaved : saveState === 'error' ? fill(strings.saveFailed, { reason: saveError }) : saveState === 'saved' ? strings.saved : '';

  return (
    <EditorContext.Provider value={context}>
      <div
        className={`journey-editor journey-editor--${view.mode}${testOpen ? ' journey-editor--testing' : ''}${testPath ? ' journey-editor--test-path' : ''}`}
        ref={wrapper}
        data-save-state={saveState}
      >
        <header className="editor-bar">
          <input
            className="editor-bar__name"
            aria-label={strings.name}
            value={name}
            disabled={!editable}
            onChange={(e) => change({ name: e.target.value }, { coalesce: 'name' })}
            onBlur={seal}
          />
          {setup.canEdit && (
            <button type="button" className="button" data-journey-settings onClick={() => setDialog('settings')}>
              {strings.settings}
            </button>
          )}
          <span className={`badge editor-bar__status editor-bar__status--${journey.status}`} data-status={journey.status}>
            {strings[`status.${journey.status}`] ?? journey.status}
          </span>
          {setup.canEdit && <span className="editor-bar__save muted" role="status" data-save>{saveText}</span>}
          <span className="editor-bar__spacer" />
          {editable && (
            <>
              <button type="button" className="button" onClick={undo} disabled={!history.current.canUndo} title="Ctrl/⌘+Z">
                {strings.undo}
              </button>
              <button type="button" className="button" onClick={redo} disabled={!history.current.canRedo} title="Shift+Ctrl/⌘+Z">
                {strings.redo}
              </button>
              <button type="button" className="button" onClick={tidy}>
                {strings.layout}
              </button>
              <button
                type="button"
                className="button"
                onClick={() => paste(copySelection(doc.current.nodes, doc.current.edges))}
                disabled={!selected.length}
                title="Ctrl/⌘+D"
              >
                {strings.duplicate}
              </button>
              <button type="button" className="button" onClick={deleteSelection} disabled={!hasSelection} title="Delete">
                {strings.delete}
              </button>
            </>
          )}
          <button type="button" className="button" onClick={() => flow.fitView({ duration: 200, maxZoom: 1 })}>
            {strings.fitView}
          </button>
          <label className="editor-bar__versions">
            <span className="sr-only">{strings.history}</span>
            <select
              aria-label={strings.history}
              data-versions
              value={view.mode === 'draft' ? 'draft' : view.mode === 'live' ? 'live' : String(view.version.number)}
              onChange={(e) => {
                const value = e.target.value;
                setVersionSelection(null);
                closeTest();
                if (value === 'draft') setView({ mode: 'draft' });
                else if (value === 'live') setView({ mode: 'live', version: liveVersion });
                else setView({ mode: 'version', version: versions.find((v) => String(v.number) === value) });
                fitPending.current = true;
              }}
            >
              <option value="draft">{strings.draft}</option>
              {liveVersion && <option value="live">{`${strings.live} · v${liveVersion.number}`}</option>}
              {versions.map((version) => (
                <option key={version.number} value={String(version.number)}>
                  v{version.number} · {new Date(version.published_at).toLocaleString()}
                  {version.published_by ? ` · ${version.published_by}` : ''}
                  {version.note ? ` · ${version.note}` : ''}
                </option>
              ))}
              {!versions.length && <option disabled>{strings.noVersions}</option>}
            </select>
          </label>
          <button type="button" className="button" onClick={() => setDialog('help')} aria-label={strings.help} title={strings.help}>
            ?
          </button>
          {setup.canEdit && view.mode === 'draft' && (
            <>
              <button
                type="button"
                className={`button${testOpen ? ' button--pressed' : ''}`}
                aria-pressed={testOpen}
                data-test-run
                onClick={testOpen ? closeTest : openTest}
              >
                {strings.testRun}
              </button>
              <button type="button" className="button" data-validate onClick={() => validate().catch((e) => setNotice(e.message))}>
                {strings.validate}
              </button>
              <button type="button" className="button button--primary" data-publish onClick={() => setDialog('publish')}>
                {strings.publish}
              </button>
            </>
          )}
          {setup.canEdit && journey.status === 'active' && (
            <button type="button" className="button" data-pause onClick={() => setStatus('pause')}>
              {strings.pause}
            </button>
          )}
          {setup.canEdit && journey.status === 'paused' && (
            <button type="button" className="button" data-resume onClick={() => setStatus('resume')}>
              {strings.resume}
            </button>
          )}
        </header>

        {!setup.canEdit && <p className="editor-note muted">{strings[setup.readOnlyReason]}</p>}
        {conflict && (
          <div className="editor-conflict" role="alert" data-conflict>
            <p>{strings.conflict}</p>
            <button type="button" className="button" onClick={takeTheirs}>
              {strings.conflictTheirs}
            </button>
            <button type="button" className="button button--primary" onClick={keepMine}>
              {strings.conflictMine}
            </button>
          </div>
        )}
        {notice && (
          <div className="editor-notice" role="status" data-notice>
            <span>{notice}</span>
            <button type="button" className="button button--small" onClick={() => setNotice('')}>
              {strings.close}
            </button>
          </div>
        )}
        {view.mode === 'version' && (
          <div className="editor-note" data-viewing={view.version.number}>
            {fill(strings.viewingVersion, { number: view.version.number })}{' '}
            <button type="button" className="button button--small" onClick={() => setView({ mode: 'draft' })}>
              {strings.backToDraft}
            </button>
          </div>
        )}
        {view.mode === 'live' && <div className="editor-note">{fill(strings.liveTitle, { number: view.version.number })}</div>}
        {problems !== null && view.mode === 'draft' && (
          <div className={`editor-problems${problems.length ? '' : ' editor-problems--none'}`} data-problem-count={problems.length}>
            {problems.length === 0 ? (
              strings.noProblems
            ) : (
              <>
                <strong>
                  {problems.length === 1 ? strings.problemOne : fill(strings.problemsCount, { count: problems.length })}
                </strong>
                <ul className="editor-problems__list">
                  {problems.map((problem, index) => {
                    const step = problem.node ? nodes.find((n) => n.id === problem.node) : undefined;
                    const branch = step ? problemBranch(problem, step.data.config, strings) : null;
                    return (
                      <li key={index}>
                        {step ? (
                          <button type="button" className="editor-problems__step" onClick={() => showStep(problem.node)}>
                            {stepName(problem.node)}
                            {branch !== null && ` › ${branch}`}
                          </button>
                        ) : (
                          <span>{strings.graphProblem}</span>
                        )}
                        : {problem.message}
                      </li>
                    );
                  })}
                </ul>
              </>
            )}
          </div>
        )}

        <div className="editor-body">
          {editable ? <Palette nodeTypes={nodeTypes} strings={strings} onAdd={addFromPalette} disabled={!editable} /> : <div />}
          <div className="editor-canvas" onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'move'; }} onDrop={onDrop}>
            <ReactFlow
              nodes={shown.nodes}
              edges={flowEdges}
              nodeTypes={nodeTypesForFlow}
              onNodesChange={onNodesChange}
              onEdgesChange={onEdgesChange}
              onConnect={onConnect}
              isValidConnection={isValidConnection}
              onNodeDragStart={onNodeDragStart}
              onNodeDragStop={onNodeDragStop}
              nodesDraggable={editable}
              nodesConnectable={editable}
              elementsSelectable={!testOpen}
              deleteKeyCode={null}
              selectionKeyCode="Shift"
              multiSelectionKeyCode={MULTI_SELECTION_KEYS}
              defaultEdgeOptions={DEFAULT_EDGE_OPTIONS}
              fitView={fitOnOpen.current}
              fitViewOptions={FIT_VIEW_OPTIONS}
              minZoom={0.1}
              onlyRenderVisibleElements={shown.nodes.length > 150}
              onNodeClick={onNodeClick}
              proOptions={PRO_OPTIONS}
            >
              <Background variant={BackgroundVariant.Dots} />
              <Controls showInteractive={false} />
              <MiniMap pannable zoomable ariaLabel={strings.fitView} />
              {!shown.nodes.length && <div className="editor-empty muted">{strings.emptyCanvas}</div>}
            </ReactFlow>
          </div>
          {testOpen ? (
            <TestRunPanel
              strings={strings}
              urls={urls}
              triggers={targets.filter((target) => typesByKey[target.nodeType]?.kind === 'trigger')}
              awaitedEvents={nodes.filter((n) => n.data.nodeType === 'wait_for_event' && n.data.config?.event).map((n) => n.data.config.event)}
              knownEvents={options.events.map((event) => event.name)}
              path={testPath}
              report={testReport}
              problemCount={problems?.length ?? 0}
              current={testStep}
              onSelect={focusTestStep}
              onRun={runTest}
              onClear={() => setTestReport(null)}
              onClose={closeTest}
              stepName={stepName}
              nodeOf={(id) => nodes.find((n) => n.id === id)}
              typesByKey={typesByKey}
              names={names}
              statuses={setup.messageStatuses}
              taskStatuses={setup.taskStatuses}
              channels={setup.channelLabels}
            />
          ) : (
          <ConfigPanel
            key={panelNode?.id ?? ''}
            nodeId={panelNode?.id ?? null}
            data={panelNode?.data ?? null}
            nodeType={panelNode ? typesByKey[panelNode.data.nodeType] : null}
            targets={targets}
            outgoing={outgoing}
            typesByKey={typesByKey}
            options={options}
            strings={strings}
            fieldLabels={setup.fieldLabels}
            enumLabels={setup.enumLabels}
            serverProblems={panelNode ? problemMap.get(panelNode.id) : undefined}
            ruleBuilder={setup.ruleBuilder}
            readOnly={!editable}
            onConfig={setConfig}
            onConnect={connectHandle}
            onSeal={seal}
          />
          )}
        </div>
        {dialog === 'help' && <ShortcutHelp strings={strings} onClose={() => setDialog(null)} />}
        {dialog === 'publish' && <PublishDialog strings={strings} onPublish={publish} onClose={() => setDialog(null)} />}
        {dialog === 'settings' && (
          <JourneySettingsDialog
            strings={strings}
            journey={{ ...journey, name }}
            entryPolicies={setup.entryPolicies}
            onSave={saveSettings}
            onClose={() => setDialog(null)}
          />
        )}
      </div>
    </EditorContext.Provider>
  );
}

export default function JourneyEditor({ setup }) {
  return (
    <ReactFlowProvider>
      <Editor setup={setup} />
    </ReactFlowProvider>
  );
}
