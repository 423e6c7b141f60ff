// What a platform role may do, as the services' method table decides it
// (Sources/STBService/Access/MethodAccess.swift): the page offers only those controls,
// and the services refuse the rest anyway.

const RANK = { viewer: 1, operator: 2, engineer: 3, admin: 4 };

/** The role's plain name: `ROLE_ENGINEER`, `engineer` and 3 all read `engineer`. */
export function roleName(role) {
  if (typeof role === 'number') return Object.keys(RANK).find((name) => RANK[name] === role) || 'viewer';
  return String(role || '').toLowerCase().replace(/^role_/, '') || 'viewer';
}

// The least role per action of the page.
const LEAST = {
  // Catalog Create/Update/Delete of modules, groups, options, states, transitions.
  editCatalog: 'engineer',
  // Projects: SetOptions, CommitVersion, ApplyChangeRequest, CreateChangeRequest.
  editProject: 'engineer',
  // Projects: Signoff, ReviewChangeRequest.
  signProject: 'operator',
  // Alarms: AcknowledgeAlarm.
  acknowledgeAlarm: 'operator',
  // Dashboards: every call (ownership is the gateway's to check).
  editDashboards: 'viewer',
};

/** Whether `role` may take `action` (a key of the table above). */
export function may(role, action) {
  const least = LEAST[action];
  return Boolean(least) && (RANK[roleName(role)] || 0) >= RANK[least];
}

// A project member's role, as the project service orders them.
const PROJECT_RANK = { PROJECT_ROLE_VIEWER: 1, PROJECT_ROLE_EDITOR: 2, PROJECT_ROLE_APPROVER: 3, PROJECT_ROLE_OWNER: 4 };

/** Whether a member with `projectRole` (or an admin, who sees every project) may edit. */
export function mayInProject(role, projectRole, action) {
  if (!may(role, action)) return false;
  if (roleName(role) === 'admin') return true;
  const rank = PROJECT_RANK[projectRole] || 0;
  return action === 'signProject' ? rank >= 1 : rank >= 2;
}
