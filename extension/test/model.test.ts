import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';

import { LinksightApi } from '../src/api';
import { IRequestChange, PanelModel } from '../src/model';
import type { IRequestSummary } from '../src/tokens';
import { ScriptedServer } from './server';

function request(id: number, state: string, finished = false): IRequestSummary {
  return {
    id,
    collaboration: 'lung-study',
    dataset: 'lung',
    query: 'SELECT count(*) FROM lung',
    purpose: 'test',
    state,
    finished,
    summary: state.replace(/_/g, ' '),
    rejection: null,
    error: null,
    created_at: '2026-01-01T00:00:00+00:00',
    updated_at: '2026-01-01T00:00:00+00:00'
  };
}

const CONNECTED = {
  connected: true,
  hub_url: 'http://127.0.0.1:8700',
  user: { name: 'sam', organisation: 'Research Institute', roles: ['scientist'] },
  default_collaboration: 'waiting-lists',
  error: null
};

describe('PanelModel', () => {
  const server = new ScriptedServer();
  let model: PanelModel;

  before(() => server.start());
  after(() => server.stop());
  beforeEach(() => {
    server.calls = [];
    server.replies = new Map([
      ['status', { status: 200, body: CONNECTED }],
      [
        'collaborations',
        {
          status: 200,
          body: [
            { name: 'lung-study', members: ['A'] },
            { name: 'waiting-lists', members: ['A', 'B'] }
          ]
        }
      ],
      ['collaborations/lung-study/datasets', { status: 200, body: [{ name: 'lung' }] }],
      [
        'collaborations/waiting-lists/datasets',
        { status: 200, body: [{ name: 'covid' }] }
      ],
      [
        'collaborations/lung-study/budget',
        { status: 200, body: { remaining: 5 } }
      ],
      [
        'collaborations/waiting-lists/budget',
        { status: 200, body: { remaining: 7 } }
      ],
      ['requests', { status: 200, body: [request(1, 'awaiting_approval')] }]
    ]);
    const api = new LinksightApi(server.baseUrl, (url, init) => fetch(url, init));
    model = new PanelModel({ api, pollInterval: 250, pauseWhenHidden: false });
  });

  it('refresh reads everything and picks the default collaboration', async () => {
    let changed = 0;
    model.changed.connect(() => changed++);

    await model.refresh();

    assert.equal(model.connected, true);
    assert.equal(model.collaboration, 'waiting-lists');
    assert.deepEqual(
      model.datasets.map(d => d.name),
      ['covid']
    );
    assert.equal(model.budget?.remaining, 7);
    assert.deepEqual(
      model.requests.map(r => r.state),
      ['awaiting_approval']
    );
    assert.equal(model.error, null);
    assert.equal(changed, 1);
  });

  it('refresh keeps a chosen collaboration', async () => {
    await model.refresh();
    await model.selectCollaboration('lung-study');

    await model.refresh();

    assert.equal(model.collaboration, 'lung-study');
    assert.equal(model.budget?.remaining, 5);
  });

  it('selectCollaboration rejects an unknown name', async () => {
    await model.refresh();

    await assert.rejects(
      model.selectCollaboration('lung'),
      /collaboration "lung" not found; yours: lung-study, waiting-lists/
    );
  });

  it('stores a not-connected status and reads nothing else', async () => {
    server.replies.set('status', {
      status: 200,
      body: {
        connected: false,
        hub_url: null,
        user: null,
        default_collaboration: null,
        error: { code: 'not_configured', message: 'no hub URL' }
      }
    });

    await model.refresh();

    assert.equal(model.connected, false);
    assert.equal(model.status?.error?.code, 'not_configured');
    assert.deepEqual(server.calls, ['status']);
  });

  it('stores a failed read in error', async () => {
    server.replies.set('collaborations', {
      status: 502,
      body: { code: 'hub_unreachable', message: 'the hub did not respond' }
    });

    await model.refresh();

    assert.equal(model.error?.code, 'hub_unreachable');
    assert.equal(model.connected, false);
  });

  it('pollOnce reports each state change and reads the budget again', async () => {
    await model.refresh();
    const changes: IRequestChange[] = [];
    model.requestChanged.connect((_, change) => changes.push(change));
    server.replies.set('requests', {
      status: 200,
      body: [request(2, 'awaiting_approval'), request(1, 'completed', true)]
    });
    server.replies.set('collaborations/waiting-lists/budget', {
      status: 200,
      body: { remaining: 6 }
    });

    await model.pollOnce();

    assert.deepEqual(
      changes.map(c => [c.request.id, c.previous, c.request.state]),
      [
        [2, null, 'awaiting_approval'],
        [1, 'awaiting_approval', 'completed']
      ]
    );
    assert.equal(model.budget?.remaining, 6);
  });

  it('pollOnce emits changed only when something changed', async () => {
    await model.refresh();
    let changed = 0;
    model.changed.connect(() => changed++);

    await model.pollOnce();
    await model.pollOnce();

    assert.equal(changed, 0);
    assert.deepEqual(server.calls.slice(-2), ['requests', 'requests']);
  });

  it('pollOnce refreshes everything while not connected', async () => {
    await model.pollOnce();

    assert.equal(model.connected, true);
    assert.equal(server.calls[0], 'status');
  });

  it('polling reads the requests until stopped', async () => {
    await model.refresh();
    const seen = new Promise<IRequestChange>(resolve =>
      model.requestChanged.connect((_, change) => resolve(change))
    );
    model.startPolling();
    server.replies.set('requests', {
      status: 200,
      body: [request(1, 'running')]
    });

    const change = await seen;
    model.dispose();

    assert.equal(change.request.state, 'running');
    assert.equal(change.previous, 'awaiting_approval');
  });

  it('rejects a poll interval below 250 ms', () => {
    assert.throws(
      () => {
        model.pollInterval = 100;
      },
      /poll interval 100 ms is invalid; it must be a number of at least 250 ms/
    );
  });
});
