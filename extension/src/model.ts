/**
 * The side panel's state: what it last read from the server extension.
 *
 * `refresh()` reads everything. While polling, the model reads the user's
 * requests every interval and reports each state change through
 * `requestChanged`. After a change it reads the budget again, because a
 * request counts against it. While the hub is not connected, polling
 * calls `refresh()` instead, so the panel recovers once the hub answers.
 */

import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { LinksightApi, LinksightApiError } from './api';
import type {
  IBudget,
  ICollaboration,
  IDataset,
  IRequestSummary,
  IStatus
} from './tokens';

/** A request whose state differs from the one last read. */
export interface IRequestChange {
  request: IRequestSummary;
  /** The state last read, or null for a request seen for the first time. */
  previous: string | null;
}

/** Options of the model. */
export interface IPanelModelOptions {
  api: LinksightApi;
  /** Milliseconds between polls of the requests; at least 250. */
  pollInterval?: number;
  /** Whether to pause polling while the browser tab is hidden. */
  pauseWhenHidden?: boolean;
}

/** The smallest poll interval accepted, in milliseconds. */
export const MIN_POLL_INTERVAL = 250;

/** The state behind the side panel. */
export class PanelModel {
  constructor(options: IPanelModelOptions) {
    this.api = options.api;
    this._pauseWhenHidden = options.pauseWhenHidden ?? true;
    this._pollInterval = checkInterval(options.pollInterval ?? 2000);
  }

  readonly api: LinksightApi;

  /** The hub connection as last read, or null before the first read. */
  status: IStatus | null = null;
  /** The error of the last read that failed, or null. */
  error: LinksightApiError | null = null;
  collaborations: ICollaboration[] = [];
  /** The chosen collaboration, or null when the user has none. */
  collaboration: string | null = null;
  /** The chosen collaboration's datasets. */
  datasets: IDataset[] = [];
  /** The user's budget in the chosen collaboration. */
  budget: IBudget | null = null;
  /** The user's requests, newest first. */
  requests: IRequestSummary[] = [];

  /** Emitted after any of the state above changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted once per request whose state changed, or that is new. */
  get requestChanged(): ISignal<this, IRequestChange> {
    return this._requestChanged;
  }

  /** Whether the last status read found the hub connected. */
  get connected(): boolean {
    return this.status?.connected === true;
  }

  /** Milliseconds between polls. */
  get pollInterval(): number {
    return this._pollInterval;
  }

  set pollInterval(value: number) {
    this._pollInterval = checkInterval(value);
    if (this._poll) {
      this.startPolling();
    }
  }

  /** Whether polling pauses while the browser tab is hidden. */
  get pauseWhenHidden(): boolean {
    return this._pauseWhenHidden;
  }

  set pauseWhenHidden(value: boolean) {
    this._pauseWhenHidden = value;
    if (this._poll) {
      this.startPolling();
    }
  }

  /** Find a dataset of the chosen collaboration by name. */
  dataset(name: string): IDataset | undefined {
    return this.datasets.find(dataset => dataset.name === name);
  }

  /**
   * Read the connection state, then the collaborations, the chosen
   * collaboration's datasets and budget, and the requests.
   *
   * A failed read is stored in `error` instead of thrown.
   */
  async refresh(): Promise<void> {
    const before = this._snapshot();
    try {
      this.status = await this.api.status();
      if (this.status.connected) {
        await this._loadHubState(this.status);
      } else {
        this._clearHubState();
      }
      this.error = null;
    } catch (error) {
      this._fail(error);
    }
    this._emitIfChanged(before);
  }

  /** Choose a collaboration and read its datasets and budget. */
  async selectCollaboration(name: string): Promise<void> {
    if (!this.collaborations.some(c => c.name === name)) {
      const known = this.collaborations.map(c => c.name).join(', ') || 'none';
      throw new Error(
        `collaboration ${JSON.stringify(name)} not found; yours: ${known}`
      );
    }
    this.collaboration = name;
    try {
      await this._loadCollaboration();
      this.error = null;
    } catch (error) {
      this._fail(error);
    } finally {
      this._changed.emit();
    }
  }

