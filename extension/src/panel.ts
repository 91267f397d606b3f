/**
 * The side panel's widget: renders the model into plain DOM elements.
 */

import type { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { PanelModel } from './model';
import type { IBudget, IDataset, IRequestSummary } from './tokens';

/** Called when the user asks for a query cell on a dataset. */
export type InsertQuery = (dataset: string, collaboration: string) => void;

/** The Linksight side panel. */
export class LinksightPanel extends Widget {
  constructor(
    readonly model: PanelModel,
    private readonly trans: TranslationBundle,
    private readonly insertQuery: InsertQuery
  ) {
    super();
    this.id = 'linksight-panel';
    this.addClass('lks-panel');
    this.title.caption = trans.__('Linksight');
    model.changed.connect(this.render, this);
    this.render();
  }

  /** The dataset chosen for the insert-query command from the palette. */
  chosenDataset: string | null = null;

  /** Rebuild the panel's contents from the model. */
  render(): void {
    const trans = this.trans;
    const model = this.model;
    const node = this.node;
    // Rebuilding empties the node, which would scroll it back to the top.
    const scrollTop = node.scrollTop;
    node.replaceChildren();
    this._build(trans, model, node);
    node.scrollTop = scrollTop;
  }

  private _build(
    trans: TranslationBundle,
    model: PanelModel,
    node: HTMLElement
  ): void {

    const header = element('h2', trans.__('Linksight'));
    const refresh = button(trans.__('Refresh'), () => void model.refresh());
    refresh.classList.add('lks-refresh');
    header.append(' ', refresh);
    node.append(header);

    node.append(this._connection());
    if (model.error) {
      const error = element('div', model.error.message);
      error.classList.add('lks-error');
      error.dataset.code = model.error.code;
      node.append(error);
    }
    if (!model.connected) {
      return;
    }

    node.append(element('h3', trans.__('Collaborations')), this._collaborations());
    node.append(element('h3', trans.__('Budget')), this._budget(model.budget));
    node.append(element('h3', trans.__('Datasets')));
    if (model.datasets.length === 0) {
      node.append(muted(trans.__('No datasets in this collaboration yet.')));
    }
    for (const dataset of model.datasets) {
      node.append(this._dataset(dataset));
    }
    node.append(element('h3', trans.__('Your requests')), this._requests());
  }

  protected onBeforeShow(): void {
    void this.model.refresh();
  }

  private _connection(): HTMLElement {
    const status = this.model.status;
    const trans = this.trans;
    const node = element('div');
    node.classList.add('lks-connection');
    node.dataset.connected = String(this.model.connected);
    if (status === null) {
      node.textContent = this.model.error
        ? trans.__('Not connected.')
        : trans.__('Connecting…');
    } else if (status.connected && status.user) {
      node.textContent = trans.__(
        'Connected to %1 as %2 (%3).',
        status.hub_url ?? '',
        status.user.name,
        status.user.organisation
      );
    } else {
      node.textContent = trans.__(
        'Not connected: %1',
        status.error?.message ?? trans.__('unknown reason')
      );
      if (status.error) {
        node.dataset.code = status.error.code;
      }
    }
    return node;
  }

  private _collaborations(): HTMLElement {
    const model = this.model;
    const node = element('div');
    node.classList.add('lks-collaborations');
    if (model.collaborations.length === 0) {
      node.append(
        muted(
          this.trans.__(
            'Your organisation is in no collaboration; ask the hub admin to add it to one.'
          )
        )
      );
      return node;
    }

    const select = document.createElement('select');
    select.classList.add('lks-collaboration-select');
    select.setAttribute('aria-label', this.trans.__('Collaboration'));
    for (const collaboration of model.collaborations) {
      const option = document.createElement('option');
      option.value = collaboration.name;
      option.textContent = collaboration.name;
      option.selected = collaboration.name === model.collaboration;
      select.append(option);
    }

    select.addEventListener('change', () => {
      this.chosenDataset = null;
      void model.selectCollaboration(select.value);
    });
    node.append(select);
    const chosen = model.collaborations.find(c => c.name === model.collaboration);
    if (chosen) {
      node.append(
        muted(this.trans.__('Members: %1', chosen.members.join(', ')))
      );
    }
    return node;
  }

  private _budget(budget: IBudget | null): HTMLElement {
    const trans = this.trans;
    const node = element('div');
    node.classList.add('lks-budget');
    if (budget === null) {
      return node;
    }

    if (budget.limit === null || budget.remaining === null) {
      node.textContent = trans.__(
        'No limit; %1 requests in the last %2 days.',
        budget.used,
        budget.period_days
      );
    } else {
      node.textContent = trans.__(
        '%1 of %2 requests left in %3 days.',
        budget.remaining,
        budget.limit,
        budget.period_days
      );
    }
    node.dataset.remaining = String(budget.remaining);
    return node;
  }

  private _dataset(dataset: IDataset): HTMLElement {
    const trans = this.trans;
    const node = element('div');
    node.classList.add('lks-dataset');
    node.dataset.dataset = dataset.name;
    const title = element('strong', dataset.name);
    node.append(title, ' ', muted(dataset.description));
    node.append(
      element('div', trans.__('Stations: %1', dataset.stations.join(', ')))
    );

    const table = document.createElement('table');
    const head = table.createTHead().insertRow();
    for (const label of [
      trans.__('Column'),
      trans.__('Type'),
      trans.__('Allowed uses'),
      trans.__('Values')
    ]) {
      head.append(element('th', label));
    }
    const body = table.createTBody();
    for (const column of dataset.columns) {
      const row = body.insertRow();
      row.dataset.column = column.name;
      row.title = column.description;
      for (const text of [column.name, column.type, column.uses, column.values]) {
        row.insertCell().textContent = text;
      }
    }
    node.append(table);

    const collaboration = this.model.collaboration;
    const insert = button(trans.__('Insert query cell'), () => {
      this.chosenDataset = dataset.name;
      if (collaboration !== null) {
        this.insertQuery(dataset.name, collaboration);
      }
    });
    insert.classList.add('lks-insert-query');
    node.append(insert);
    return node;
  }

  private _requests(): HTMLElement {
    const trans = this.trans;
    const node = element('div');
    node.classList.add('lks-requests');
    if (this.model.requests.length === 0) {
      node.append(muted(trans.__('No requests yet.')));
    }
    for (const request of this.model.requests) {
      node.append(this._request(request));
    }
    return node;
  }

  private _request(request: IRequestSummary): HTMLElement {
    const node = element('div');
    node.classList.add('lks-request');
    node.dataset.requestId = String(request.id);
    node.dataset.state = request.state;
    node.dataset.finished = String(request.finished);
    const state = element('span', request.summary);
    state.classList.add('lks-request-state');
    node.append(
      element('span', `#${request.id} ${request.collaboration} · `),
      state
    );
    const detail = request.rejection?.message ?? request.error;
    if (detail) {
      const reason = element('div', detail);
      reason.classList.add('lks-error');
      node.append(reason);
    }
    const query = element('div', request.query);
    query.classList.add('lks-request-query');
    query.title = request.purpose;
    node.append(query);
    return node;
  }
}

function element(tag: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function muted(text: string): HTMLElement {
  const node = element('div', text);
  node.classList.add('lks-muted');
  return node;
}

function button(label: string, onClick: () => void): HTMLButtonElement {
  const node = document.createElement('button');
  node.className = 'jp-Button jp-mod-styled jp-mod-accept';
  node.textContent = label;
  node.addEventListener('click', onClick);
  return node;
}
