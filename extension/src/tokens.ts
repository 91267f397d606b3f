/**
 * Identifiers, and the shapes of the server extension's JSON responses.
 *
 * The server extension (linksight_kernel/server_extension.py) serves these
 * under /linksight/ on the Jupyter server.
 */

/** The id of the side panel's plugin, also the key of its settings. */
export const PLUGIN_ID = 'linksight-panel:plugin';

/** Command ids. */
export namespace CommandIDs {
  /** Insert a `%%linksight` query cell for a dataset into the notebook. */
  export const insertQuery = 'linksight:insert-query';
  /** Reload the collaborations, schemas, budget and requests. */
  export const refresh = 'linksight:refresh';
  /** Show the side panel. */
  export const open = 'linksight:open-panel';
}

/** An error body of the server extension. */
export interface IErrorBody {
  code: string;
  message: string;
}

/** GET /linksight/status */
export interface IStatus {
  connected: boolean;
  hub_url: string | null;
  user: { name: string; organisation: string; roles: string[] } | null;
  default_collaboration: string | null;
  error: IErrorBody | null;
}

/** An element of GET /linksight/collaborations */
export interface ICollaboration {
  name: string;
  members: string[];
}

/** A column of a dataset's schema. */
export interface IColumn {
  name: string;
  type: string;
  role: string;
  /** The allowed uses in a query, such as "statistic, filter". */
  uses: string;
  /** The levels or the range of values, or "". */
  values: string;
  nullable: boolean;
  description: string;
}

/** An element of GET /linksight/collaborations/NAME/datasets */
export interface IDataset {
  name: string;
  description: string;
  stations: string[];
  columns: IColumn[];
}

/** GET /linksight/collaborations/NAME/budget */
export interface IBudget {
  collaboration: string;
  /** Requests per period, or null for no limit. */
  limit: number | null;
  period_days: number;
  used: number;
  remaining: number | null;
  next_release: string | null;
}

/** An element of GET /linksight/requests */
export interface IRequestSummary {
  id: number;
  collaboration: string;
  dataset: string;
  query: string;
  purpose: string;
  state: string;
  finished: boolean;
  /** One line with the state and what it waits for. */
  summary: string;
  rejection: { rule?: string; message?: string } | null;
  error: string | null;
  created_at: string;
  updated_at: string;
}