  /**
   * Read the requests once and report the ones whose state changed.
   *
   * Reads everything instead when the hub is not connected.
   */
  async pollOnce(): Promise<void> {
    if (!this.connected) {
      await this.refresh();
      return;
    }
    const before = this._snapshot();
    try {
      const changes = this._storeRequests(await this.api.requests());
      if (changes.length > 0 && this.collaboration !== null) {
        this.budget = await this.api.budget(this.collaboration);
      }
      this.error = null;
    } catch (error) {
      this._fail(error);
    }
    this._emitIfChanged(before);
  }

  /** Start polling every `pollInterval` milliseconds; restart if polling. */
  startPolling(): void {
    this.stopPolling();
    this._poll = new Poll({
      factory: () => this.pollOnce(),
      frequency: { interval: this._pollInterval, backoff: false },
      standby: this._pauseWhenHidden ? 'when-hidden' : 'never',
      name: 'linksight-panel:requests'
    });
  }

  /** Stop polling. */
  stopPolling(): void {
    this._poll?.dispose();
    this._poll = null;
  }

  /** Stop polling and disconnect every signal. */
  dispose(): void {
    this.stopPolling();
    Signal.clearData(this);
  }

  private async _loadHubState(status: IStatus): Promise<void> {
    this.collaborations = await this.api.collaborations();
    const names = this.collaborations.map(c => c.name);
    if (this.collaboration === null || !names.includes(this.collaboration)) {
      const preferred = status.default_collaboration;
      this.collaboration =
        preferred && names.includes(preferred) ? preferred : names[0] ?? null;
    }
    await this._loadCollaboration();
    this._storeRequests(await this.api.requests());
  }

  private async _loadCollaboration(): Promise<void> {
    if (this.collaboration === null) {
      this.datasets = [];
      this.budget = null;
      return;
    }
    const name = this.collaboration;
    const [datasets, budget] = await Promise.all([
      this.api.datasets(name),
      this.api.budget(name)
    ]);
    this.datasets = datasets;
    this.budget = budget;
  }

  /** Store the requests read and return the changes, emitting each. */
  private _storeRequests(requests: IRequestSummary[]): IRequestChange[] {
    const previous = new Map(this.requests.map(r => [r.id, r.state]));
    const first = this._requestsRead === false;
    this.requests = requests;
    this._requestsRead = true;
    if (first) {
      return [];
    }
    const changes: IRequestChange[] = [];
    for (const request of requests) {
      const before = previous.get(request.id) ?? null;
      if (before !== request.state) {
        changes.push({ request, previous: before });
      }
    }
    for (const change of changes) {
      this._requestChanged.emit(change);
    }
    return changes;
  }

  /** Return the state as text, to tell whether a read changed it. */
  private _snapshot(): string {
    return JSON.stringify([
      this.status,
      this.error?.code,
      this.error?.message,
      this.collaborations,
      this.collaboration,
      this.datasets,
      this.budget,
      this.requests
    ]);
  }

  /**
   * Emit `changed` if the state differs from `before`. Most reads find
   * nothing new, and rebuilding the panel for them would lose a click.
   */
  private _emitIfChanged(before: string): void {
    if (this._snapshot() !== before) {
      this._changed.emit();
    }
  }

  private _clearHubState(): void {
    this.collaborations = [];
    this.datasets = [];
    this.budget = null;
  }

  private _fail(error: unknown): void {
    if (error instanceof LinksightApiError) {
      this.error = error;
      if (error.code === 'server_unreachable' || error.status >= 500) {
        this.status = null;
      }
      return;
    }
    this.error = new LinksightApiError(0, 'client_error', String(error));
  }

  private _changed = new Signal<this, void>(this);
  private _requestChanged = new Signal<this, IRequestChange>(this);
  private _poll: Poll | null = null;
  private _pollInterval: number;
  private _pauseWhenHidden: boolean;
  private _requestsRead = false;
}

function checkInterval(value: number): number {
  if (!Number.isFinite(value) || value < MIN_POLL_INTERVAL) {
    throw new Error(
      `poll interval ${value} ms is invalid; it must be a number of at ` +
        `least ${MIN_POLL_INTERVAL} ms`
    );
  }
  return value;
}
