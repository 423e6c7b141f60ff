// Timings the page keeps for its tests and for anyone curious (window.stbMetrics).

export const metrics = {
  // Script time of the first catalog snapshot, from its arrival (parsing included) to its
  // rows in the DOM.
  catalogFirstRenderMs: null,
  // When that render ended, in ms since the navigation started.
  catalogFirstRenderAt: null,
  // Each snapshot applied: topic, script time, options.
  snapshots: [],
  // Each catalog delta applied: entity, key, value, commit time, script time (parsing
  // included), and when the next frame showed it.
  applied: [],
  // Script time of each render of the tree's rows in view (scrolling, changes).
  rowRenders: [],
};

window.stbMetrics = metrics;
