// Who is signed in: the admin (every environment, settings and secrets), or a viewer signed in with
// an environment key holding the `read` scope (its environment only: Logs, Insights, Signals, views
// and Deliveries, without Settings, retries, replays, imports or backups). The server refuses what a
// viewer may not do whatever the page shows; this only keeps those controls out of the way.

let session = { principal: 'admin' };

export function setSession(s) { session = s; }

/** Whether the session is the admin's. */
export const isAdmin = () => session.principal === 'admin';

/** A viewer's environment (null for the admin). */
export const viewerEnvironment = () => (isAdmin() ? null : session.environment);
