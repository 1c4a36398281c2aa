// The server's values for every enum the dashboard shows or filters by (GET /v1/vocabulary):
// operation types and their actions, states, levels, webhook events, delivery statuses, signals,
// formats. Read once per page load, before any page renders; pickers and lists are built from it,
// so they cannot drift from the server. Labels for people may live beside the code that shows
// them; a value without a label shows as its raw name.
import { get } from './api.js';

let loading = null;
let words = null;

/** Loads the vocabulary: one request per page load (a failed one is tried again next time). */
export function loadVocabulary() {
  loading ||= get('/v1/vocabulary').then((v) => { words = v; return v; }, (e) => { loading = null; throw e; });
  return loading;
}

/** The loaded vocabulary (app.js loads it before routing to a page). */
export function vocabulary() {
  if (!words) throw new Error('the vocabulary is not loaded yet');
  return words;
}

export const states = () => vocabulary().states.map((s) => s.state);
/** States an operation can still leave: it is running, waiting, or anything else not final. */
export const activeStates = () => new Set(vocabulary().states.filter((s) => !s.terminal).map((s) => s.state));
export const levels = () => vocabulary().levels;
export const events = () => vocabulary().events;
/** What the type filter takes: every `type`, and `type:action` for each action the server knows. */
export const typeFilters = () => vocabulary().types.flatMap((t) => [t.type, ...t.actions.map((a) => `${t.type}:${a}`)]);
/** `labels[value]`, or the value itself when it has no label. */
export const label = (labels, value) => labels[value] ?? value;
